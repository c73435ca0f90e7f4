"""Membership changes in the core: the payload, learners, the master hand-over, a joiner.

membership.py says how voters and learners change; master.py why a hand-over keeps at
most one lease; fence.py why a joiner may vote once promoted."""

from __future__ import annotations

import dataclasses

import pytest
from harness import FAST, GROUP, Cluster

from paxdb.ids import Ballot
from paxdb.limits import LEARNERS_MAX, MEMBERS_MAX, MEMBERSHIP_EXTRA_MAX, NODE_ID_MAX
from paxdb.paxos.effects import CheckpointMeta, Envelope, Outcome, Role
from paxdb.paxos.fence import Fence
from paxdb.paxos.master import MasterClaim
from paxdb.paxos.membership import Membership, MembershipChange
from paxdb.paxos.messages import Accept, Accepted, CatchupReply, Chosen, Prepare
from paxdb.paxos.values import Value, ValueKind

# The payload.


@pytest.mark.parametrize(
    "change",
    [
        MembershipChange((1, 2, 3), -1),
        MembershipChange((1, 2, 3), 7, (4,)),
        MembershipChange((2,), 0, (1, 3, 9), b""),
        MembershipChange((1, 2), 12, (), b"\x00 1,2 3 \xff addresses, with spaces"),
        MembershipChange((0, NODE_ID_MAX), 5, (7,), b"x" * MEMBERSHIP_EXTRA_MAX),
        MembershipChange(tuple(range(MEMBERS_MAX)), 1, tuple(range(100, 100 + LEARNERS_MAX))),
    ],
)
def test_a_change_round_trips_all_four_fields(change: MembershipChange) -> None:
    value = change.to_value()
    assert value.kind is ValueKind.MEMBERSHIP
    assert MembershipChange.from_value(value) == change
    assert MembershipChange.from_value(Value.decode(value.encode())) == change


MALFORMED = [
    ("old format", b"-1 1,2,3"),
    ("nothing", b""),
    ("no voter", b"-1  4 "),
    ("unsorted voters", b"-1 3,2  "),
    ("duplicate voters", b"-1 2,2  "),
    ("unsorted learners", b"-1 1 5,4 "),
    ("voter and learner", b"-1 1,2 2 "),
    ("too many voters", b"-1 " + ",".join(map(str, range(MEMBERS_MAX + 1))).encode() + b"  "),
    ("too many learners", b"-1 1 " + ",".join(map(str, range(2, 3 + LEARNERS_MAX))).encode()
     + b" "),
    ("id out of range", b"-1 %d  " % (NODE_ID_MAX + 1)),
    ("negative id", b"-1 -1,2  "),
    ("version below -1", b"-2 1  "),
    ("version not a number", b"x 1  "),
    ("plus sign", b"+1 1  "),
    ("leading zero", b"-1 01  "),
    ("underscore", b"-1 1_0  "),
    ("empty id", b"-1 1,,2  "),
    ("trailing comma", b"-1 1,  "),
    ("extra too long", b"-1 1  " + b"x" * (MEMBERSHIP_EXTRA_MAX + 1)),
    ("missing learners", b"-1 1"),
    ("huge number", b"-1 " + b"9" * 5000 + b"  "),
]  # fmt: skip


