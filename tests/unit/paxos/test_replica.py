"""The replica as a whole, driven message by message through the hand-driven harness."""

from __future__ import annotations

import dataclasses

import pytest
from harness import FAST, GROUP, Cluster

from paxdb.errors import CorruptionError, UsageError
from paxdb.ids import Ballot
from paxdb.paxos.effects import CheckpointMeta, Envelope, Outcome, Role
from paxdb.paxos.membership import MembershipChange
from paxdb.paxos.messages import (
    Accept,
    Accepted,
    CatchupReply,
    CatchupRequest,
    Chosen,
    Prepare,
    Promise,
)
from paxdb.paxos.values import Value, ValueKind, decode_batch


def elected(count: int = 3, **options: object) -> Cluster:
    cluster = Cluster(count, dataclasses.replace(FAST, **options))  # type: ignore[arg-type]
    cluster.elect(1)
    return cluster


def chains(cluster: Cluster) -> set[int]:
    return {cluster.replica(n).chain for n in cluster.members}


def test_a_node_campaigns_and_every_replica_learns_the_master() -> None:
    cluster = elected()
    assert cluster.replica(1).role is Role.MASTER
    for follower in (2, 3):
        assert cluster.replica(follower).master_hint == 1
        assert cluster.replica(follower).role is Role.FOLLOWER
    assert len(chains(cluster)) == 1


def test_steady_state_is_one_round_trip_and_one_synced_record_per_node_per_value() -> None:
    cluster = elected()
    cluster.deliver_all()
    before = {n: (cluster.nodes[n].syncs, cluster.nodes[n].persisted) for n in cluster.members}
    cluster.propose(1, b"INSERT 1", "t1")
    accepts = [e for e in cluster.pending if isinstance(e.message, Accept)]
    assert sorted(e.target for e in accepts) == [2, 3]  # no Prepare: phase 1 skipped
    assert not any(isinstance(e.message, Prepare) for e in cluster.pending)
    for envelope in accepts:
        cluster.pending.remove(envelope)
        cluster.deliver(envelope)
    for follower in (2, 3):
        cluster.deliver_one(Accepted, follower, 1)
    assert cluster.nodes[1].completions[-1].outcome is Outcome.CHOSEN
    for node_id in cluster.members:
        syncs, persisted = before[node_id]
        assert cluster.nodes[node_id].syncs - syncs == 1, node_id
    # The master wrote its vote (synced) and the chosen value (riding the next sync).
    assert cluster.nodes[1].persisted - before[1][1] == 2
    # Followers learn the value from the Chosen notice, or from the next Accept.
    notices = [e for e in cluster.pending if isinstance(e.message, Chosen)]
    assert sorted(e.target for e in notices) == [2, 3]


def test_a_follower_that_misses_the_chosen_notice_learns_from_the_next_accept() -> None:
    cluster = elected()
    cluster.deliver_all()
    cluster.propose(1, b"a", "a")
    for follower in (2, 3):
        cluster.deliver_one(Accept, 1, follower)
        cluster.deliver_one(Accepted, follower, 1)
    cluster.drop(Chosen, 1, 2)
    cluster.drop(Chosen, 1, 3)
    instance = cluster.replica(2).instance
    cluster.propose(1, b"b", "b")
    cluster.deliver_one(Accept, 1, 2)
    assert cluster.replica(2).instance == instance + 1
    assert cluster.replica(2).stats["learned_from_accept"] == 1


def test_a_follower_answers_not_master_with_a_hint() -> None:
    cluster = elected()
    cluster.propose(2, b"x", "x")
    completion = cluster.nodes[2].completions[-1]
    assert completion.outcome is Outcome.NOT_MASTER
    assert completion.master_hint == 1


