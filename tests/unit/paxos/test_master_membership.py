"""Master lease arithmetic and membership as values."""

from __future__ import annotations

import pytest

from paxdb.paxos.master import MasterClaim, MasterState, drift_margin_ticks
from paxdb.paxos.membership import Membership, MembershipChange, quorum_size
from paxdb.paxos.values import Value, ValueKind


@pytest.mark.parametrize("lease, ppm", [(200, 50_000), (40, 50_000), (30, 0), (1000, 100_000)])
def test_margin_makes_the_holder_lease_end_first_at_the_extreme_rates(lease: int, ppm: int) -> None:
    margin = drift_margin_ticks(lease, ppm)
    rho = ppm / 1_000_000
    slow, fast = 1 - rho, 1 + rho
    # Holder on the slowest clock counts `lease` ticks; an observer on the fastest clock
    # counts `lease + margin` ticks but may lose one tick to rounding.
    assert lease / slow <= (lease + margin - 1) / fast


def test_claim_round_trips_and_rejects_garbage() -> None:
    claim = MasterClaim(3, 200, 41, 7, 3)
    assert MasterClaim.from_value(claim.to_value()) == claim
    for payload in (
        b"",
        b"1 2 3 4",
        b"a b c d e",
        b"-1 2 3 4 1",
        b"1 0 3 4 1",
        b"1 2 3 0 1",
        b"1 2 3 4 -1",
    ):
        with pytest.raises(ValueError):
            MasterClaim.from_value(Value(ValueKind.MASTER, payload))


def test_holder_counts_from_issue_and_observers_from_learning_plus_margin() -> None:
    holder, observer = MasterState(), MasterState()
    claim = MasterClaim(1, 100, -1, 1, 1)
    assert holder.learn(claim, 0, now=10, node_id=1, issue_tick=4, margin_ticks=12)
    assert observer.learn(claim, 0, now=10, node_id=2, issue_tick=None, margin_ticks=12)
    assert holder.lease_end_tick == 104
    assert holder.holds_lease(1, 103) and not holder.holds_lease(1, 104)
    assert observer.view_end_tick == 122
    assert not observer.holds_lease(2, 50)
    assert observer.hint(2, 50) == 1
    assert observer.hint(2, 122) is None


def test_a_stale_claim_changes_nothing() -> None:
    state = MasterState()
    assert state.learn(MasterClaim(1, 100, -1, 1, 1), 0, 0, 1, 0, 5)
    assert not state.learn(MasterClaim(2, 100, -1, 1, 2), 3, 1, 1, None, 5)
    assert state.master == 1
    assert state.version == 0


def test_a_restarted_holder_without_its_issue_tick_holds_no_lease() -> None:
    state = MasterState()
    state.learn(MasterClaim(1, 100, -1, 1, 1), 0, now=5, node_id=1, issue_tick=None, margin_ticks=5)
    assert state.master == 1
    assert not state.holds_lease(1, 6)
    assert state.believes_in_master(6)


def test_membership_change_governs_the_next_instance_only_when_current() -> None:
    membership = Membership((1, 2, 3))
    assert membership.quorum == 2
    change = MembershipChange((1, 2, 3, 4), -1)
    assert MembershipChange.from_value(change.to_value()) == change
    assert membership.learn(change, 7)
    assert membership.members == (1, 2, 3, 4)
    assert membership.quorum == 3
    membership.assert_governs(8)
    with pytest.raises(AssertionError):
        membership.assert_governs(7)
    assert not membership.learn(MembershipChange((1, 2), -1), 9)  # stale version
    assert membership.members == (1, 2, 3, 4)


@pytest.mark.parametrize("count, quorum", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3)])
def test_quorum_is_a_strict_majority(count: int, quorum: int) -> None:
    assert quorum_size(count) == quorum


@pytest.mark.parametrize("payload", [b"-1 3,2", b"-1 2,2", b"-1 ", b"x 1,2"])
def test_membership_payload_must_be_sorted_unique_and_wellformed(payload: bytes) -> None:
    with pytest.raises(ValueError):
        MembershipChange.from_value(Value(ValueKind.MEMBERSHIP, payload))
