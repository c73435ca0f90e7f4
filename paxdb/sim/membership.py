"""The simulated operator: membership changes and master hand-overs, drawn per seed.

Theory of operation. Every `membership_every` ticks of the fault phase (0: never), the
operator looks for the node that holds the lease, the only one that may carry out a
change, and picks one step that fits the configuration in force there:
- join: start a node id never used before (a spare) with an empty disk, rejoining, from
  the bootstrap configuration (the initial cluster), as a real joiner does, and add it
  as a learner; an outsider whose addition failed is added again later;
- re-add: wipe a removed node (when no rejoin is in progress: one disk lost at a time)
  and add it back as a learner;
- promote: a learner that lifted its fence and caught up becomes a voter;
- remove a voter other than the master, keeping `VOTERS_MIN` voters, one of them from
  the initial cluster (a joiner learns from its bootstrap configuration), and a majority
  of them up and past their fence (`_may_remove` says why);
- hand over: transfer the master role to another voter; once that is chosen, the former
  master is removed at a later step, first of all ("remove the master");
- remove a learner.
The core decides and refuses what it must; the operator proposes as a real operator's
tool would, with the faults going on, and counts what happened (`counts`). A change
whose fate is unknown (its master crashed before it completed) may still be chosen:
`may_change` tells the liveness phase so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paxdb.paxos.effects import Completion, Outcome
from paxdb.paxos.membership import MembershipChange, quorum_size

if TYPE_CHECKING:
    from paxdb.sim.cluster import SimNode, Simulation

VOTERS_MIN = 3
VOTERS_MAX = 5
LEARNERS_KEPT_MAX = 2
PROMOTE_LAG_MAX = 4  # A learner this many instances behind the master may be promoted.


@dataclass(frozen=True, slots=True)
class AdminOp:
    """One operator request, remembered by its token until it completes."""

    kind: str
    node_id: int
    prev_version: int  # Of the membership it was based on (-2 for a hand-over).


COUNT_NAMES = (
    "proposed",
    "changes",
    "joins",
    "learners_added",
    "readded",
    "promoted",
    "voters_removed",
    "former_master_removed",
    "learners_removed",
    "transfers",
    "refused",
    "learner_applied",
)


class Operator:
    def __init__(self, simulation: Simulation, rng: random.Random, every: int) -> None:
        self.sim = simulation
        self.rng = rng
        self.every = every
        self.next_step_tick = every
        self.counts = dict.fromkeys(COUNT_NAMES, 0)
        self.former_master: int | None = None
        self.pending_prev_version: int | None = None  # A change not known to be resolved.
        self.needs_wipe: set[int] = set()  # Removed nodes, wiped before they come back.

    def may_change(self, version: int) -> bool:
        """Whether a change based on `version` may still be chosen."""
        return self.pending_prev_version == version

    def maybe_step(self, tick: int) -> None:
        if self.every == 0 or tick < self.next_step_tick:
            return
        self.next_step_tick = tick + self.every
        master = self.sim.master_node()
        if master is not None:
            self._step(master)

    def _step(self, master: SimNode) -> None:
        replica = master.replica
        assert replica is not None
        membership = replica.membership
        voters, learners = membership.members, membership.learners
        former = self.former_master
        if former is not None and former != master.node_id and self._may_remove(voters, former):
            self._change(master, "remove-former-master", former, voters, learners)
            return
        choices = self._choices(master, voters, learners)
        if not choices:
            return
        kind, node_id = self.rng.choice(choices)
        if kind == "transfer":
            self._transfer(master, node_id)
        elif kind in ("join", "add", "readd"):
            self._add(master, kind, node_id, voters, learners)
        else:
            self._change(master, kind, node_id, voters, learners)

    def _choices(
        self, master: SimNode, voters: tuple[int, ...], learners: tuple[int, ...]
    ) -> list[tuple[str, int]]:
        sim = self.sim
        choices: list[tuple[str, int]] = []
        if len(learners) < LEARNERS_KEPT_MAX:
            if sim.spares:
                choices.append(("join", sim.spares[0]))
            for node_id in sorted(sim.nodes):
                if node_id in voters or node_id in learners:
                    continue
                if node_id not in self.needs_wipe:
                    choices.append(("add", node_id))
                elif not sim.rejoin_in_progress():
                    choices.append(("readd", node_id))
        assert master.replica is not None
        for learner in learners:
            choices.append(("remove-learner", learner))
            if len(voters) < VOTERS_MAX and self._caught_up(learner, master.replica.instance):
                choices.append(("promote", learner))
        for voter in voters:
            if voter == master.node_id:
                continue
            if self._may_remove(voters, voter):
                choices.append(("remove-voter", voter))
            node = sim.nodes.get(voter)
            if node is not None and node.replica is not None and not node.replica.fenced:
                choices.append(("transfer", voter))
        return choices

    def _may_remove(self, voters: tuple[int, ...], node_id: int) -> bool:
        """As a careful operator: keep `VOTERS_MIN` voters, one from the initial cluster,
        and a majority of them up and past their fence. A fenced voter lifts only once
        the others choose values past its horizon (fence.py): without such a majority
        the group could never choose again."""
        if node_id not in voters:
            return False
        rest = [voter for voter in voters if voter != node_id]
        if len(rest) < VOTERS_MIN or not any(voter in self.sim.members for voter in rest):
            return False
        ready = sum(1 for voter in rest if self._is_ready(voter))
        return ready >= quorum_size(len(rest))

    def _is_ready(self, node_id: int) -> bool:
        node = self.sim.nodes.get(node_id)
        return node is not None and node.replica is not None and not node.replica.fenced

    def _caught_up(self, node_id: int, instance: int) -> bool:
        node = self.sim.nodes.get(node_id)
        if node is None or node.replica is None:
            return False
        replica = node.replica
        return not replica.fenced and replica.instance >= instance - PROMOTE_LAG_MAX

    def _add(
        self,
        master: SimNode,
        kind: str,
        node_id: int,
        voters: tuple[int, ...],
        learners: tuple[int, ...],
    ) -> None:
        if kind == "join":
            self.sim.join(node_id)
            self.counts["joins"] += 1
        elif kind == "readd":
            self.sim.wipe_removed(node_id)
            self.needs_wipe.discard(node_id)
        if master.replica is None:  # Crashed meanwhile (a join's pump can crash nobody).
            return
        self._change(master, kind, node_id, voters, learners)

    def _change(
        self,
        master: SimNode,
        kind: str,
        node_id: int,
        voters: tuple[int, ...],
        learners: tuple[int, ...],
    ) -> None:
        new_voters, new_learners = set(voters), set(learners)
        if kind in ("join", "add", "readd"):
            new_learners.add(node_id)
        elif kind == "promote":
            new_learners.discard(node_id)
            new_voters.add(node_id)
        elif kind in ("remove-voter", "remove-former-master"):
            new_voters.discard(node_id)
        else:
            assert kind == "remove-learner", kind
            new_learners.discard(node_id)
        replica = master.replica
        assert replica is not None
        version = replica.membership.version
        change = MembershipChange(
            tuple(sorted(new_voters)), version, tuple(sorted(new_learners)), b"sim"
        )
        self.pending_prev_version = version
        self.counts["proposed"] += 1
        self.sim.admin(master, AdminOp(kind, node_id, version), change)

    def _transfer(self, master: SimNode, target: int) -> None:
        self.counts["proposed"] += 1
        self.sim.admin(master, AdminOp("transfer", target, -2), None)

    def on_complete(self, node: SimNode, op: AdminOp, completion: Completion) -> None:
        if op.kind != "transfer" and self.pending_prev_version == op.prev_version:
            self.pending_prev_version = None
        if completion.outcome is not Outcome.CHOSEN:
            self.counts["refused"] += 1
            return
        if op.kind == "transfer":
            self.counts["transfers"] += 1
            self.former_master = node.node_id
            return
        self.counts["changes"] += 1
        if op.kind in ("join", "add", "readd"):
            self.counts["learners_added"] += 1
            self.counts["readded"] += op.kind == "readd"
        elif op.kind == "promote":
            self.counts["promoted"] += 1
        elif op.kind == "remove-learner":
            self.counts["learners_removed"] += 1
            self.needs_wipe.add(op.node_id)
        else:
            self.counts["voters_removed"] += 1
            self.needs_wipe.add(op.node_id)
            if op.kind == "remove-former-master":
                self.counts["former_master_removed"] += 1
                self.former_master = None