def test_requests_queued_behind_one_instance_go_out_as_one_batch() -> None:
    cluster = elected(batch_values_max=8)
    cluster.deliver_all()
    for index in range(12):
        cluster.propose(1, b"req%d" % index, index)
    cluster.deliver_all()
    completions = [c for c in cluster.nodes[1].completions if c.outcome is Outcome.CHOSEN]
    assert sorted(c.token for c in completions) == list(range(12))
    instances = {c.instance for c in completions}
    assert len(instances) == 3  # 1 alone, then 8, then 3
    for completion in completions:
        entry = cluster.nodes[1].applied[completion.instance]
        assert decode_batch(entry.value.payload)[completion.index] == b"req%d" % completion.token


def test_a_lagging_replica_catches_up_in_batches_and_chains_agree() -> None:
    cluster = elected(catchup_values_max=4)
    cluster.deliver_all()
    cluster.isolated = {3}
    for index in range(20):
        cluster.propose(1, b"w%d" % index, index)
        cluster.deliver_all()
    cluster.isolated = set()
    assert cluster.replica(3).instance < cluster.replica(1).instance
    for _ in range(50):
        cluster.tick(3)
        cluster.deliver_all()
        if cluster.replica(3).instance == cluster.replica(1).instance:
            break
    assert cluster.replica(3).instance == cluster.replica(1).instance
    assert len(chains(cluster)) == 1
    assert cluster.nodes[3].applied == cluster.nodes[1].applied
    assert cluster.replica(3).stats["catchup_request_sent"] >= 3


def test_an_accept_after_a_different_chain_halts_the_replica() -> None:
    cluster = elected()
    cluster.deliver_all()
    replica = cluster.replica(2)
    bad = Accept(Ballot(99, 1), replica.instance, Value(ValueKind.NOOP), replica.chain ^ 1)
    with pytest.raises(CorruptionError, match="diverged"):
        replica.step(Envelope(GROUP, 1, 2, bad))
    assert replica.role is Role.HALTED
    with pytest.raises(CorruptionError):
        replica.tick()


def test_a_catchup_entry_with_a_wrong_chain_halts_the_replica() -> None:
    cluster = elected()
    cluster.deliver_all()
    replica = cluster.replica(3)
    entry_value = Value(ValueKind.NOOP)
    from paxdb.paxos.messages import LogEntry

    reply = CatchupReply(0, replica.instance + 1, (LogEntry(replica.instance, entry_value, 12345),))
    with pytest.raises(CorruptionError, match="chain mismatch"):
        replica.step(Envelope(GROUP, 1, 3, reply))


@pytest.mark.parametrize(
    "envelope, counter",
    [
        (Envelope("other-group", 1, 2, CatchupRequest(0)), "drop_misaddressed"),
        (Envelope(GROUP, 1, 3, CatchupRequest(0)), "drop_misaddressed"),
        (Envelope(GROUP, 2, 2, CatchupRequest(0)), "drop_from_self"),
        (Envelope(GROUP, 9, 2, Promise(Ballot(5, 2), 0, None, None)), "drop_non_member"),
    ],
)
def test_bad_input_is_dropped_and_counted_never_raised(envelope: Envelope, counter: str) -> None:
    cluster = Cluster(3)
    replica = cluster.replica(2)
    replica.step(envelope)
    assert replica.stats[counter] == 1


def test_a_stale_prepare_from_a_non_master_is_refused_while_the_lease_runs() -> None:
    cluster = elected()
    cluster.deliver_all()
    replica = cluster.replica(2)
    replica.step(Envelope(GROUP, 3, 2, Prepare(Ballot(50, 3), replica.instance)))
    assert replica.stats["prepare_refused_lease"] == 1
    assert replica.acceptor.promised < Ballot(50, 3)


def test_effects_must_be_advanced_before_more_input() -> None:
    cluster = Cluster(3)
    replica = cluster.replica(1)
    replica.tick()
    effects = replica.effects()
    with pytest.raises(UsageError):
        replica.tick()
    with pytest.raises(UsageError):
        replica.effects()
    replica.advance(effects)
    with pytest.raises(UsageError):
        replica.advance(effects)


