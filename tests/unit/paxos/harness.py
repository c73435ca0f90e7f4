"""A hand-driven cluster for unit tests of the core: every delivery is explicit.

Messages wait in `pending` until a test delivers, drops or duplicates them, so a test
can build exactly the interleaving it means, including crashes between any two steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paxdb.paxos.effects import Completion, Envelope
from paxdb.paxos.messages import LogEntry, Message
from paxdb.paxos.options import Options
from paxdb.paxos.replica import Replica, ReplicaConfig
from paxdb.paxos.values import Value, ValueKind
from paxdb.storage.memory import MemoryLogStore

GROUP = "g"

FAST = Options(
    lease_ticks=40,
    lease_renew_ticks=20,
    phase_timeout_ticks=5,
    election_jitter_ticks=10,
    catchup_probe_ticks=10,
    catchup_timeout_ticks=5,
)


@dataclass
class Node:
    node_id: int
    store: MemoryLogStore = field(default_factory=MemoryLogStore)
    replica: Replica | None = None
    applied: list[LogEntry] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    persisted: int = 0
    syncs: int = 0
    wipes: int = 0  # Each wipe starts a new incarnation with its own seed.
    rejoining: bool = False


class Cluster:
    def __init__(self, count: int = 3, options: Options = FAST, seed: int = 1) -> None:
        self.members = tuple(range(1, count + 1))
        self.options = options
        self.seed = seed
        self.nodes = {n: Node(n) for n in self.members}
        self.pending: list[Envelope] = []
        self.isolated: set[int] = set()  # Messages from or to these nodes are lost.
        for node in self.nodes.values():
            self.start(node.node_id)

    def replica(self, node_id: int) -> Replica:
        replica = self.nodes[node_id].replica
        assert replica is not None, f"node {node_id} is down"
        return replica

    def start(self, node_id: int) -> None:
        node = self.nodes[node_id]
        seed = self.seed + 1000 * node.wipes
        config = ReplicaConfig(node_id, GROUP, self.members, self.options, seed)
        node.replica = Replica(
            config, node.store, applied_next=len(node.applied), rejoining=node.rejoining
        )
        self.process(node_id)

    def join(self, node_id: int) -> None:
        """A new node id starts with an empty disk, rejoining, from the bootstrap
        configuration (which it is not in), as a real joiner does."""
        assert node_id not in self.nodes
        self.nodes[node_id] = Node(node_id, rejoining=True)
        self.start(node_id)

    def crash(self, node_id: int, keep: int = 0) -> None:
        node = self.nodes[node_id]
        node.store.crash(keep)
        node.replica = None

    def wipe(self, node_id: int) -> None:
        """The node loses its whole disk and restarts empty, rejoining."""
        node = self.nodes[node_id]
        node.store = MemoryLogStore()
        node.applied = []
        node.replica = None
        node.wipes += 1
        node.rejoining = True
        self.start(node_id)

    def process(self, node_id: int) -> None:
        """Carry out the node's effects in the runtime's order."""
        node = self.nodes[node_id]
        replica = node.replica
        assert replica is not None
        while replica.has_work():
            effects = replica.effects()
            node.store.write_batch([(GROUP, r) for r in effects.persist], effects.must_sync)
            node.persisted += len(effects.persist)
            node.syncs += int(bool(effects.persist) and effects.must_sync)
            self.pending.extend(effects.send)
            for entry in effects.apply:
                if entry.instance >= len(node.applied):
                    assert entry.instance == len(node.applied)
                    node.applied.append(entry)
            node.completions.extend(effects.completions)
            replica.advance(effects)

    def tick(self, node_id: int, times: int = 1) -> None:
        for _ in range(times):
            self.replica(node_id).tick()
            self.process(node_id)

    def take(self, kind: type, source: int | None = None, target: int | None = None) -> Envelope:
        for index, envelope in enumerate(self.pending):
            if not isinstance(envelope.message, kind):
                continue
            if source is not None and envelope.source != source:
                continue
            if target is not None and envelope.target != target:
                continue
            return self.pending.pop(index)
        raise AssertionError(f"no pending {kind.__name__} {source}->{target}: {self.pending}")

    def deliver(self, envelope: Envelope) -> None:
        node = self.nodes.get(envelope.target)  # None: a node id not started yet.
        if (
            node is None
            or node.replica is None
            or {envelope.source, envelope.target} & self.isolated
        ):
            return
        node.replica.step(envelope)
        self.process(envelope.target)

    def deliver_one(self, kind: type, source: int | None = None, target: int | None = None) -> None:
        self.deliver(self.take(kind, source, target))

    def deliver_all(self, rounds_max: int = 1000) -> None:
        for _ in range(rounds_max):
            if not self.pending:
                return
            self.deliver(self.pending.pop(0))
        raise AssertionError("messages kept flowing")

    def drop(
        self, kind: type[Message], source: int | None = None, target: int | None = None
    ) -> None:  # noqa: E501
        self.take(kind, source, target)

    def elect(self, node_id: int, ticks_max: int = 200) -> None:
        """Tick only `node_id` until it campaigns, then deliver everything."""
        for _ in range(ticks_max):
            self.tick(node_id)
            self.deliver_all()
            if self.replica(node_id).is_master:
                return
        raise AssertionError(f"node {node_id} did not become master")

    def propose(self, node_id: int, payload: bytes, token: object) -> None:
        self.replica(node_id).propose(Value(ValueKind.SQL_BATCH, payload), token)
        self.process(node_id)
