"""The rejoin fence (paxos/fence.py): a wiped node votes only where its old self never did,
and only after promising whatever its old self may have promised to a quorum."""

from __future__ import annotations

import dataclasses

import pytest
from harness import FAST, GROUP, Cluster

from paxdb.ids import BALLOT_ZERO, Ballot
from paxdb.paxos.chain import CHAIN_START, chain_next
from paxdb.paxos.effects import AcceptorRecord, Envelope
from paxdb.paxos.fence import Fence, Lift
from paxdb.paxos.messages import (
    Accept,
    Accepted,
    CatchupReply,
    CatchupRequest,
    LogEntry,
    Prepare,
    Promise,
)
from paxdb.paxos.replica import Replica, ReplicaConfig
from paxdb.paxos.values import Value, ValueKind
from paxdb.storage.memory import MemoryLogStore

NONCE = 77


def report(
    vote: int, next_: int, promised: Ballot = BALLOT_ZERO, fenced: bool = False
) -> CatchupReply:
    return CatchupReply(0, next_, (), vote, promised, fenced, NONCE)


r = report
ZERO = BALLOT_ZERO

# (why, members, replies by peer, own instance_next, expected decision), for node 3.
DECISIONS: list[tuple[str, tuple[int, ...], dict[int, CatchupReply], int, Lift | None]] = [
    ("nothing heard", (1, 2, 3), {}, 0, None),
    ("bootstrap", (1, 2, 3), {1: r(-1, 0), 2: r(-1, 0)}, 0, Lift(ZERO, True)),
    ("bootstrap counts fenced peers", (1, 2, 3), {1: r(-1, 0, fenced=True), 2: r(-1, 0)}, 0,
     Lift(ZERO, True)),
    ("bootstrap needs every peer", (1, 2, 3, 4, 5), {1: r(-1, 0), 2: r(-1, 0), 4: r(-1, 0)}, 0,
     None),
    ("one peer voted: no bootstrap", (1, 2, 3), {1: r(-1, 0), 2: r(0, 1)}, 0, None),
    ("own instance not past H", (1, 2, 3), {1: r(5, 9), 2: r(6, 9)}, 7, None),
    ("a peer not past H", (1, 2, 3), {1: r(5, 7), 2: r(6, 9)}, 8, None),
    ("q = 2 of 3 past H", (1, 2, 3), {1: r(5, 8), 2: r(6, 9, Ballot(4, 1))}, 8,
     Lift(Ballot(4, 1), False)),
    ("a fenced peer does not count", (1, 2, 3), {1: r(5, 9, fenced=True), 2: r(6, 9)}, 8, None),
    ("q = 3 of 5: two are too few", (1, 2, 3, 4, 5), {1: r(5, 9), 2: r(6, 9)}, 8, None),
    ("q = 3 of 5", (1, 2, 3, 4, 5), {1: r(5, 9), 2: r(6, 9), 4: r(2, 8, Ballot(9, 4))}, 8,
     Lift(Ballot(9, 4), False)),
    ("the floor is the largest promise", (1, 2, 3), {1: r(5, 9, Ballot(7, 2)),
     2: r(6, 9, Ballot(3, 1))}, 8, Lift(Ballot(7, 2), False)),
    ("a non-member's reply is ignored", (1, 2, 3), {1: r(5, 9), 9: r(6, 9)}, 8, None),
]  # fmt: skip


@pytest.mark.parametrize(
    "members, replies, instance_next, expected",
    [d[1:] for d in DECISIONS],
    ids=[d[0] for d in DECISIONS],
)
def test_when_the_fence_lifts(
    members: tuple[int, ...],
    replies: dict[int, CatchupReply],
    instance_next: int,
    expected: Lift | None,
) -> None:
    fence = Fence(NONCE)
    for source, reply in replies.items():
        assert fence.on_reply(source, reply)
    assert fence.decide(3, members, -1, instance_next) == expected