def test_a_restarted_replica_replays_its_log_into_an_empty_state_machine() -> None:
    cluster = elected()
    for index in range(5):
        cluster.propose(1, b"r%d" % index, index)
        cluster.deliver_all()
    expected = list(cluster.nodes[2].applied)
    cluster.crash(2, keep=cluster.nodes[2].store.pending_count)
    cluster.nodes[2].applied = []
    cluster.start(2)
    assert cluster.nodes[2].applied == expected
    assert cluster.replica(2).instance == len(expected)
    assert cluster.replica(2).master.master == 1


def test_a_peer_whose_log_was_truncated_sends_us_for_a_checkpoint() -> None:
    cluster = elected()
    cluster.deliver_all()
    cluster.isolated = {3}
    for index in range(6):
        cluster.propose(1, b"c%d" % index, index)
        cluster.deliver_all()
    cluster.isolated = set()
    for node_id in (1, 2):
        cluster.nodes[node_id].store.truncate_below(GROUP, cluster.replica(node_id).instance - 1)
    replica = cluster.replica(3)
    behind = replica.instance
    request = Envelope(GROUP, 3, 1, CatchupRequest(behind))
    cluster.deliver(request)  # node 1 answers with its bounds and no values
    reply = cluster.take(CatchupReply, 1, 3)
    assert reply.message.instance_min > behind and not reply.message.entries
    replica.step(reply)
    effects = replica.effects()
    assert effects.need_checkpoint == 1
    replica.advance(effects)
    source = cluster.replica(1)
    meta = CheckpointMeta(source.instance, source.chain, (1, 2, 3), -1, 1, source.master.version)
    cluster.nodes[3].applied = list(cluster.nodes[1].applied[: meta.instance_next])  # installed
    replica.restore(meta)
    cluster.process(3)
    assert replica.instance == source.instance
    assert replica.chain == source.chain
    cluster.propose(1, b"after", "after")
    cluster.deliver_all()
    assert replica.instance == source.instance
    assert cluster.nodes[3].applied == cluster.nodes[1].applied
    assert replica.stats["restored_checkpoint"] == 1


def test_a_single_node_group_chooses_alone() -> None:
    cluster = Cluster(1)
    cluster.elect(1)
    for index in range(3):
        cluster.propose(1, b"s%d" % index, index)
    outcomes = [c.outcome for c in cluster.nodes[1].completions]
    assert outcomes == [Outcome.CHOSEN] * 3


def test_one_membership_change_at_a_time_and_it_governs_the_next_instance() -> None:
    cluster = elected()
    cluster.deliver_all()
    change = MembershipChange((1, 2), -1).to_value()
    cluster.replica(1).propose(change, "m1")
    cluster.replica(1).propose(MembershipChange((1, 3), -1).to_value(), "m2")
    cluster.process(1)
    second = [c for c in cluster.nodes[1].completions if c.token == "m2"][0]
    assert second.outcome is Outcome.DROPPED
    cluster.deliver_all()
    first = [c for c in cluster.nodes[1].completions if c.token == "m1"][0]
    assert first.outcome is Outcome.CHOSEN
    assert cluster.replica(2).membership.members == (1, 2)
    assert cluster.replica(2).membership.version == first.instance


def test_only_the_core_may_propose_master_values() -> None:
    cluster = elected()
    with pytest.raises(UsageError):
        cluster.replica(1).propose(Value(ValueKind.MASTER, b"1 1 -1 1"), "m")