@pytest.mark.parametrize("payload", [m[1] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_a_malformed_payload_is_rejected(payload: bytes) -> None:
    with pytest.raises(ValueError):
        MembershipChange.from_value(Value(ValueKind.MEMBERSHIP, payload))


def test_a_value_of_another_kind_is_not_a_change() -> None:
    with pytest.raises(ValueError):
        MembershipChange.from_value(Value(ValueKind.SQL_BATCH, b"-1 1,2,3  "))


@pytest.mark.parametrize(
    "members, learners, extra",
    [((), (), b""), ((1, 2), (2,), b""), ((2, 1), (), b""), ((1,), (), b"x" * 5000)],
)
def test_an_invalid_change_is_a_bug_where_it_is_built(
    members: tuple[int, ...], learners: tuple[int, ...], extra: bytes
) -> None:
    with pytest.raises(AssertionError):
        MembershipChange(members, -1, learners, extra)


def test_the_membership_in_force_knows_its_learners() -> None:
    membership = Membership((1, 2, 3))
    assert membership.learn(MembershipChange((1, 2, 3), -1, (4,)), 5)
    assert membership.is_learner(4) and not membership.is_member(4)
    assert membership.quorum == 2  # Learners never count.
    assert membership.learn(MembershipChange((1, 2, 3, 4), 5), 9)
    assert membership.is_member(4) and not membership.is_learner(4)
    assert membership.quorum == 3


# Helpers.


def elected(count: int = 3, **options: object) -> Cluster:
    cluster = Cluster(count, dataclasses.replace(FAST, **options))  # type: ignore[arg-type]
    cluster.elect(1)
    cluster.deliver_all()
    return cluster


def change(cluster: Cluster, voters: tuple[int, ...], learners: tuple[int, ...] = ()) -> Value:
    version = cluster.replica(1).membership.version
    return MembershipChange(voters, version, learners).to_value()


def propose_change(cluster: Cluster, master: int, value: Value, token: str) -> Outcome:
    cluster.replica(master).propose(value, token)
    cluster.process(master)
    cluster.deliver_all()
    done = [c for c in cluster.nodes[master].completions if c.token == token]
    assert len(done) == 1, done
    return done[0].outcome


def with_learner(count: int = 3) -> Cluster:
    """Voters 1..count, master 1, and node count + 1 a learner that caught up."""
    cluster = elected(count)
    learner = count + 1
    cluster.join(learner)
    value = change(cluster, cluster.members, (learner,))
    assert propose_change(cluster, 1, value, "add") is Outcome.CHOSEN
    settle(cluster, learner)
    return cluster


def settle(cluster: Cluster, joiner: int, ticks_max: int = 200) -> None:
    """Tick everyone (the master renews its lease, so instances advance past the fence's
    horizon) until `joiner` lifted its fence and caught up."""
    for _ in range(ticks_max):
        for node_id in sorted(cluster.nodes):
            cluster.tick(node_id)
        cluster.deliver_all()
        replica = cluster.replica(joiner)
        if not replica.fenced and replica.instance == cluster.replica(1).instance:
            return
    raise AssertionError(f"node {joiner} did not lift its fence and catch up")


# Proposing a change.


def test_the_master_refuses_a_stale_a_malformed_or_a_self_removing_change() -> None:
    cluster = elected()
    replica = cluster.replica(1)
    version = replica.membership.version
    cases = {
        "stale": MembershipChange((1, 2, 3, 4), version + 5).to_value(),
        "malformed": Value(ValueKind.MEMBERSHIP, b"-1 1,2,3"),
        "no voter": Value(ValueKind.MEMBERSHIP, b"%d  1,2 " % version),
        "self": MembershipChange((2, 3), version).to_value(),
    }
    for token, value in cases.items():
        replica.propose(value, token)
    cluster.process(1)
    reasons = {c.token: c.reason for c in cluster.nodes[1].completions if c.token in cases}
    assert set(reasons) == set(cases)
    assert all(c.outcome is Outcome.DROPPED for c in cluster.nodes[1].completions[-4:])
    assert "version" in reasons["stale"] and "in force" in reasons["stale"]
    assert "malformed" in reasons["malformed"]
    assert "at least one voter" in reasons["no voter"]
    assert "transfer the master role" in reasons["self"]
    assert not cluster.pending


def test_one_change_in_flight() -> None:
    cluster = elected()
    cluster.replica(1).propose(change(cluster, (1, 2, 3), (4,)), "first")
    cluster.replica(1).propose(change(cluster, (1, 2, 3), (5,)), "second")
    cluster.process(1)
    second = cluster.nodes[1].completions[-1]
    assert second.token == "second" and second.outcome is Outcome.DROPPED
    assert "in flight" in second.reason
    cluster.deliver_all()
    assert cluster.nodes[1].completions[-1].outcome is Outcome.CHOSEN
    assert cluster.replica(2).membership.learners == (4,)


def test_a_queued_change_made_stale_is_dropped_when_taken() -> None:
    cluster = elected()
    replica = cluster.replica(1)
    replica.propose(Value(ValueKind.SQL_BATCH, b"w"), "w")  # Takes the instance.
    replica.propose(change(cluster, (1, 2, 3), (4,)), "m")  # Queued behind it.
    replica.membership.version = 99  # As if an earlier master's change was chosen meanwhile.
    cluster.process(1)
    cluster.deliver_all()
    done = {c.token: c for c in cluster.nodes[1].completions}
    assert done["w"].outcome is Outcome.CHOSEN
    assert done["m"].outcome is Outcome.DROPPED and "in force" in done["m"].reason
    assert replica.stats.counts["membership_refused"] == 1


# Learners.


def test_a_learner_learns_in_the_steady_state_and_never_votes() -> None:
    cluster = with_learner()
    learner = cluster.replica(4)
    assert learner.role is Role.LEARNER
    assert learner.status().learners == (4,)
    cluster.propose(1, b"INSERT 1", "t1")
    accepts = sorted(e.target for e in cluster.pending if isinstance(e.message, Accept))
    assert accepts == [2, 3, 4]  # Learners get every Accept.
    assert not any(isinstance(e.message, Prepare) and e.target == 4 for e in cluster.pending)
    cluster.deliver_all()
    assert cluster.nodes[1].completions[-1].outcome is Outcome.CHOSEN
    assert cluster.replica(4).instance == cluster.replica(1).instance  # From Chosen.
    assert cluster.replica(4).stats.counts["non_voter_heard_accept"] >= 1
    record = cluster.nodes[4].store.load_acceptor(GROUP)  # The fence's lift wrote one.
    assert record is not None and record.accepted_ballot is None  # But never a vote.


def test_a_learner_is_never_counted_toward_a_quorum() -> None:
    cluster = with_learner()
    cluster.propose(1, b"x", "x")
    for voter in (2, 3):
        cluster.drop(Accept, 1, voter)
    cluster.deliver_one(Accept, 1, 4)
    assert not any(isinstance(e.message, Accepted) for e in cluster.pending)  # It is silent.
    # Even a forged Accepted from the learner is not counted.
    master = cluster.replica(1)
    current = master.proposer.round
    assert current is not None
    master.step(Envelope(GROUP, 4, 1, Accepted(current.ballot, current.instance)))
    cluster.process(1)
    assert not any(c.token == "x" for c in cluster.nodes[1].completions)
    assert master.stats.counts["drop_non_member"] == 1
    assert not any(isinstance(e.message, Chosen) for e in cluster.pending)


def test_under_the_mutant_a_learner_vote_chooses_a_value() -> None:
    cluster = with_learner()
    for node in cluster.nodes.values():  # Same cluster, with the flaw switched on.
        assert node.replica is not None
        node.replica.options = dataclasses.replace(FAST, mutant="learner-votes-count")
    cluster.propose(1, b"x", "x")
    for voter in (2, 3):
        cluster.drop(Accept, 1, voter)
    cluster.deliver_one(Accept, 1, 4)
    cluster.deliver_one(Accepted, 4, 1)
    assert cluster.nodes[1].completions[-1].outcome is Outcome.CHOSEN  # With one voter!


def test_learners_carry_through_checkpoint_meta_and_restore() -> None:
    cluster = with_learner()
    replica = cluster.replica(1)
    meta = replica.checkpoint_meta(replica.instance)
    assert meta is not None and meta.learners == (4,)
    fresh = Cluster(3, FAST, seed=5)
    ahead = dataclasses.replace(meta, instance_next=meta.instance_next + 3)
    fresh.replica(2).restore(ahead)
    assert fresh.replica(2).membership.learners == (4,)
    assert CheckpointMeta(1, 0, (1,), -1, None, -1).learners == ()


# A joiner: outsider, then learner, then voter.


def test_a_joining_outsider_becomes_learner_then_voter() -> None:
    cluster = elected()
    cluster.propose(1, b"before", "before")
    cluster.deliver_all()
    cluster.join(4)
    joiner = cluster.replica(4)
    assert joiner.fenced
    assert joiner.role is Role.OUTSIDER
    assert joiner.membership.members == (1, 2, 3)  # The bootstrap configuration.
    assert propose_change(cluster, 1, change(cluster, (1, 2, 3), (4,)), "add") is Outcome.CHOSEN
    settle(cluster, 4)  # Probes: catch-up from the voters, and the fence's reports.
    assert cluster.replica(4).role is Role.LEARNER
    assert not cluster.replica(4).fenced
    assert cluster.replica(4).instance == cluster.replica(1).instance
    promote = change(cluster, (1, 2, 3, 4))
    assert propose_change(cluster, 1, promote, "promote") is Outcome.CHOSEN
    cluster.deliver_all()
    assert cluster.replica(4).role is Role.FOLLOWER
    cluster.propose(1, b"after", "after")
    assert any(isinstance(e.message, Prepare) and e.target == 4 for e in cluster.pending)
    cluster.deliver_all()
    assert cluster.nodes[1].completions[-1].outcome is Outcome.CHOSEN
    assert cluster.replica(4).stats.counts.get("non_voter_heard_accept", 0) >= 1
    assert cluster.nodes[4].store.load_acceptor(GROUP) is not None  # It votes now.
    assert cluster.nodes[4].applied[-1].value.payload.endswith(b"after")


# The hand-over.


def test_only_the_master_may_hand_over() -> None:
    cluster = elected()
    cluster.replica(2).transfer_master(3, "t")
    cluster.process(2)
    done = cluster.nodes[2].completions[-1]
    assert done.outcome is Outcome.NOT_MASTER and done.master_hint == 1


@pytest.mark.parametrize("target, why", [(1, "already the master"), (4, "not a voter")])
def test_a_hand_over_to_a_bad_target_is_refused(target: int, why: str) -> None:
    cluster = with_learner()
    cluster.replica(1).transfer_master(target, "t")
    cluster.process(1)
    done = cluster.nodes[1].completions[-1]
    assert done.outcome is Outcome.DROPPED and why in done.reason
    assert cluster.replica(1).is_master  # Nothing changed.


def test_the_old_master_stops_at_once_and_the_target_campaigns_at_once() -> None:
    cluster = elected()
    master = cluster.replica(1)
    master.propose(Value(ValueKind.SQL_BATCH, b"w1"), "w1")  # In flight.
    master.propose(Value(ValueKind.SQL_BATCH, b"w2"), "queued")  # Queued behind it.
    master.transfer_master(2, "t")
    cluster.process(1)
    assert not master.is_master and master.role is not Role.MASTER
    assert master.master_hint == 2
    refused = {c.token: c for c in cluster.nodes[1].completions}
    assert refused["queued"].outcome is Outcome.NOT_MASTER and refused["queued"].master_hint == 2
    master.propose(Value(ValueKind.SQL_BATCH, b"w3"), "late")
    cluster.process(1)
    late = cluster.nodes[1].completions[-1]
    assert late.outcome is Outcome.NOT_MASTER and late.master_hint == 2
    cluster.deliver_all()  # No tick anywhere: the target needs no election delay.
    done = {c.token: c for c in cluster.nodes[1].completions}
    assert done["w1"].outcome is Outcome.CHOSEN
    assert done["t"].outcome is Outcome.CHOSEN
    target = cluster.replica(2)
    assert target.is_master
    assert target.stats.counts["handover_received"] == 1
    claim = MasterClaim.from_value(cluster.nodes[2].applied[-1].value)
    assert claim.node_id == 2 and claim.issuer == 2  # Its own claim, after the hand-over.
    handed = MasterClaim.from_value(cluster.nodes[2].applied[-2].value)
    assert handed.node_id == 2 and handed.issuer == 1
    for node_id in (1, 3):
        assert cluster.replica(node_id).master_hint == 2
    cluster.propose(2, b"from 2", "t2")
    cluster.deliver_all()
    assert cluster.nodes[2].completions[-1].outcome is Outcome.CHOSEN


def test_the_target_holds_its_lease_from_its_own_issue_tick_only() -> None:
    cluster = elected()
    cluster.replica(1).transfer_master(2, "t")
    cluster.process(1)
    cluster.deliver_one(Accept, 1, 2)
    cluster.deliver_one(Accept, 1, 3)
    cluster.deliver_one(Accepted, 2, 1)  # Chosen at the old master.
    cluster.deliver_one(Chosen, 1, 2)  # The target learns it: no lease from it.
    target = cluster.replica(2)
    assert target.master.master == 2 and not target.is_master
    assert target.master.is_handed_to(2)
    assert target.role is Role.CANDIDATE  # Campaigning at once, with its own claim.
    cluster.deliver_all()
    assert target.is_master


def test_the_cluster_recovers_when_the_target_is_down() -> None:
    cluster = elected()
    cluster.replica(1).transfer_master(2, "t")
    cluster.process(1)
    cluster.deliver_one(Accept, 1, 2)
    cluster.crash(2, keep=10**6)  # Voted, then went down before it learned the outcome.
    cluster.deliver_all()
    assert cluster.nodes[1].completions[-1].outcome is Outcome.CHOSEN
    assert cluster.replica(3).master.master == 2  # Believed in, but down.
    for _ in range(200):
        for node_id in (1, 3):
            cluster.tick(node_id)
        cluster.deliver_all()
        if any(cluster.replica(n).is_master for n in (1, 3)):
            break
    assert any(cluster.replica(n).is_master for n in (1, 3))


def test_a_hand_over_lost_to_another_master_is_dropped() -> None:
    cluster = elected()
    master = cluster.replica(1)
    master.transfer_master(2, "t")
    cluster.process(1)
    handover = master.handover
    assert handover is not None and handover.value is not None
    # Another master's claim is chosen at that instance instead (its lease ran out).
    other = MasterClaim(3, FAST.lease_ticks, master.master.version, 50, 3).to_value()
    master._learn(  # noqa: SLF001 - the test plays the learner's part directly.
        dataclasses.replace(
            cluster.nodes[1].applied[-1],
            instance=master.instance,
            value=other,
            chain=_chain(master.chain, other),
        ),
        Ballot(50, 3),
    )
    cluster.process(1)
    done = cluster.nodes[1].completions[-1]
    assert done.token == "t" and done.outcome is Outcome.DROPPED
    assert master.handover is None


def _chain(previous: int, value: Value) -> int:
    from paxdb.paxos.chain import chain_next

    return chain_next(previous, value)


# The fence under membership (fence.py, rule (a) with s and the re-fixed H).


def test_the_horizon_is_at_least_the_first_instance_of_the_configuration() -> None:
    fence = Fence(9)
    for peer in (4, 5):
        fence.on_reply(peer, CatchupReply(0, 20, (), 3, Ballot(2, 4), False, 9))
    # Voters 3, 4, 5 since instance 10 (version 9): V = 3 would give H = 4, but s = 10.
    assert fence.decide(3, (3, 4, 5), 9, 10) is None
    assert fence.horizon == 10
    assert fence.decide(3, (3, 4, 5), 9, 11) is not None


def test_the_horizon_is_fixed_again_when_the_configuration_changes() -> None:
    fence = Fence(9)
    for peer, vote in ((1, 5), (2, 6)):
        fence.on_reply(peer, CatchupReply(0, 30, (), vote, Ballot(2, 1), False, 9))
    assert fence.decide(6, (1, 2, 3), -1, 5) is None
    assert fence.horizon == 7
    fence.on_reply(4, CatchupReply(0, 30, (), 20, Ballot(2, 1), False, 9))
    assert fence.decide(6, (1, 2, 4), 12, 8) is None  # A change at 12 reached us.
    assert (fence.horizon, fence.horizon_version) == (21, 12)
    assert fence.decide(6, (1, 2, 4), 12, 22) is not None


def test_a_joiner_not_in_the_configuration_counts_every_voter() -> None:
    fence = Fence(9)
    fence.on_reply(1, CatchupReply(0, 30, (), 5, Ballot(2, 1), False, 9))
    assert fence.decide(7, (1, 2, 3), -1, 10) is None  # q = 2 of the three voters.
    fence.on_reply(2, CatchupReply(0, 30, (), 6, Ballot(2, 1), False, 9))
    assert fence.decide(7, (1, 2, 3), -1, 10) is not None


def test_a_hand_over_whose_target_left_the_voters_is_dropped() -> None:
    cluster = elected()
    master = cluster.replica(1)
    master.propose(change(cluster, (1, 3)), "remove 2")  # In flight: the proposer is busy.
    master.transfer_master(2, "t")  # Waits for the proposer.
    cluster.process(1)
    cluster.deliver_all()
    done = {c.token: c for c in cluster.nodes[1].completions}
    assert done["remove 2"].outcome is Outcome.CHOSEN
    assert done["t"].outcome is Outcome.DROPPED and "target left the voters" in done["t"].reason
    assert master.stats.counts["handover_dropped"] == 1
    # No value naming 2 can be chosen now, and 1 is still the master in force: the lease
    # it set aside, still running, is its own again.
    assert master.is_master


def test_a_restore_during_a_hand_over_cannot_tell_its_fate() -> None:
    cluster = elected()
    master = cluster.replica(1)
    master.transfer_master(2, "t")
    cluster.process(1)
    assert master.handover is not None and master.handover.value is not None  # Proposed.
    meta = master.checkpoint_meta(master.instance)
    assert meta is not None
    master.restore(dataclasses.replace(meta, instance_next=meta.instance_next + 5))
    cluster.process(1)
    done = cluster.nodes[1].completions[-1]
    assert done.token == "t" and done.outcome is Outcome.NOT_MASTER
    assert master.handover is None