def test_only_replies_to_our_own_probes_count_and_reports_only_grow() -> None:
    fence = Fence(NONCE)
    assert not fence.on_reply(1, dataclasses.replace(report(-1, 0), nonce=0))
    assert not fence.on_reply(1, dataclasses.replace(report(-1, 0), nonce=NONCE + 1))
    assert fence.reports == {}
    assert fence.on_reply(1, report(9, 12, Ballot(5, 1)))
    assert fence.on_reply(1, report(4, 6, Ballot(2, 1), fenced=True))  # Late and smaller.
    kept = fence.reports[1]
    assert (kept.vote_instance, kept.instance_next, kept.promised) == (9, 12, Ballot(5, 1))
    assert kept.fenced  # The latest flag wins: that peer is rejoining now.


def chained(values: list[Value], start: int = 0, chain: int = CHAIN_START) -> list[LogEntry]:
    entries = []
    for offset, value in enumerate(values):
        chain = chain_next(chain, value)
        entries.append(LogEntry(start + offset, value, chain))
    return entries


def fenced_replica(store: MemoryLogStore | None = None) -> Replica:
    config = ReplicaConfig(3, GROUP, (1, 2, 3), FAST, seed=5)
    return Replica(config, store or MemoryLogStore(), rejoining=True)


def reply_to(replica: Replica, source: int, entries: list[LogEntry], **fields: object) -> None:
    fence = replica.fence or replica.shy
    assert fence is not None
    first = entries[0].instance if entries else 0
    nonce = fields.pop("nonce", fence.nonce)
    reply = CatchupReply(first, first + len(entries), tuple(entries), nonce=nonce, **fields)  # type: ignore[arg-type]
    replica.step(Envelope(GROUP, source, 3, reply))


def test_a_fenced_replica_probes_everyone_learns_and_lifts_with_the_promise_floor() -> None:
    replica = fenced_replica()
    assert replica.fenced
    for _ in range(FAST.catchup_probe_ticks):
        replica.tick()
    effects = replica.effects()
    probes = [e.message for e in effects.send if isinstance(e.message, CatchupRequest)]
    assert replica.fence is not None
    assert [e.target for e in effects.send] == [1, 2]
    assert all(probe.nonce == replica.fence.nonce for probe in probes)
    replica.advance(effects)
    log = chained([Value(ValueKind.SQL_BATCH, b"x%d" % i) for i in range(10)])
    reply_to(replica, 1, log, vote_instance=8, promised=Ballot(4, 1))
    assert replica.fence.horizon is None, "one report of the two needed"
    # Peer 2 is behind (N = 0): H is fixed at 9, but peer 2 is not past it.
    reply_to(replica, 2, [], vote_instance=5, promised=Ballot(7, 2))
    assert replica.fence.horizon == 9
    assert replica.instance == 10
    assert replica.fenced
    # A stale reply (another nonce) from peer 2 showing it past H does not count.
    reply_to(replica, 2, log, vote_instance=9, promised=Ballot(7, 2), nonce=5)
    assert replica.fenced
    # Peer 1 votes on; H stays where it was fixed.
    reply_to(replica, 1, log, vote_instance=15, promised=Ballot(4, 1))
    assert replica.fence.horizon == 9
    reply_to(replica, 2, log, vote_instance=9, promised=Ballot(7, 2))
    assert not replica.fenced
    assert replica.stats["fence_lifted"] == 1
    assert replica.acceptor.promised == Ballot(7, 2)  # The largest promise reported.
    effects = replica.effects()
    records = [r for r in effects.persist if isinstance(r, AcceptorRecord)]
    assert records[-1].promised == Ballot(7, 2) and effects.must_sync


