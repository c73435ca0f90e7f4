"""The simulated cluster: replicas, disks, clocks and faults, all drawn from one seed.

Theory of operation. The simulator is single-threaded and event driven: a heap of
(time, sequence, event) in simulator units. Each node's clock ticks with its own
period, so clock rates differ within the drift bound the lease assumes. After every
event the node that received it is "pumped": its `Effects` are carried out in the
runtime's order (persist to its `MemoryLogStore`, send through the `Network`, apply to
its `AppliedLog`, record completions), and the invariants are checked.

A run has two phases. The fault phase injects crashes (losing a random part of the
unsynced writes), restarts, partitions (including one-way), loss, duplication and
long delays, with client requests at every node, and an operator (membership.py) that
adds nodes beyond the initial cluster, promotes, removes and hands the master role
over. The liveness phase then heals a majority of the voters in force (with every
learner) and requires a master among it, that a set of fresh requests sent to it are
all chosen, and that those nodes converge, each within a bound of ticks.

Same seed, same run: the trace hash proves it.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections import deque
from dataclasses import dataclass, field, replace
from typing import cast

from paxdb.ids import BALLOT_ZERO
from paxdb.paxos import describe
from paxdb.paxos.effects import AcceptorRecord, Completion, Envelope, Outcome, Record, Role
from paxdb.paxos.membership import MembershipChange
from paxdb.paxos.messages import Accepted, Promise
from paxdb.paxos.replica import Replica, ReplicaConfig
from paxdb.sim.checkers import AppliedLog, Checker, Violation
from paxdb.sim.checkpoints import (
    FETCH_ATTEMPTS_MAX,
    FETCH_TICKS_MAX,
    Fetch,
    SimCheckpoint,
    keep_newest,
    truncation_point,
)
from paxdb.sim.liveness import run_phases
from paxdb.sim.membership import AdminOp, Operator
from paxdb.sim.network import UNITS_PER_TICK, Network, NetworkFaults
from paxdb.sim.options import SimOptions
from paxdb.sim.workload import Workload, payload_for, value_for
from paxdb.storage.memory import MemoryLogStore

GROUP = "sim"
TRACE_LINES_KEPT = 400


@dataclass(slots=True)
class SimNode:
    node_id: int
    period: int  # Units per tick of this node's clock.
    store: MemoryLogStore = field(default_factory=MemoryLogStore)
    replica: Replica | None = None
    applied: AppliedLog | None = None
    checkpoints: list[SimCheckpoint] = field(default_factory=list)  # Newest last.
    fetching: bool = False  # A checkpoint transfer to this node is in flight.
    rejoining: bool = False  # Its disk was wiped once: it starts with rejoining=True.
    was_fenced: bool = False  # Its replica was fenced after the last pump.
    incarnation: int = 0
    start_time: int = 0  # Tick k of this incarnation happens at start_time + k * period.
    tokens: dict[int, int] = field(default_factory=dict)  # token -> request id
    admin: dict[int, AdminOp] = field(default_factory=dict)  # token -> operator request


@dataclass(slots=True)
class RunResult:
    seed: int
    options: SimOptions
    ok: bool
    trace_hash: str
    ticks: int
    chosen: int
    acknowledged: int
    faults: dict[str, int]
    checkpoints: dict[str, int] = field(default_factory=dict)
    membership: dict[str, int] = field(default_factory=dict)
    message: str = ""
    trace_tail: list[str] = field(default_factory=list)
    core_seconds: float = 0.0


class Simulation:
    def __init__(self, seed: int, options: SimOptions) -> None:
        self.seed = seed
        self.options = options
        self.rng = random.Random(seed)
        self.core_options = options.core_options()
        faults = NetworkFaults(
            loss=options.loss,
            duplicate=options.duplicate,
            delay_max=options.delay_max,
            long_delay=options.long_delay,
        )
        self.network = Network(random.Random(seed * 7 + 1), faults)
        self.members = tuple(range(1, options.nodes + 1))  # The bootstrap configuration.
        self.nodes = {n: SimNode(n, self._draw_period()) for n in self.members}
        spare_ids = range(options.nodes + 1, options.nodes + 1 + options.spare_nodes)
        self.spare_periods = {n: self._draw_period() for n in spare_ids}
        self.spares = sorted(self.spare_periods)  # Ids that have not joined yet.
        self.checker = Checker(voters=self.members)
        self.operator = Operator(
            self, random.Random(f"membership-{seed}"), options.membership_every
        )
        self.workload = Workload()
        self.time = 0
        self.events: list[tuple[int, int, str, object]] = []
        self.sequence = 0
        self.trace: deque[str] = deque(maxlen=TRACE_LINES_KEPT)
        self.trace_hash = hashlib.blake2b(digest_size=16)
        self.faults = {
            "crash": 0,
            "restart": 0,
            "partition": 0,
            "heal": 0,
            "lost_writes": 0,
            "wipe": 0,
            "rejoined": 0,  # Fences lifted.
        }
        self.checkpoint_counts = {
            "taken": 0,
            "truncations": 0,
            "needed": 0,
            "fetch_failures": 0,
            "installs": 0,
            "install_crashes": 0,
        }
        self.healed: tuple[int, ...] | None = None
        self.required: tuple[int, ...] = ()  # Healed nodes that must converge.
        for node in self.nodes.values():
            node.applied = AppliedLog(node.node_id)
            node.rejoining = options.start_rejoining  # A runtime that cannot tell.
            self.start(node)

    # Events.

    def _draw_period(self) -> int:
        spread = self.options.drift_ppm_used / 1_000_000 / 2
        rate = 1 + self.rng.uniform(-spread, spread)
        return round(UNITS_PER_TICK / rate)

    def _schedule(self, delay: int, kind: str, data: object) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (self.time + delay, self.sequence, kind, data))

    def log(self, line: str) -> None:
        text = f"{self.time} {line}"
        self.trace.append(text)
        self.trace_hash.update(text.encode())

    def start(self, node: SimNode) -> None:
        assert node.applied is not None
        config = ReplicaConfig(
            node.node_id, GROUP, self.members, self.core_options, self.seed + node.incarnation
        )
        base = node.checkpoints[-1].meta if node.checkpoints else None
        node.replica = Replica(
            config,
            node.store,
            applied_next=node.applied.next,
            base=base,
            rejoining=node.rejoining,
        )
        node.incarnation += 1
        node.start_time = self.time
        node.tokens.clear()
        node.admin.clear()
        node.fetching = False  # A transfer to the previous incarnation died with it.
        self._schedule(node.period, "tick", (node.node_id, node.incarnation))
        self.pump(node)

    def run_until(self, end_time: int, fault_phase: bool) -> None:
        while self.events and self.events[0][0] <= end_time:
            time, _, kind, data = heapq.heappop(self.events)
            self.time = time
            self._handle(kind, data)
            if fault_phase:
                self._maybe_fault()
                self.operator.maybe_step(self.time // UNITS_PER_TICK)
            self._check_lease()
        self.time = end_time

    def _handle(self, kind: str, data: object) -> None:
        if kind == "tick":
            assert isinstance(data, tuple)
            node_id, incarnation = cast(tuple[int, int], data)
            node = self.nodes[node_id]
            if node.replica is None or node.incarnation != incarnation:
                return
            node.replica.tick()
            self._schedule(node.period, "tick", data)
            if self.healed is None:
                self._maybe_request(node)
            self.pump(node)
            if node.replica is not None:
                self._maybe_checkpoint(node)
        elif kind == "deliver":
            assert isinstance(data, Envelope)
            node = self.nodes[data.target]
            if node.replica is None:
                return
            self.log(f"recv {describe.envelope(data)}")
            node.replica.step(data)
            voted = self.pump(node)
            if voted is not None and self.healed is None:
                chance = self.options.crash_after_reply
                if voted is Promise:
                    chance = self.options.crash_after_promise
                if self.rng.random() < chance:
                    self._crash(node.node_id)
                wipe = self.options.wipe_after_reply
                if voted is Accepted and wipe and self.rng.random() < wipe:
                    self._wipe(node.node_id)
        elif kind == "retry":
            assert isinstance(data, tuple)
            target, request_id = cast(tuple[int, int], data)
            node = self.nodes[target]
            if node.replica is None:  # Connection refused: the client tries another node.
                self._retry_elsewhere(request_id, None)
                return
            self.propose(node, request_id)
            self.pump(node)
        elif kind == "fetch":
            assert isinstance(data, Fetch)
            self._on_fetch(data)
        elif kind == "restart":
            node = self.nodes[cast(int, data)]
            if node.replica is None:
                self.faults["restart"] += 1
                self.log(f"restart {node.node_id}")
                self.start(node)

    # Carrying out effects, as the real runtime does.

    def pump(self, node: SimNode) -> type | None:
        """Carry out the node's effects; returns Promise or Accepted if it sent one."""
        replica = node.replica
        assert replica is not None and node.applied is not None
        voted: type | None = None
        while replica.has_work():
            effects = replica.effects()
            for envelope in effects.send:
                if envelope.may_precede_persist:  # As the runtime does.
                    self._transmit(envelope)
            if effects.persist and self._crash_before_persist():
                self._crash(node.node_id)
                return None
            node.store.write_batch([(GROUP, r) for r in effects.persist], effects.must_sync)
            self._observe_votes(node, effects.persist, effects.must_sync)
            for envelope in effects.send:
                if envelope.may_precede_persist:
                    continue
                if isinstance(envelope.message, Promise | Accepted):
                    voted = voted or type(envelope.message)
                    self.checker.on_vote(
                        node.node_id, envelope.message.ballot, type(envelope.message).__name__
                    )
                self._transmit(envelope)
            if effects.apply and replica.role is Role.LEARNER:
                self.operator.counts["learner_applied"] += len(effects.apply)
            for entry in effects.apply:
                self.checker.on_apply(node.node_id, entry)
                if node.applied.apply(entry):
                    self.checker.on_state(node.node_id, node.applied.next, node.applied.digest)
            for completion in effects.completions:
                self._complete(node, completion)
            if effects.status is not None:
                self.log(f"node {node.node_id} {describe.effects(effects)[-1]}")
            if effects.need_checkpoint is not None:
                self._request_checkpoint(node, effects.need_checkpoint)
            replica.advance(effects)
        self._check_config(node)
        if node.was_fenced and not replica.fenced:
            self.faults["rejoined"] += 1
            self.log(f"node {node.node_id} lifted its fence")
        node.was_fenced = replica.fenced
        return voted

    def _check_config(self, node: SimNode) -> None:
        replica = node.replica
        assert replica is not None
        membership, master = replica.membership, replica.master
        config = (
            membership.members,
            membership.version,
            master.master,
            master.version,
            membership.learners,
        )
        self.checker.on_config(node.node_id, replica.instance, config)

    # Checkpoints (see checkpoints.py).

    def _maybe_checkpoint(self, node: SimNode) -> None:
        every = self.options.checkpoint_every
        assert node.replica is not None and node.applied is not None
        newest = node.checkpoints[-1].meta.instance_next if node.checkpoints else 0
        if every == 0 or node.applied.next - newest < every:
            return
        meta = node.replica.checkpoint_meta(node.applied.next)
        if meta is None:
            return
        checkpoint = SimCheckpoint(meta, node.applied.digest)
        self.checker.on_checkpoint(node.node_id, meta, checkpoint.digest)
        node.checkpoints = keep_newest(node.checkpoints, checkpoint)
        self.checkpoint_counts["taken"] += 1
        self.log(f"checkpoint {node.node_id} i={meta.instance_next}")
        bounds = node.store.chosen_bounds(GROUP)
        below = truncation_point(bounds, meta.instance_next, self.options.log_hold)
        if below is not None:
            node.store.truncate_below(GROUP, below)
            self.checkpoint_counts["truncations"] += 1
            self.log(f"truncate {node.node_id} below={below}")

    def _request_checkpoint(self, node: SimNode, peer: int) -> None:
        self.checkpoint_counts["needed"] += 1
        if node.fetching:
            return
        node.fetching = True
        fetch = Fetch(node.node_id, node.incarnation, peer, self.nodes[peer].incarnation, 1)
        self._schedule_fetch(fetch)

    def _schedule_fetch(self, fetch: Fetch) -> None:
        delay = self.rng.randint(1, FETCH_TICKS_MAX) * UNITS_PER_TICK
        self._schedule(delay, "fetch", fetch)

    def _on_fetch(self, fetch: Fetch) -> None:
        """A transfer ends: it fails if either node crashed or a partition cut them."""
        node, peer = self.nodes[fetch.node_id], self.nodes[fetch.peer]
        if node.replica is None or node.incarnation != fetch.incarnation:
            return  # The fetching node died; its next incarnation asks again if it must.
        node.fetching = False
        cut = self.network.is_blocked(fetch.peer, fetch.node_id) or self.network.is_blocked(
            fetch.node_id, fetch.peer
        )
        if peer.replica is None or peer.incarnation != fetch.peer_incarnation or cut:
            self.checkpoint_counts["fetch_failures"] += 1
            self.log(f"fetch {fetch.node_id}<-{fetch.peer} failed")
            if fetch.attempt < FETCH_ATTEMPTS_MAX:
                node.fetching = True
                attempt = fetch.attempt + 1
                retry = replace(fetch, peer_incarnation=peer.incarnation, attempt=attempt)
                self._schedule_fetch(retry)
            return
        if not peer.checkpoints:
            return
        checkpoint = peer.checkpoints[-1]
        if checkpoint.meta.instance_next <= node.replica.instance:
            return  # Caught up meanwhile.
        self._install(node, checkpoint)

    def _install(self, node: SimNode, checkpoint: SimCheckpoint) -> None:
        """Swap the state machine for the checkpoint, then tell the replica."""
        meta = checkpoint.meta
        self.checker.on_checkpoint(node.node_id, meta, checkpoint.digest)
        node.applied = AppliedLog.from_checkpoint(
            node.node_id, meta.instance_next, checkpoint.digest
        )
        node.checkpoints = keep_newest(node.checkpoints, checkpoint)
        self.checkpoint_counts["installs"] += 1
        self.log(f"install {node.node_id} i={meta.instance_next}")
        if self.healed is None and self.rng.random() < self.options.crash_during_install:
            self.checkpoint_counts["install_crashes"] += 1
            self._crash(node.node_id)
            return
        assert node.replica is not None
        node.replica.restore(meta)
        self.pump(node)

    def _transmit(self, envelope: Envelope) -> None:
        for delay in self.network.plan(envelope):
            self._schedule(delay, "deliver", envelope)

    def _crash_before_persist(self) -> bool:
        """A crash after the early sends of an Effects but before its fsync."""
        return self.healed is None and self.rng.random() < self.options.crash_before_persist

    def _observe_votes(self, node: SimNode, records: tuple[Record, ...], synced: bool) -> None:
        for record in records:
            if isinstance(record, AcceptorRecord) and record.accepted_ballot is not None:
                assert synced, "a vote is always synced before it is sent"
                assert record.accepted_value is not None
                self.checker.on_accept_durable(
                    node.node_id, record.instance, record.accepted_ballot, record.accepted_value
                )

    def _complete(self, node: SimNode, completion: Completion) -> None:
        op = node.admin.pop(completion.token, None)  # type: ignore[call-overload]
        if op is not None:
            outcome = describe.completion(completion)
            self.log(f"node {node.node_id} {op.kind} {op.node_id} {outcome}")
            self.operator.on_complete(node, op, completion)
            return
        request_id = node.tokens.pop(completion.token)  # type: ignore[call-overload]
        self.log(f"node {node.node_id} {describe.completion(completion)}")
        if completion.outcome is Outcome.CHOSEN:
            self.workload.chosen += 1
            self.workload.finished(request_id)
            self.checker.on_acknowledged(
                request_id, completion.instance, completion.index, payload_for(request_id)
            )
            return
        self.workload.refused += 1
        self._retry_elsewhere(request_id, completion.master_hint)

    def _retry_elsewhere(self, request_id: int, hint: int | None) -> None:
        if not self.workload.retry_allowed(request_id):
            self.workload.dropped += 1
            return
        target = hint if hint is not None else self.rng.choice(sorted(self.nodes))
        self._schedule(self.rng.randint(1, 5) * UNITS_PER_TICK, "retry", (target, request_id))

    # Workload and faults.

    def _maybe_request(self, node: SimNode) -> None:
        rate = self.options.request_rate / len(self.nodes)
        while rate > 0:
            if self.rng.random() >= min(rate, 1.0):
                return
            rate -= 1.0
            self.propose(node, self.workload.new_request())

    def propose(self, node: SimNode, request_id: int) -> None:
        assert node.replica is not None
        token = self.sequence = self.sequence + 1
        node.tokens[token] = request_id
        node.replica.propose(value_for(request_id), token)

    def _maybe_fault(self) -> None:
        per_event = 1 / (3 * len(self.nodes))  # Faults are drawn per tick, roughly.
        if self.rng.random() < self.options.crash_rate * per_event:
            self._crash(self.rng.choice(sorted(self.nodes)))
        if self.options.wipe_rate and self.rng.random() < self.options.wipe_rate * per_event:
            self._wipe(self.rng.choice(sorted(self.nodes)))
        if self.rng.random() < self.options.partition_rate * per_event:
            self._partition()
        if self.network.blocked and self.rng.random() < self.options.heal_rate * per_event:
            self.network.heal()
            self.faults["heal"] += 1
            self.log("heal")

    def _crash(self, node_id: int) -> None:
        node = self.nodes[node_id]
        if node.replica is None:
            return
        keep = node.store.pending_count  # kill -9: the OS still holds what was written.
        if self.rng.random() < self.options.power_loss:
            keep = self.rng.randint(0, node.store.pending_count)
        self.faults["lost_writes"] += node.store.pending_count - keep
        node.store.crash(keep)
        node.replica = None
        self.faults["crash"] += 1
        self.log(f"crash {node_id} keep={keep}")
        self._restart_later(node)

    def _wipe(self, node_id: int) -> None:
        """The node loses its whole disk (log, state machine, checkpoints) and restarts
        empty under the same id, rejoining. One rejoin at a time: the fence assumes fewer
        than a majority lost their disks (paxos/fence.py)."""
        node = self.nodes[node_id]
        if node.replica is None or self.rejoin_in_progress():
            return
        node.replica = None
        self._erase(node)
        self._restart_later(node)

    def _erase(self, node: SimNode) -> None:
        assert node.replica is None
        node.store = MemoryLogStore()
        node.applied = AppliedLog(node.node_id)
        node.checkpoints = []
        node.rejoining = True
        node.fetching = False
        self.checker.forget_votes(node.node_id)
        self.faults["wipe"] += 1
        self.log(f"wipe {node.node_id}")

    # Membership (the operator's hands, membership.py).

    def join(self, node_id: int) -> None:
        """A new node id starts with an empty disk, rejoining, from the bootstrap
        configuration, as a real joiner does."""
        assert node_id == self.spares[0]
        self.spares.pop(0)
        node = SimNode(node_id, self.spare_periods[node_id])
        node.applied = AppliedLog(node_id)
        node.rejoining = True
        self.nodes[node_id] = node
        self.log(f"join {node_id}")
        self.start(node)

    def wipe_removed(self, node_id: int) -> None:
        """A removed node loses its disk before it is added again (a down node where it
        lies: its restart is scheduled already)."""
        node = self.nodes[node_id]
        if node.replica is not None:
            self._wipe(node_id)
        elif not self.rejoin_in_progress():
            self._erase(node)

    def admin(self, node: SimNode, op: AdminOp, change: MembershipChange | None) -> None:
        """Propose a membership change, or the hand-over to `op.node_id` if `change` is
        None, at the master `node`."""
        replica = node.replica
        assert replica is not None
        token = self.sequence = self.sequence + 1
        node.admin[token] = op
        self.log(f"admin {node.node_id} {op.kind} {op.node_id}")
        if change is None:
            replica.transfer_master(op.node_id, token)
        else:
            replica.propose(change.to_value(), token)
        self.pump(node)

    def master_node(self) -> SimNode | None:
        for node_id in sorted(self.nodes):
            node = self.nodes[node_id]
            if node.replica is not None and node.replica.is_master:
                return node
        return None

    def rejoin_in_progress(self) -> bool:
        """Some wiped node has not completed its rejoin: its disk holds no acceptor record
        (it would start fenced) or one without a promise (it would start shy)."""
        for node in self.nodes.values():
            record = node.store.load_acceptor(GROUP)
            if node.rejoining and (record is None or record.promised == BALLOT_ZERO):
                return True
        return False

    def _restart_later(self, node: SimNode) -> None:
        assert node.replica is None
        if self.options.restart_ticks_max == 0:  # A supervisor restarts it at once.
            self.faults["restart"] += 1
            self.start(node)
            return
        restart = self.rng.randint(1, self.options.restart_ticks_max) * UNITS_PER_TICK
        self._schedule(restart, "restart", node.node_id)

    def _partition(self) -> None:
        nodes = sorted(self.nodes)
        self.rng.shuffle(nodes)
        cut = self.rng.randint(1, len(nodes) - 1)
        one_way = self.rng.random() < 0.3
        self.network.partition(nodes[:cut], nodes[cut:], one_way)
        self.faults["partition"] += 1
        self.log(f"partition {sorted(nodes[:cut])} | {sorted(nodes[cut:])} one_way={one_way}")

    def _check_lease(self) -> None:
        masters = [n for n in self.nodes.values() if n.replica and n.replica.is_master]
        self.checker.check_lease([n.node_id for n in masters], self.time)
        for holder in masters:
            assert holder.replica is not None
            self.checker.check_read(holder.node_id, holder.replica.instance, self.time)
            self._check_lease_order(holder)

    def _check_lease_order(self, holder: SimNode) -> None:
        """The holder's lease ends, in real time, before any other node's view of it."""
        assert holder.replica is not None
        state = holder.replica.master
        if state.master != holder.node_id or state.lease_end_tick is None:
            return  # Only under the transfer-keeps-lease mutant: 5 and 5c catch it.
        lease_end = holder.start_time + state.lease_end_tick * holder.period
        for node in self.nodes.values():
            replica = node.replica
            if node is holder or replica is None:
                continue
            view = replica.master
            if view.master != holder.node_id or view.version != state.version:
                continue
            view_end = node.start_time + view.view_end_tick * node.period
            self.checker.check_lease_order(holder.node_id, lease_end, node.node_id, view_end)


def run_seed(seed: int, mutant: str | None = None) -> RunResult:
    """Run one seed; never raises for an invariant violation, returns it instead."""
    options = SimOptions.draw(seed, mutant)
    simulation = Simulation(seed, options)
    try:
        run_phases(simulation)
        ok, message = True, ""
    except Violation as violation:
        ok, message = False, str(violation)
    except AssertionError as error:
        ok, message = False, f"assertion failed in the core or simulator: {error!r}"
    except Exception as error:  # noqa: BLE001 - any crash of the core is a finding.
        ok, message = False, f"{type(error).__name__}: {error}"
    return RunResult(
        seed=seed,
        options=options,
        ok=ok,
        trace_hash=simulation.trace_hash.hexdigest(),
        ticks=simulation.time // UNITS_PER_TICK,
        chosen=len(simulation.checker.chosen),
        acknowledged=len(simulation.checker.acknowledged),
        faults=dict(
            simulation.faults,
            messages_dropped=simulation.network.dropped,
            messages_duplicated=simulation.network.duplicated,
        ),
        checkpoints=dict(simulation.checkpoint_counts),
        membership=dict(simulation.operator.counts),
        message=message,
        trace_tail=list(simulation.trace) if not ok else [],
    )
