"""The replica's proposer side: what to propose at its current instance, and the rounds.

Theory of operation. proposer.py keeps the round state and decides on Promises,
Accepteds, Rejects and timeouts; these functions pick the value and carry the round
out. After every input, while idle at its current instance (`maybe_propose`), a
voting replica proposes, in this order of precedence:
1. as the master handing its role over: only the hand-over's MASTER value
   (mastering.py);
2. as the master whose lease is due for renewal, or as a voter that believes in no
   master after its election delay: a MASTER value for itself;
3. as the master: its batch again while that batch's instance is undecided, else the
   next batch of queued requests (a queued membership change no longer current is
   refused first: `drop_stale_membership`).
A fenced or shy replica (fence.py), a learner and an outsider propose nothing.

Invariants, asserted here: an Accept is sent only in phase 2 of a round at the
replica's current instance, by a voter, under a membership governing that instance;
our own membership change is based on the version in force (one change in flight).
A batch is completed when its instance is learned: CHOSEN if it holds our value, else
re-queued in order (still the master) or refused NOT_MASTER.

These functions are part of `Replica` (replica.py): they change its state directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxdb.paxos import mastering
from paxdb.paxos.chain import chain_next
from paxdb.paxos.effects import Completion, Envelope, Outcome
from paxdb.paxos.membership import MembershipChange
from paxdb.paxos.messages import (
    Accept,
    Accepted,
    Chosen,
    LogEntry,
    Message,
    Prepare,
    Promise,
    Reject,
)
from paxdb.paxos.proposer import Batch, Phase
from paxdb.paxos.values import Value, ValueKind, decode_batch

if TYPE_CHECKING:
    from paxdb.paxos.replica import Replica

# Deciding what to propose.


def maybe_propose(replica: Replica) -> bool:
    """Start a round at our current instance if we may and have something to propose."""
    if replica.fence is not None or replica.shy is not None:
        return False
    if not replica.membership.is_member(replica.node_id):
        assert replica.proposer.is_idle, "a round ends when its instance is learned"
        return False  # Learners and outsiders never propose.
    if not replica.proposer.is_idle or replica.now < replica.proposer.retry_tick:
        return False
    wanted = wanted_value(replica)
    if wanted is None:
        return False
    # Our own acceptor's promise is a ballot we have seen: a round below it would
    # only be rejected by ourselves (it matters to a hand-over's target, which has
    # voted for the old master's ballot but seen no Promise or Reject of it).
    replica.proposer.observe_ballot(replica.acceptor.promised)
    message = replica.proposer.start(
        replica.instance, wanted, replica.now, replica.membership.version
    )
    if message is None:
        send_accept(replica, wanted)
    else:
        replica._broadcast(message)
    return True


def wanted_value(replica: Replica) -> Value | None:
    if replica.handover is not None:
        return mastering.handover_value(replica, replica.handover)
    is_master = replica._holds_lease()
    if mastering.lease_due(replica) or (not is_master and mastering.may_campaign(replica)):
        return mastering.master_claim(replica)
    batch = replica.proposer.batch
    if batch is not None:
        # Our batch's instance is undecided: the master retries it, others wait.
        assert replica.proposer.batch_instance == replica.instance
        return batch.value if is_master else None
    if is_master:
        drop_stale_membership(replica)
    if is_master and replica.proposer.queue:
        batch = replica.proposer.take_batch()
        assert batch is not None
        replica.proposer.batch = batch
        replica.proposer.batch_instance = replica.instance
        return batch.value
    return None


def drop_stale_membership(replica: Replica) -> None:
    """A queued membership change whose version is no longer in force (another change
    was chosen meanwhile, proposed by an earlier master) is refused, never proposed:
    so our own changes are current when chosen (asserted in `send_accept`)."""
    queue = replica.proposer.queue
    while queue and queue[0][1].kind is ValueKind.MEMBERSHIP:
        change = MembershipChange.from_value(queue[0][1])  # Checked when proposed.
        if change.prev_version == replica.membership.version:
            return
        token = replica.proposer.pop_front()
        replica.stats.bump("membership_refused")
        reason = stale_reason(replica, change.prev_version)
        replica.outbox.completions.append(Completion(token, Outcome.DROPPED, reason=reason))


def stale_reason(replica: Replica, prev_version: int) -> str:
    return (
        f"the change is based on membership version {prev_version}, but version "
        f"{replica.membership.version} is in force; read the membership again and retry"
    )


def membership_refusal(replica: Replica, value: Value) -> str | None:
    """Why the master refuses to propose this MEMBERSHIP value, or None."""
    try:
        change = MembershipChange.from_value(value)
    except ValueError as error:
        return f"malformed membership change: {error}"
    if change.prev_version != replica.membership.version:
        return stale_reason(replica, change.prev_version)
    if replica.node_id not in change.members:
        return (
            f"the change takes the vote from node {replica.node_id}, the master: transfer "
            "the master role to another voter first"
        )
    if replica.proposer.has_membership_queued():
        return "a membership change is in flight"
    return None


def resolve_batch(replica: Replica, entry: LogEntry | None) -> None:
    """Our batch's instance was decided (or abandoned): complete or re-queue it."""
    batch = replica.proposer.batch
    if batch is None:
        return
    if entry is not None and entry.instance != replica.proposer.batch_instance:
        return
    replica.proposer.batch = None
    if entry is not None and entry.value == batch.value:
        for index, token in enumerate(batch.tokens):
            completion = Completion(token, Outcome.CHOSEN, entry.instance, index)
            replica.outbox.completions.append(completion)
        return
    replica.stats.bump("batch_lost_instance")
    if replica._holds_lease():
        requeue(replica, batch)
    else:
        for token in batch.tokens:
            replica._complete_not_master(token)