def test_a_fenced_replica_votes_for_nothing_and_counts_what_it_dropped() -> None:
    replica = fenced_replica()
    replica.step(Envelope(GROUP, 1, 3, Prepare(Ballot(3, 1), 0)))
    replica.step(Envelope(GROUP, 1, 3, Accept(Ballot(3, 1), 0, Value(ValueKind.NOOP), 0)))
    assert replica.stats["fence_dropped_prepare"] == 1
    assert replica.stats["fence_dropped_accept"] == 1
    for _ in range(10 * FAST.lease_ticks):  # It never campaigns.
        replica.tick()
        effects = replica.effects()
        assert not any(isinstance(e.message, Prepare | Promise | Accepted) for e in effects.send)
        assert not any(isinstance(r, AcceptorRecord) for r in effects.persist)
        replica.advance(effects)
    assert replica.acceptor.promised == BALLOT_ZERO


def test_a_replica_fenced_before_a_crash_is_fenced_after_it_but_not_after_the_lift() -> None:
    store = MemoryLogStore()

    def carry_out(replica: Replica) -> None:
        effects = replica.effects()
        store.write_batch([(GROUP, r) for r in effects.persist], effects.must_sync)
        replica.advance(effects)

    replica = fenced_replica(store)
    log = chained([Value(ValueKind.NOOP)] * 4)
    reply_to(replica, 1, log[:3], vote_instance=1)
    carry_out(replica)
    again = fenced_replica(store)  # Restarted: no acceptor record with a promise yet.
    assert again.fenced and again.instance == 3
    reply_to(again, 1, [], vote_instance=-1, fenced=True)
    reply_to(again, 2, [], vote_instance=-1, fenced=True)
    assert again.stats["fence_lifted_bootstrap"] == 1
    assert not again.fenced and again.shy is not None  # Votes, but does not campaign.
    carry_out(again)
    third = fenced_replica(store)  # It lifted but promised nothing yet: shy again.
    assert not third.fenced and third.shy is not None
    reply_to(third, 1, [], vote_instance=-1)
    assert third.shy is None  # Nodes 1 and 3 are in: a majority.
    third.step(Envelope(GROUP, 1, 3, Prepare(Ballot(3, 1), third.instance)))
    carry_out(third)
    fourth = fenced_replica(store)  # The record on disk holds its promise.
    assert not fourth.fenced and fourth.shy is None
    assert fourth.acceptor.promised == Ballot(3, 1)
    config = ReplicaConfig(3, GROUP, (1, 2, 3), FAST)
    assert not Replica(config, MemoryLogStore()).fenced  # Not rejoining: never fenced.


def test_a_shy_replica_campaigns_once_a_majority_is_not_fenced() -> None:
    replica = fenced_replica()
    reply_to(replica, 1, [], vote_instance=-1, fenced=True)
    reply_to(replica, 2, [], vote_instance=-1, fenced=True)
    assert replica.shy is not None

    def ticks(count: int) -> list[Envelope]:
        sent: list[Envelope] = []
        for _ in range(count):
            replica.tick()
            effects = replica.effects()
            sent.extend(effects.send)
            replica.advance(effects)
        return sent

    sent = ticks(5 * FAST.lease_ticks)
    assert not any(isinstance(e.message, Prepare) for e in sent)
    assert any(isinstance(e.message, CatchupRequest) and e.message.nonce for e in sent)
    reply_to(replica, 1, [], vote_instance=-1)  # Node 1 lifted too: 2 of 3 are in.
    assert replica.shy is None and replica.stats["fence_shy_ended"] == 1
    assert any(isinstance(e.message, Prepare) for e in ticks(5 * FAST.lease_ticks))


def _wipe_after_its_vote_decided_an_instance(mutant: str | None) -> tuple[Cluster, int]:
    """Node 3's vote makes value v chosen at instance i (only node 1 learns it); then node
    3 loses its disk and node 1 is cut off. Node 2, which never saw v, campaigns at i."""
    cluster = Cluster(3, dataclasses.replace(FAST, mutant=mutant))
    cluster.elect(1)
    cluster.deliver_all()
    cluster.propose(1, b"v", "v")
    cluster.drop(Accept, 1, 2)
    cluster.deliver_one(Accept, 1, 3)
    cluster.deliver_one(Accepted, 3, 1)
    instance = cluster.nodes[1].applied[-1].instance
    assert cluster.nodes[1].completions[-1].token == "v"
    cluster.pending.clear()  # The Chosen notices are lost.
    cluster.wipe(3)
    cluster.isolated = {1}
    for _ in range(20 * FAST.lease_ticks):
        cluster.tick(2)
        cluster.tick(3)
        cluster.deliver_all()
        if len(cluster.nodes[2].applied) > instance:
            break
    return cluster, instance


