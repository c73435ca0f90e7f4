"""Invariant checks the simulator runs after every step (DESIGN.md invariants 1-5).

1. Agreement: at most one value is ever chosen per instance (across all replicas), and
   a value is learned only if it was chosen: some ballot's vote for it is durable on a
   majority of the voters in force at that instance. The checker follows the voters
   itself, from the MEMBERSHIP values in the chosen log (a learner's vote, if one were
   ever cast, never counts).
2. Order: every replica applies 0, 1, 2, ... with no gap; a value applied again after
   a restart must be the same one with the same chain.
3. Chain: replicas that applied instance i hold the same chain[i].
4. Durability: every acknowledged request is in the final log, at the acknowledged
   instance and position.
6. Promises hold: an acceptor never votes (Promise or Accepted) for a ballot below one it
   voted for before, across crashes and restarts. This is Paxos's own acceptor rule; a
   broken promise is how a lost acceptor record shows before it costs agreement.
5. Lease: at most one node holds a valid master lease at any simulated instant; and
   (5b, the reason why) the holder's lease ends, in real time, before any other node
   that learned the same master value stops believing in it; and (5c, what the lease
   is for) a lease holder has learned every instance any replica has learned, so a
   read it serves locally is never stale.
7. State: replicas that applied every instance below i hold the same state-machine
   state (a digest of the values, computed here, independent of the core's chain),
   whether they applied those instances themselves or installed a checkpoint; and
   replicas at the same instance (voters, learners and outsiders alike) agree on the
   membership (voters and learners) and master in force there.
   A checkpoint records exactly the chain, state, membership and master of its
   instance (`Replica.checkpoint_meta` must be exact).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from paxdb.ids import Ballot
from paxdb.paxos.effects import CheckpointMeta
from paxdb.paxos.membership import MembershipChange, quorum_size
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.values import Value, ValueKind, decode_batch


class Violation(Exception):
    """An invariant failed; the message names it."""


STATE_START = b"\x00" * 16  # The digest of the empty state machine.

# Membership and master in force at an instance: members, version, master, version,
# learners.
Config = tuple[tuple[int, ...], int, int | None, int, tuple[int, ...]]


def state_after(digest: bytes, entry: LogEntry) -> bytes:
    """The state digest after applying `entry` (a stand-in for the SQLite file)."""
    return hashlib.blake2b(digest + entry.value.encode(), digest_size=16).digest()


@dataclass(slots=True)
class AppliedLog:
    """One node's state machine in the simulator, durable across crashes (like its SQLite
    file): the instances it applied since `base`, and the digest of its state.

    A fresh state machine has base 0. One installed from a checkpoint starts at the
    checkpoint's instance with the checkpoint's state: it never applied what is below.
    """

    node_id: int
    base: int = 0
    digest: bytes = STATE_START
    entries: list[LogEntry] = field(default_factory=list)

    @staticmethod
    def from_checkpoint(node_id: int, instance_next: int, digest: bytes) -> AppliedLog:
        return AppliedLog(node_id, instance_next, digest)

    @property
    def next(self) -> int:
        """The first instance not applied yet."""
        return self.base + len(self.entries)

    def apply(self, entry: LogEntry) -> bool:
        """Returns True if the entry was new; raises Violation on gaps or changed values."""
        if entry.instance < self.base:
            raise Violation(
                f"order: node {self.node_id} applied instance {entry.instance}, below the "
                f"checkpoint it installed at {self.base}"
            )
        applied = self.next
        if entry.instance < applied:
            earlier = self.entries[entry.instance - self.base]
            if earlier != entry:
                raise Violation(
                    f"node {self.node_id} re-applied instance {entry.instance} with a "
                    f"different value or chain"
                )
            return False
        if entry.instance > applied:
            raise Violation(
                f"node {self.node_id} applied instance {entry.instance} after {applied - 1}: gap"
            )
        self.entries.append(entry)
        self.digest = state_after(self.digest, entry)
        return True


@dataclass(slots=True)
class Checker:
    chosen: dict[int, LogEntry] = field(default_factory=dict)
    acknowledged: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)
    votes: dict[int, Ballot] = field(default_factory=dict)  # Highest ballot each node voted.
    # instance -> ballot -> acceptor -> value; dropped once the instance is first learned.
    accepted: dict[int, dict[Ballot, dict[int, Value]]] = field(default_factory=dict)
    voters: tuple[int, ...] = (1,)  # In force at instance len(chosen): the bootstrap first.
    learners: tuple[int, ...] = ()
    voters_version: int = -1
    batch_items: dict[int, list[bytes]] = field(default_factory=dict)
    # instance_next -> digest of the state after applying every instance below it.
    states: dict[int, bytes] = field(default_factory=lambda: {0: STATE_START})
    configs: dict[int, Config] = field(default_factory=dict)  # instance -> config there.
    checks: int = 0

    def on_accept_durable(self, node_id: int, instance: int, ballot: Ballot, value: Value) -> None:
        """An acceptor's vote reached its disk (synced)."""
        if instance in self.chosen:
            return  # Checked already; late votes there cannot matter.
        self.accepted.setdefault(instance, {}).setdefault(ballot, {})[node_id] = value

    def _check_chosen(self, node_id: int, entry: LogEntry) -> None:
        """The first time anyone learns `entry.instance`: a majority of the voters in force
        there accepted it with one ballot. Instances are first learned in order (a replica
        learns i after i - 1, or installs a checkpoint someone took after learning i - 1),
        so the voters in force are those after every MEMBERSHIP value below it."""
        if entry.instance != len(self.chosen):
            raise Violation(
                f"order: node {node_id} learned instance {entry.instance} before anyone "
                f"learned instance {len(self.chosen)}"
            )
        voters, quorum = self.voters, quorum_size(len(self.voters))
        for votes in self.accepted.pop(entry.instance, {}).values():
            count = sum(1 for n, value in votes.items() if n in voters and value == entry.value)
            if count >= quorum:
                self._follow_membership(entry)
                return
        raise Violation(
            f"agreement: node {node_id} learned a value at instance {entry.instance} that no "
            f"majority of the voters {list(voters)} accepted with one ballot"
        )

    def _follow_membership(self, entry: LogEntry) -> None:
        if entry.value.kind is not ValueKind.MEMBERSHIP:
            return
        try:
            change = MembershipChange.from_value(entry.value)
        except ValueError:
            return
        if change.prev_version == self.voters_version:
            self.voters, self.voters_version = change.members, entry.instance
            self.learners = change.learners

    def on_vote(self, node_id: int, ballot: Ballot, what: str) -> None:
        self.checks += 1
        highest = self.votes.get(node_id)
        if highest is not None and ballot < highest:
            raise Violation(
                f"promise: node {node_id} sent {what} for ballot {ballot} after voting for "
                f"{highest}: it lost a promise"
            )
        if highest is None or ballot > highest:
            self.votes[node_id] = ballot

    def on_apply(self, node_id: int, entry: LogEntry) -> None:
        self.checks += 1
        known = self.chosen.get(entry.instance)
        if known is None:
            self._check_chosen(node_id, entry)
            self.chosen[entry.instance] = entry
            return
        if known.value != entry.value:
            raise Violation(
                f"agreement: node {node_id} learned a different value at instance {entry.instance}"
            )
        if known.chain != entry.chain:
            raise Violation(f"chain: node {node_id} has another chain at {entry.instance}")

    def on_state(self, node_id: int, instance_next: int, digest: bytes) -> None:
        """7. A node's state machine holds `digest` after applying all below instance_next."""
        self.checks += 1
        known = self.states.setdefault(instance_next, digest)
        if known != digest:
            raise Violation(
                f"state: node {node_id}'s state machine after instance {instance_next - 1} "
                "differs from another node's there"
            )

    def on_config(self, node_id: int, instance: int, config: Config) -> None:
        """7. A replica at `instance` holds the membership and master in force there."""
        self.checks += 1
        known = self.configs.setdefault(instance, config)
        if known != config:
            raise Violation(
                f"state: node {node_id} at instance {instance} has members/master {config}, "
                f"another node had {known} there"
            )

    def on_checkpoint(self, node_id: int, meta: CheckpointMeta, digest: bytes) -> None:
        """7. A checkpoint (taken or installed) is exactly the state at its instance."""
        instance = meta.instance_next
        if instance > 0:
            entry = self.chosen.get(instance - 1)
            if entry is None or entry.chain != meta.chain:
                raise Violation(
                    f"chain: node {node_id} has a checkpoint at {instance} whose chain is not "
                    f"the chain of instance {instance - 1}"
                )
        self.on_state(node_id, instance, digest)
        config = (
            meta.members,
            meta.members_version,
            meta.master,
            meta.master_version,
            meta.learners,
        )
        self.on_config(node_id, instance, config)

    def forget_votes(self, node_id: int) -> None:
        """The node lost its disk (wiped): it may vote afresh, under the fence."""
        self.votes.pop(node_id, None)

    def on_acknowledged(self, request_id: int, instance: int, index: int, payload: bytes) -> None:
        assert request_id not in self.acknowledged, "a request is acknowledged once"
        self.acknowledged[request_id] = (instance, index, payload)
        self._check_acknowledged(request_id)

    def _check_acknowledged(self, request_id: int) -> None:
        instance, index, payload = self.acknowledged[request_id]
        entry = self.chosen.get(instance)
        if entry is None:
            return  # Checked again at the end.
        if entry.value.kind is not ValueKind.SQL_BATCH:
            raise Violation(f"request {request_id} acknowledged at a non-batch instance")
        items = self._items(instance, entry)
        if index >= len(items) or items[index] != payload:
            raise Violation(
                f"durability: request {request_id} acknowledged at {instance}.{index} "
                "but the chosen value there does not hold it"
            )

    def _items(self, instance: int, entry: LogEntry) -> list[bytes]:
        cached = self.batch_items.get(instance)
        if cached is None:
            cached = self.batch_items[instance] = decode_batch(entry.value.payload)
        return cached

    def check_all_acknowledged(self) -> None:
        for request_id, (instance, _, _) in self.acknowledged.items():
            if instance not in self.chosen:
                raise Violation(
                    f"durability: request {request_id} acknowledged at instance {instance}, "
                    "which no live replica has learned"
                )
            self._check_acknowledged(request_id)

    def check_lease(self, masters: list[int], time: int) -> None:
        self.checks += 1
        if len(masters) > 1:
            raise Violation(f"lease: nodes {masters} all hold a valid lease at time {time}")

    def check_read(self, holder: int, instance_next: int, time: int) -> None:
        """5c. A lease holder serves local reads: it must know every value learned."""
        if instance_next < len(self.chosen):
            raise Violation(
                f"stale read: node {holder} holds the lease at time {time} having learned "
                f"up to instance {instance_next - 1}, but instance {len(self.chosen) - 1} "
                "was learned elsewhere"
            )

    def check_lease_order(self, holder: int, lease_end: int, observer: int, view_end: int) -> None:
        """5b. The reason 5 holds: no node stops believing in a lease before it ends."""
        if lease_end > view_end:
            raise Violation(
                f"lease order: node {holder}'s lease ends at {lease_end}, after node "
                f"{observer} stops believing in it at {view_end}"
            )
