"""The acceptor's rules, table-driven: promise only upward, accept at or above the promise."""

from __future__ import annotations

import pytest

from paxdb.ids import Ballot
from paxdb.paxos.acceptor import AcceptorState, decide_accept, decide_prepare
from paxdb.paxos.effects import AcceptorRecord
from paxdb.paxos.messages import Accept, Accepted, Prepare, Promise, Reject
from paxdb.paxos.values import Value, ValueKind

V1 = Value(ValueKind.SQL_BATCH, b"v1")
V2 = Value(ValueKind.SQL_BATCH, b"v2")
B1, B2, B3 = Ballot(1, 1), Ballot(2, 2), Ballot(3, 1)


@pytest.mark.parametrize(
    "promised, accepted, ballot, reply, persist, promised_after",
    [
        (Ballot(0, 0), None, B1, Promise(B1, 5, None, None), True, B1),
        (B1, None, B2, Promise(B2, 5, None, None), True, B2),
        (B2, None, B2, Promise(B2, 5, None, None), False, B2),  # duplicate Prepare
        (B2, None, B1, Reject(B1, 5, B2), False, B2),
        (B2, (B1, V1), B3, Promise(B3, 5, B1, V1), True, B3),  # reports its vote
    ],
)
def test_prepare(promised, accepted, ballot, reply, persist, promised_after) -> None:  # type: ignore[no-untyped-def]
    state = AcceptorState(promised, 5, *(accepted or (None, None)))
    decision = decide_prepare(state, Prepare(ballot, 5))
    assert decision.reply == reply
    assert decision.persist is persist
    assert state.promised == promised_after


@pytest.mark.parametrize(
    "promised, accepted, accept, reply, persist",
    [
        (Ballot(0, 0), None, Accept(B1, 5, V1, 0), Accepted(B1, 5), True),
        (B2, None, Accept(B2, 5, V1, 0), Accepted(B2, 5), True),  # skip-prepare at the promise
        (B2, None, Accept(B1, 5, V1, 0), Reject(B1, 5, B2), False),
        (B2, (B2, V1), Accept(B2, 5, V1, 0), Accepted(B2, 5), False),  # duplicate
        (B2, (B2, V1), Accept(B2, 5, V2, 0), None, False),  # same ballot, other value: bad
        (B2, (B1, V1), Accept(B3, 5, V2, 0), Accepted(B3, 5), True),  # higher ballot wins
    ],
)
def test_accept(promised, accepted, accept, reply, persist) -> None:  # type: ignore[no-untyped-def]
    state = AcceptorState(promised, 5, *(accepted or (None, None)))
    decision = decide_accept(state, accept)
    assert decision.reply == reply
    assert decision.persist is persist
    if reply is not None and isinstance(reply, Accepted):
        assert state.accepted_ballot == accept.ballot
        assert state.accepted_value == accept.value
        assert state.promised == accept.ballot


def test_restart_drops_a_vote_for_an_instance_already_chosen() -> None:
    record = AcceptorRecord(B2, 4, B2, V1)
    assert AcceptorState.from_record(record, 4).accepted_value == V1
    stale = AcceptorState.from_record(record, 6)
    assert stale.accepted_value is None
    assert stale.promised == B2  # The promise covers every later instance.
    assert stale.instance == 6


def test_an_acceptor_never_moves_back() -> None:
    state = AcceptorState(B1, 3)
    state.move_to(4)
    with pytest.raises(AssertionError):
        state.move_to(4)