def test_without_the_fence_a_wiped_node_lets_a_second_value_be_chosen() -> None:
    cluster, instance = _wipe_after_its_vote_decided_an_instance("rejoin-without-fence")
    first = cluster.nodes[1].applied[instance].value
    second = cluster.nodes[2].applied[instance].value
    assert first != second  # The flaw the simulator must catch.


def test_the_fence_keeps_the_wiped_node_out_until_it_cannot_matter() -> None:
    cluster, instance = _wipe_after_its_vote_decided_an_instance(None)
    assert len(cluster.nodes[2].applied) == instance  # Nothing chosen without node 1.
    assert cluster.replica(3).fenced
    assert cluster.replica(3).stats["fence_dropped_prepare"] > 0
    cluster.isolated = set()
    for _ in range(20 * FAST.lease_ticks):
        for node_id in cluster.members:
            cluster.tick(node_id)
        cluster.deliver_all()
        if not cluster.replica(3).fenced and len(cluster.nodes[3].applied) > instance + 2:
            break
    assert not cluster.replica(3).fenced
    assert cluster.replica(3).stats["fence_lifted"] == 1
    for node_id in cluster.members:
        assert cluster.nodes[node_id].applied[instance].value.payload.endswith(b"v")


def test_a_brand_new_cluster_of_rejoining_nodes_starts_at_once() -> None:
    cluster = Cluster(3)
    for node in cluster.nodes.values():
        node.rejoining = True
        cluster.start(node.node_id)
        assert cluster.replica(node.node_id).fenced
    for _ in range(3 * FAST.lease_ticks):
        for node_id in cluster.members:
            cluster.tick(node_id)
        cluster.deliver_all()
    assert all(cluster.replica(n).stats["fence_lifted_bootstrap"] == 1 for n in cluster.members)
    assert any(cluster.replica(n).is_master for n in cluster.members)


def test_a_new_cluster_whose_nodes_start_one_by_one_starts() -> None:
    """The last node up lifts at once (bootstrap). Had it campaigned before the others
    probed it, its own promise would have shown them V >= 0 and kept them fenced for
    good (a minority of unfenced nodes cannot lift anyone): it stays shy until a majority
    is in."""
    cluster = Cluster(3)
    for node in cluster.nodes.values():
        node.rejoining = True
        node.replica = None
    for node_id in (1, 2):
        cluster.start(node_id)
    for _ in range(2 * FAST.lease_ticks):
        for node_id in (1, 2):
            cluster.tick(node_id)
        cluster.deliver_all()
    assert cluster.replica(1).fenced and cluster.replica(2).fenced  # Node 3 is not up.
    cluster.start(3)
    for _ in range(3 * FAST.lease_ticks):  # Only node 3's clock runs for a while.
        cluster.tick(3)
        cluster.deliver_all()
    assert cluster.replica(3).stats["fence_lifted_bootstrap"] == 1
    assert cluster.replica(3).acceptor.promised == Ballot(0, 0)  # It did not campaign.
    for _ in range(4 * FAST.lease_ticks):
        for node_id in cluster.members:
            cluster.tick(node_id)
        cluster.deliver_all()
    replicas = [cluster.replica(n) for n in cluster.members]
    assert not any(r.fenced or r.shy for r in replicas)
    assert any(r.is_master for r in replicas)