def _duel_with_a_forgetful_acceptor(mutant: str | None) -> Cluster:
    """Two candidates; node 3 promises the second, crashes, and then votes for the first."""
    cluster = Cluster(3, dataclasses.replace(FAST, mutant=mutant))
    for candidate in (1, 2):
        for _ in range(200):
            cluster.tick(candidate)
            if any(
                isinstance(e.message, Prepare) and e.source == candidate for e in cluster.pending
            ):
                break
    cluster.drop(Prepare, 1, 2)
    cluster.drop(Prepare, 2, 1)
    cluster.deliver_one(Prepare, 1, 3)
    cluster.deliver_one(Promise, 3, 1)  # node 1: quorum {1, 3}, Accept(b1) pending
    cluster.deliver_one(Prepare, 2, 3)  # node 3 promises b2 > b1 (no vote yet)
    cluster.crash(3, keep=cluster.nodes[3].store.pending_count)  # kill -9, page cache kept
    cluster.start(3)
    cluster.deliver_one(Promise, 3, 2)  # node 2: quorum {2, 3}, Accept(b2) pending
    cluster.deliver_one(Accept, 1, 3)
    cluster.deliver_all()
    return cluster


def test_an_acceptor_that_keeps_its_promise_prevents_two_values() -> None:
    cluster = _duel_with_a_forgetful_acceptor(None)
    values = {n: [e.value for e in cluster.nodes[n].applied[:1]] for n in cluster.members}
    assert len({tuple(v) for v in values.values() if v}) == 1, values


def test_the_forgets_promise_mutant_really_breaks_agreement() -> None:
    cluster = _duel_with_a_forgetful_acceptor("acceptor-forgets-promise")
    first = {cluster.nodes[n].applied[0].value for n in (1, 2)}
    assert len(first) == 2  # The flaw the simulator must catch.


def test_a_restored_replica_keeps_its_promise_across_a_restart() -> None:
    """The log base a restore writes drops older acceptor records from the store: the
    promise must be written again at the new instance, before the base, or a restart
    after the restore would forget it."""
    cluster = elected()
    cluster.deliver_all()
    replica = cluster.replica(3)
    promised = replica.acceptor.promised
    assert promised > Ballot(0, 0)
    source = cluster.replica(1)
    for index in range(3):
        cluster.propose(1, b"p%d" % index, index)
        cluster.deliver_all()
    meta = source.checkpoint_meta(source.instance)
    assert meta is not None
    ahead = dataclasses.replace(meta, instance_next=meta.instance_next + 5)
    replica.restore(ahead)
    effects = replica.effects()
    kinds = [type(record).__name__ for record in effects.persist]
    assert kinds == ["AcceptorRecord", "LogBaseRecord"]
    assert effects.must_sync
    replica.advance(effects)
    cluster.nodes[3].store.write_batch([(GROUP, r) for r in effects.persist], True)
    cluster.crash(3)
    cluster.nodes[3].applied = list(cluster.nodes[1].applied)
    config = dataclasses.replace(replica.config)
    store = cluster.nodes[3].store
    restarted = type(replica)(config, store, applied_next=ahead.instance_next, base=ahead)
    assert restarted.instance == ahead.instance_next
    assert restarted.acceptor.promised == promised


def test_a_duplicated_catchup_reply_does_not_fork_another_chain_of_requests() -> None:
    """Each reply that teaches something asks for the next chunk; a duplicate of it must
    not ask again, or every duplicate would double the requests of a node far behind."""
    cluster = elected(catchup_values_max=2)
    cluster.deliver_all()
    cluster.isolated = {3}
    for index in range(8):
        cluster.propose(1, b"d%d" % index, index)
        cluster.deliver_all()
    cluster.isolated = set()
    replica = cluster.replica(3)
    for _ in range(FAST.catchup_probe_ticks):
        cluster.tick(3)
        if any(isinstance(e.message, CatchupRequest) for e in cluster.pending):
            break
    cluster.deliver_one(CatchupRequest, 3)
    reply = cluster.take(CatchupReply, target=3)
    cluster.pending.clear()
    cluster.deliver(reply)
    assert len([e for e in cluster.pending if isinstance(e.message, CatchupRequest)]) == 1
    cluster.deliver(reply)  # The network duplicated it.
    assert len([e for e in cluster.pending if isinstance(e.message, CatchupRequest)]) == 1
    assert replica.stats["catchup_reply_stale"] == 1
