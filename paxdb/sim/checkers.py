"""Invariant checks the simulator runs after every step (DESIGN.md invariants 1-5).

1. Agreement: at most one value is ever chosen per instance (across all replicas), and
   a value is learned only if it was chosen: some ballot's vote for it is durable on a
   majority of acceptors.
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
   that learned the same master value stops believing in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paxdb.ids import Ballot
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.values import Value, ValueKind, decode_batch


class Violation(Exception):
    """An invariant failed; the message names it."""


@dataclass(slots=True)
class AppliedLog:
    """One node's state machine in the simulator: what it applied, durable across crashes."""

    node_id: int
    entries: list[LogEntry] = field(default_factory=list)

    def apply(self, entry: LogEntry) -> bool:
        """Returns True if the entry was new; raises Violation on gaps or changed values."""
        applied = len(self.entries)
        if entry.instance < applied:
            earlier = self.entries[entry.instance]
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
        return True


@dataclass(slots=True)
class Checker:
    chosen: dict[int, LogEntry] = field(default_factory=dict)
    acknowledged: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)
    votes: dict[int, Ballot] = field(default_factory=dict)  # Highest ballot each node voted.
    # instance -> ballot -> acceptor -> value; dropped once the instance is first learned.
    accepted: dict[int, dict[Ballot, dict[int, Value]]] = field(default_factory=dict)
    quorum: int = 1
    batch_items: dict[int, list[bytes]] = field(default_factory=dict)
    checks: int = 0

    def on_accept_durable(self, node_id: int, instance: int, ballot: Ballot, value: Value) -> None:
        """An acceptor's vote reached its disk (synced)."""
        if instance in self.chosen:
            return  # Checked already; late votes there cannot matter.
        self.accepted.setdefault(instance, {}).setdefault(ballot, {})[node_id] = value

    def _check_chosen(self, node_id: int, entry: LogEntry) -> None:
        for votes in self.accepted.pop(entry.instance, {}).values():
            if sum(1 for value in votes.values() if value == entry.value) >= self.quorum:
                return
        raise Violation(
            f"agreement: node {node_id} learned a value at instance {entry.instance} that no "
            "majority of acceptors accepted with one ballot"
        )

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

    def check_lease_order(self, holder: int, lease_end: int, observer: int, view_end: int) -> None:
        """5b. The reason 5 holds: no node stops believing in a lease before it ends."""
        if lease_end > view_end:
            raise Violation(
                f"lease order: node {holder}'s lease ends at {lease_end}, after node "
                f"{observer} stops believing in it at {view_end}"
            )