@pytest.mark.parametrize("count", [3, 5])
def test_a_wiped_node_catches_up_lifts_and_votes_again(count: int) -> None:
    cluster = Cluster(count)
    cluster.elect(1)
    for index in range(5):
        cluster.propose(1, b"w%d" % index, index)
        cluster.deliver_all()
    cluster.wipe(3)
    fenced_ticks = 0
    for index in range(20 * FAST.lease_ticks):
        for node_id in cluster.members:
            cluster.tick(node_id)
        if cluster.replica(1).is_master and index % 5 == 0:
            cluster.propose(1, b"later%d" % index, ("later", index))
        votes = [e for e in cluster.pending if e.source == 3]
        if cluster.replica(3).fenced:
            fenced_ticks += 1
            assert not any(isinstance(e.message, Promise | Accepted) for e in votes)
        cluster.deliver_all()
    replica = cluster.replica(3)
    assert fenced_ticks > 0 and not replica.fenced
    assert replica.stats["fence_lifted"] == 1
    assert replica.acceptor.vote_instance > 0  # It voted again.
    assert cluster.nodes[3].applied == cluster.nodes[1].applied


# A schedule in which a fence without the promise floor breaks agreement (five nodes).
# Old node 3 promises node 2's ballot b' at instance i and is wiped; node 1, the master,
# chooses v at i with its older ballot b through nodes 4 and 5; the wiped node learns i;
# only then does node 5 receive 2's Prepare and promise b' too, which completes node 2's
# quorum {2, old 3, 5}. At i + 1 node 1 (with b) and node 2 (with b', skipping phase 1)
# both need the wiped node's vote: if it accepts b, it must not also accept b'.


def _decide_without_promise_floor(
    fence: Fence, node_id: int, members: tuple[int, ...], version: int, instance_next: int
) -> Lift | None:
    """The first rule considered: H from q reports, lift once our instance is past it."""
    reports = [fence.reports[p] for p in members if p != node_id and p in fence.reports]
    if len(reports) < len(members) - len(members) // 2:
        return None
    if all(report.vote_instance == -1 for report in reports):
        return Lift(BALLOT_ZERO, True)
    if fence.horizon is None:
        fence.horizon = max(report.vote_instance for report in reports) + 1
    return Lift(BALLOT_ZERO, False) if instance_next > fence.horizon else None


def _take(
    cluster: Cluster, kind: type, source: int | None = None, targets: tuple[int, ...] = ()
) -> list[Envelope]:
    taken = [
        e
        for e in cluster.pending
        if isinstance(e.message, kind)
        and (source is None or e.source == source)
        and (not targets or e.target in targets)
    ]
    for envelope in taken:
        cluster.pending.remove(envelope)
    return taken


def _deliver(cluster: Cluster, envelopes: list[Envelope]) -> None:
    for envelope in envelopes:
        cluster.deliver(envelope)


def _stop_believing_in_the_master(cluster: Cluster, node_id: int) -> None:
    replica = cluster.replica(node_id)
    while replica.master.believes_in_master(replica.now):
        cluster.tick(node_id)
    assert replica.now < replica.campaign_tick
    cluster.pending.clear()


def _probe_round(cluster: Cluster, peers: tuple[int, ...]) -> None:
    """Tick the wiped node until it probes; its probes reach `peers` and come back."""
    for _ in range(10 * FAST.catchup_probe_ticks):
        cluster.tick(3)
        if any(isinstance(e.message, CatchupRequest) and e.message.nonce for e in cluster.pending):
            break
    for _ in range(4):
        _deliver(cluster, _take(cluster, CatchupRequest, 3, peers))
        _deliver(cluster, _take(cluster, CatchupReply, targets=(3,)))
    cluster.pending.clear()