def requeue(replica: Replica, batch: Batch) -> None:
    if batch.value.kind is not ValueKind.SQL_BATCH:
        assert len(batch.tokens) == 1
        replica.proposer.enqueue(batch.tokens[0], batch.value, front=True)
        return
    items = decode_batch(batch.value.payload)
    for token, item in reversed(list(zip(batch.tokens, items, strict=True))):
        replica.proposer.enqueue(token, Value(ValueKind.SQL_BATCH, item), front=True)


# Running the round.


def on_promise(replica: Replica, source: int, promise: Promise) -> None:
    replica.proposer.observe_ballot(promise.ballot)
    if not replica.membership.is_member(source):
        replica.stats.bump("drop_non_member")
        return
    value = replica.proposer.on_promise(
        source, promise, replica.membership.quorum, replica.membership.version
    )
    if value is not None:
        send_accept(replica, value)


def send_accept(replica: Replica, value: Value) -> None:
    current = replica.proposer.round
    assert current is not None and current.phase is Phase.ACCEPT
    assert current.instance == replica.instance
    replica.membership.assert_governs(current.instance)
    assert replica.membership.is_member(replica.node_id), "only a voter proposes"
    if value.kind is ValueKind.MEMBERSHIP and value is current.wanted:
        # Our own change: checked against the version in force when taken.
        change = MembershipChange.from_value(value)
        assert change.prev_version == replica.membership.version, "one change in flight"
    current.value = value
    replica._broadcast(
        Accept(current.ballot, current.instance, value, replica.chain, replica.previous_ballot),
        to_learners=True,
    )


def on_accepted(replica: Replica, source: int, accepted: Accepted) -> None:
    counts = replica.membership.is_member(source)
    if replica.options.mutant == "learner-votes-count":
        counts = counts or replica.membership.is_learner(source)
    if not counts:
        replica.stats.bump("drop_non_member")
        return
    if not replica.proposer.on_accepted(source, accepted, replica.membership.quorum):
        return
    current = replica.proposer.round
    assert current is not None and current.value is not None
    entry = LogEntry(current.instance, current.value, chain_next(replica.chain, current.value))
    notice = Chosen(current.ballot, current.instance, entry.chain)
    replica._learn(entry, current.ballot)
    for member in replica.membership.members + replica.membership.learners:
        if member != replica.node_id:
            replica.outbox.send.append(Envelope(replica.group, replica.node_id, member, notice))


def on_reject(replica: Replica, reject: Reject) -> None:
    current = replica.proposer.round
    replica.proposer.on_reject(reject, replica.now, retry_delay(replica))
    if current is not None and replica.proposer.round is None:
        round_failed(replica)


def on_round_timeout(replica: Replica) -> None:
    if replica.proposer.on_timeout(replica.now, retry_delay(replica)):
        resend_phase(replica)
    else:
        round_failed(replica)


def resend_phase(replica: Replica) -> None:
    current = replica.proposer.round
    assert current is not None
    if current.phase is Phase.PREPARE:
        message: Message = Prepare(current.ballot, current.instance)
        answered = set(current.promises)
    else:
        assert current.value is not None
        message = Accept(
            current.ballot, current.instance, current.value, replica.chain, replica.previous_ballot
        )
        answered = current.accepted_by
    for member in replica.membership.members:
        if member not in answered and member != replica.node_id:
            replica.outbox.send.append(Envelope(replica.group, replica.node_id, member, message))


def round_failed(replica: Replica) -> None:
    """Our round ended without a decision; the instance stays open."""
    replica.campaign_tick = max(replica.campaign_tick, replica.proposer.retry_tick)


def abandon_round(replica: Replica) -> None:
    if replica.proposer.round is not None:
        replica.proposer.end_round()
    resolve_batch(replica, None)


def retry_delay(replica: Replica) -> int:
    """Randomized backoff after a failed round, over at least a round's timeout, so
    duelling candidates separate whatever the election jitter is."""
    if replica.is_master:
        return 1 + replica.jitter.below(3)
    spread = max(replica.options.election_jitter_ticks, 2 * replica.options.phase_timeout_ticks)
    return 1 + replica.jitter.below(spread)
