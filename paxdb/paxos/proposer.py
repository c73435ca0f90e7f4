"""The proposer role: ballots, the two phases, skip-prepare, and batching.

Theory of operation. paxdb keeps **one instance in flight, with batching**, as
PhxPaxos does, rather than a window of several instances. The cost of a write is the
fsync and the round trip, and both are paid once per *batch*: while one instance is in
flight, requests queue up and all of them go into the next value. A window would
overlap round trips but not fsyncs (they are serialized on each disk anyway), while it
would complicate the learner, the chain, membership (alpha = 1 means a change governs
the very next instance) and recovery. So throughput comes from batch size, and the
queue bounds latency to about two rounds.

Phases. A round at instance i starts in phase 1 (Prepare with a fresh ballot) unless
this proposer already holds a promise quorum for its ballot from an instance <= i under
the current membership (`prepared_from`): then it goes straight to phase 2. That is
the steady state of a master: **one round trip and one persisted record per node per
value**. After phase 1, the value is the accepted value of the highest ballot among
the promises if any (it may already be chosen), otherwise the value the replica wants.
A Reject means a higher ballot exists: the proposer forgets its quorum and backs off.
A round that gets no quorum in `phase_timeout_ticks` resends to the silent acceptors,
and after `ROUND_ATTEMPTS_MAX` tries starts over with a higher ballot.

The proposer does not know who is master and does not decide *what* to propose; the
replica does. It owns the request queue and turns queued requests into batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum

from paxdb.ids import BALLOT_ZERO, Ballot
from paxdb.paxos.messages import Accept, Accepted, Prepare, Promise, Reject
from paxdb.paxos.options import Options
from paxdb.paxos.stats import Stats
from paxdb.paxos.values import Value, ValueKind, encode_batch

ROUND_ATTEMPTS_MAX = 3  # Sends of one phase before starting over with a higher ballot.


class Phase(Enum):
    IDLE = "idle"
    PREPARE = "prepare"
    ACCEPT = "accept"


@dataclass(frozen=True, slots=True)
class Batch:
    """Local requests joined into one value; `tokens[k]` is item k of `value`."""

    value: Value
    tokens: tuple[Hashable, ...]


@dataclass(slots=True)
class Round:
    """One attempt to get a value chosen at `instance`."""

    instance: int
    ballot: Ballot
    wanted: Value
    phase: Phase = Phase.PREPARE
    value: Value | None = None  # The value in phase 2.
    promises: dict[int, Promise] = field(default_factory=dict)
    accepted_by: set[int] = field(default_factory=set)
    accepted_count: int = 0
    started_tick: int = 0
    attempts: int = 1


class Proposer:
    """Proposer state of one replica. Methods return the messages to broadcast."""

    def __init__(self, node_id: int, options: Options, stats: Stats) -> None:
        self.node_id = node_id
        self.options = options
        self.stats = stats
        self.ballot = BALLOT_ZERO  # The last ballot this proposer used.
        self.highest_seen = BALLOT_ZERO
        self.prepared_from: int | None = None  # Quorum for `ballot` from this instance on.
        self.prepared_members_version = -2
        self.round: Round | None = None
        self.retry_tick = 0
        self.queue: deque[tuple[Hashable, Value]] = deque()
        self.queued_bytes = 0
        self.batch: Batch | None = None  # Our own batch, proposed at `batch_instance`.
        self.batch_instance = -1

    # Requests.

    def enqueue(self, token: Hashable, value: Value, front: bool = False) -> bool:
        if len(self.queue) >= self.options.proposals_queued_max:
            self.stats.bump("propose_queue_full")
            return False
        if front:
            self.queue.appendleft((token, value))
        else:
            self.queue.append((token, value))
        self.queued_bytes += len(value.payload)
        return True

    def has_membership_queued(self) -> bool:
        in_batch = self.batch is not None and self.batch.value.kind is ValueKind.MEMBERSHIP
        return in_batch or any(v.kind is ValueKind.MEMBERSHIP for _, v in self.queue)

    def take_batch(self) -> Batch | None:
        """The next value to propose from the queue: one membership change alone, or up
        to the batch bounds of SQL requests."""
        if not self.queue:
            return None
        token, value = self.queue[0]
        if value.kind is not ValueKind.SQL_BATCH:
            self._pop()
            return Batch(value, (token,))
        tokens: list[Hashable] = []
        items: list[bytes] = []
        size = 0
        while self.queue and len(items) < self.options.batch_values_max:
            token, value = self.queue[0]
            if value.kind is not ValueKind.SQL_BATCH:
                break
            if items and size + len(value.payload) > self.options.batch_bytes_max:
                break
            self._pop()
            tokens.append(token)
            items.append(value.payload)
            size += len(value.payload)
        return Batch(Value(ValueKind.SQL_BATCH, encode_batch(items)), tuple(tokens))

    def pop_front(self) -> Hashable:
        """Remove the first queued request; returns its token."""
        token = self.queue[0][0]
        self._pop()
        return token

    def _pop(self) -> None:
        _, value = self.queue.popleft()
        self.queued_bytes -= len(value.payload)
        assert self.queued_bytes >= 0

    def drain(self) -> list[Hashable]:
        """Remove every queued request (the node is no longer master)."""
        tokens = [token for token, _ in self.queue]
        self.queue.clear()
        self.queued_bytes = 0
        return tokens

    # Rounds.

    @property
    def is_idle(self) -> bool:
        return self.round is None

    def is_prepared_for(self, instance: int, members_version: int) -> bool:
        return (
            self.prepared_from is not None
            and self.prepared_from <= instance
            and self.prepared_members_version == members_version
            and self.ballot >= self.highest_seen
        )

    def next_ballot(self, instance: int, members_version: int) -> Ballot:
        """The ballot the next round at `instance` will use."""
        if self.is_prepared_for(instance, members_version):
            return self.ballot
        return max(self.ballot, self.highest_seen).next_for(self.node_id)

    def start(
        self, instance: int, wanted: Value, now: int, members_version: int
    ) -> Prepare | Accept | None:
        """Begin a round; returns the message to broadcast (None until chain is known)."""
        assert self.round is None, "one round at a time"
        if self.is_prepared_for(instance, members_version):
            self.round = Round(instance, self.ballot, wanted, Phase.ACCEPT, wanted)
            self.round.started_tick = now
            self.stats.bump("round_skip_prepare")
            return None  # The replica builds the Accept; it knows the chain.
        self.ballot = max(self.ballot, self.highest_seen).next_for(self.node_id)
        self.highest_seen = self.ballot
        self.prepared_from = None
        self.round = Round(instance, self.ballot, wanted, started_tick=now)
        self.stats.bump("round_prepare")
        return Prepare(self.ballot, instance)

    def on_promise(
        self, source: int, promise: Promise, quorum: int, members_version: int
    ) -> Value | None:
        """Count a promise; returns the value to accept once a quorum promised."""
        current = self.round
        if current is None or current.phase is not Phase.PREPARE:
            return None
        if promise.ballot != current.ballot or promise.instance != current.instance:
            self.stats.bump("promise_stale")
            return None
        current.promises[source] = promise
        if len(current.promises) < quorum:
            return None
        current.phase = Phase.ACCEPT
        current.value = self._value_after_prepare(current)
        self.prepared_from = current.instance
        self.prepared_members_version = members_version
        return current.value

    def _value_after_prepare(self, current: Round) -> Value:
        """The accepted value with the highest ballot among promises, else our own."""
        best: Promise | None = None
        for promise in current.promises.values():
            if promise.accepted_ballot is None:
                continue
            if best is None or promise.accepted_ballot > best.accepted_ballot:  # type: ignore[operator]
                best = promise
        if best is None or self.options.mutant == "proposer-ignores-accepted":
            return current.wanted
        assert best.accepted_value is not None
        if best.accepted_value != current.wanted:
            self.stats.bump("round_adopted_value")
        return best.accepted_value

    def on_accepted(self, source: int, accepted: Accepted, quorum: int) -> bool:
        """Count an acceptance; True exactly once, when the value became chosen."""
        current = self.round
        if current is None or current.phase is not Phase.ACCEPT:
            return False
        if accepted.ballot != current.ballot or accepted.instance != current.instance:
            self.stats.bump("accepted_stale")
            return False
        if source in current.accepted_by:
            self.stats.bump("accepted_duplicate")
            if self.options.mutant != "learner-counts-duplicates":
                return False
        current.accepted_by.add(source)
        current.accepted_count += 1
        return current.accepted_count == quorum

    def on_reject(self, reject: Reject, now: int, backoff_ticks: int) -> None:
        self.highest_seen = max(self.highest_seen, reject.promised)
        current = self.round
        if current is None or reject.ballot != current.ballot:
            return
        if reject.instance != current.instance:
            return
        self.stats.bump("round_rejected")
        self.prepared_from = None
        self.round = None
        self.retry_tick = now + backoff_ticks

    def observe_ballot(self, ballot: Ballot) -> None:
        self.highest_seen = max(self.highest_seen, ballot)

    def end_round(self) -> None:
        self.round = None

    def forget_quorum(self) -> None:
        self.prepared_from = None

    def timed_out(self, now: int) -> bool:
        current = self.round
        return current is not None and now - current.started_tick >= (
            self.options.phase_timeout_ticks
        )

    def on_timeout(self, now: int, backoff_ticks: int) -> bool:
        """Returns True if the phase should be resent, False if the round was abandoned."""
        current = self.round
        assert current is not None
        if current.attempts < ROUND_ATTEMPTS_MAX:
            current.attempts += 1
            current.started_tick = now
            self.stats.bump("round_resend")
            return True
        self.stats.bump("round_timeout")
        self.prepared_from = None
        self.round = None
        self.retry_tick = now + backoff_ticks
        return False