def _promise_hole_schedule() -> tuple[Cluster, int, Ballot]:
    cluster = Cluster(5)
    cluster.elect(1)
    cluster.deliver_all()
    cluster.propose(1, b"a", "a")
    cluster.deliver_all()
    i = cluster.replica(1).instance
    for _ in range(20 * FAST.lease_ticks):  # Only node 2's clock runs: it campaigns.
        cluster.tick(2)
        prepares = _take(cluster, Prepare, 2)
        if prepares:
            break
        cluster.pending.clear()
    cluster.pending.clear()
    ballot = prepares[0].message.ballot
    _stop_believing_in_the_master(cluster, 3)
    _deliver(cluster, [e for e in prepares if e.target == 3])
    late_promise = _take(cluster, Promise, 3)
    cluster.wipe(3)
    _probe_round(cluster, (1, 4, 5))  # Nodes 1, 4 and 5 voted at i - 1 at most.
    cluster.propose(1, b"v", "v")  # Node 1's clock stopped: its lease still runs.
    _deliver(cluster, _take(cluster, Accept, 1, (4, 5)))
    _deliver(cluster, _take(cluster, Accepted, targets=(1,)))
    assert cluster.nodes[1].applied[i].value.payload.endswith(b"v")
    cluster.pending.clear()  # The Chosen notices are lost.
    _probe_round(cluster, (1, 4, 5))  # The wiped node learns i from node 1.
    _stop_believing_in_the_master(cluster, 5)
    _deliver(cluster, [e for e in prepares if e.target == 5])
    _deliver(cluster, late_promise + _take(cluster, Promise, 5))  # 2: quorum {2, 3, 5}.
    accepts = _take(cluster, Accept, 2)
    cluster.pending.clear()
    _deliver(cluster, [e for e in accepts if e.target in (3, 5)])
    _deliver(cluster, _take(cluster, CatchupReply, targets=(2,)))  # 2 learns i from 3.
    cluster.pending.clear()
    reply = CatchupReply(0, i + 1, (cluster.nodes[1].applied[i],))
    cluster.deliver(Envelope(GROUP, 1, 5, reply))  # 5 learns i too.
    cluster.pending.clear()
    assert cluster.replica(2).instance == cluster.replica(5).instance == i + 1
    cluster.propose(1, b"u", "u")  # At i + 1: node 1 with b, through 3 and 4.
    _deliver(cluster, _take(cluster, Accept, 1, (3, 4)))
    _deliver(cluster, _take(cluster, Accepted, targets=(1,)))
    cluster.pending.clear()
    for _ in range(20 * FAST.lease_ticks):  # Node 2 campaigns with b', through 3 and 5.
        cluster.tick(2)
        accepts = _take(cluster, Accept, 2)
        if accepts:
            break
        cluster.pending.clear()
    assert accepts[0].message.ballot == ballot  # Phase 1 skipped: prepared from i.
    _deliver(cluster, [e for e in accepts if e.target in (3, 5)])
    _deliver(cluster, _take(cluster, Accepted, targets=(2,)))
    return cluster, i + 1, ballot


def test_a_fence_without_the_promise_floor_lets_two_values_be_chosen(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(Fence, "decide", _decide_without_promise_floor)
    cluster, instance, _ = _promise_hole_schedule()
    first = cluster.nodes[1].applied[instance].value
    second = cluster.nodes[2].applied[instance].value
    assert first != second  # Why fence.py waits for peers past H and adopts their promise.


def test_the_fence_keeps_a_promise_the_wiped_node_forgot() -> None:
    cluster, instance, ballot = _promise_hole_schedule()
    assert cluster.replica(3).fenced
    assert all(len(cluster.nodes[n].applied) == instance for n in (1, 2))
    for _ in range(20 * FAST.lease_ticks):  # Heal: everything flows again.
        for node_id in cluster.members:
            cluster.tick(node_id)
        cluster.deliver_all()
        if not cluster.replica(3).fenced and cluster.replica(3).instance > instance + 1:
            break
    assert not cluster.replica(3).fenced
    values = {cluster.nodes[n].applied[instance].value for n in cluster.members}
    assert len(values) == 1
    assert cluster.replica(3).acceptor.promised >= ballot
