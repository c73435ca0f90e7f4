"""The acceptor role: promise and accept rules for one group.

Theory of operation. The acceptor keeps one promise, `promised`, that covers every
instance from its current `instance` on, and at most one vote, for `instance` itself.
It votes only at its current instance, the first one it has not learned as chosen:
a message about an earlier instance is answered with the chosen values instead (the
sender is behind), and a message about a later one makes it catch up first. Because
an acceptor never votes beyond its current instance, a promise given at instance i
also means "I have voted at no instance after i", which is what makes a promise
quorum at i valid for every later instance, so a master skips phase 1 afterwards.

Rules (classic Paxos, per instance, with a global promise):
- Prepare(b): if b > promised, promise b and report the vote at `instance`; if
  b == promised, repeat the promise (a duplicate); otherwise reject.
- Accept(b, v): if b >= promised, vote (b, v) and promise b; otherwise reject.

Every new promise or vote must be durable before the answer leaves the node: the
decisions below say `persist=True`, and the replica puts the record before the reply.

This module computes decisions; the replica applies them.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb.ids import BALLOT_ZERO, Ballot
from paxdb.paxos.effects import AcceptorRecord
from paxdb.paxos.messages import Accept, Accepted, Prepare, Promise, Reject
from paxdb.paxos.values import Value


@dataclass(slots=True)
class AcceptorState:
    promised: Ballot = BALLOT_ZERO
    instance: int = 0
    accepted_ballot: Ballot | None = None
    accepted_value: Value | None = None
    # The instance of the newest acceptor record holding a promise (-1: it never promised
    # anything): every promise and vote was given at or below it. Reported to rejoining
    # peers (fence.py).
    vote_instance: int = -1

    def check(self) -> None:
        assert (self.accepted_ballot is None) == (self.accepted_value is None)
        if self.accepted_ballot is not None:
            assert self.accepted_ballot <= self.promised

    def record(self) -> AcceptorRecord:
        """The state to persist; once it holds a promise, `vote_instance` covers it."""
        assert self.vote_instance <= self.instance, "an acceptor never goes back"
        if self.promised > BALLOT_ZERO:
            self.vote_instance = self.instance
        return AcceptorRecord(
            self.promised, self.instance, self.accepted_ballot, self.accepted_value
        )

    @staticmethod
    def from_record(record: AcceptorRecord | None, instance_next: int) -> AcceptorState:
        """Rebuild from disk; a vote for an instance already chosen is dropped."""
        if record is None:
            return AcceptorState(instance=instance_next)
        vote_instance = record.instance if record.promised > BALLOT_ZERO else -1
        state = AcceptorState(record.promised, instance_next, vote_instance=vote_instance)
        if record.instance == instance_next:
            state.accepted_ballot = record.accepted_ballot
            state.accepted_value = record.accepted_value
        state.check()
        return state

    def move_to(self, instance: int) -> None:
        """The acceptor's instance advances when the learner learns; the vote is spent."""
        assert instance > self.instance, "an acceptor never goes back"
        self.instance = instance
        self.accepted_ballot = None
        self.accepted_value = None


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer, and whether the acceptor state changed and must be persisted first."""

    reply: Promise | Accepted | Reject | None
    persist: bool


def decide_prepare(state: AcceptorState, prepare: Prepare) -> Decision:
    assert prepare.instance == state.instance
    if prepare.ballot > state.promised:
        state.promised = prepare.ballot
        state.check()
        return Decision(_promise(state, prepare.ballot), persist=True)
    if prepare.ballot == state.promised:
        return Decision(_promise(state, prepare.ballot), persist=False)
    return Decision(Reject(prepare.ballot, prepare.instance, state.promised), persist=False)


def decide_accept(state: AcceptorState, accept: Accept) -> Decision:
    """Vote for the value unless a higher ballot was promised.

    Returns `reply=None` for an Accept that contradicts a vote already given with the
    same ballot (a proposer never sends two values with one ballot at one instance;
    such input is dropped and counted by the replica).
    """
    assert accept.instance == state.instance
    if accept.ballot < state.promised:
        return Decision(Reject(accept.ballot, accept.instance, state.promised), persist=False)
    if state.accepted_ballot == accept.ballot:
        if state.accepted_value != accept.value:
            return Decision(None, persist=False)
        return Decision(Accepted(accept.ballot, accept.instance), persist=False)
    assert state.accepted_ballot is None or state.accepted_ballot < accept.ballot
    state.promised = accept.ballot
    state.accepted_ballot = accept.ballot
    state.accepted_value = accept.value
    state.check()
    return Decision(Accepted(accept.ballot, accept.instance), persist=True)


def _promise(state: AcceptorState, ballot: Ballot) -> Promise:
    return Promise(ballot, state.instance, state.accepted_ballot, state.accepted_value)
