"""`Replica.checkpoint_meta`: the exact chain, membership and master at an older instance.

A reference model replays the values independently (the MASTER and MEMBERSHIP rules of
master.py and membership.py: a value whose `prev_version` is not the current version is
stale and changes nothing), and every answer of the core must match it.
"""

from __future__ import annotations

import dataclasses

import pytest
from harness import FAST, GROUP, Cluster

from paxdb.errors import UsageError
from paxdb.paxos.chain import CHAIN_START, chain_next
from paxdb.paxos.effects import CheckpointMeta, ChosenRecord, LogBaseRecord, Record
from paxdb.paxos.master import MasterClaim
from paxdb.paxos.membership import MembershipChange
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.replica import Replica, ReplicaConfig
from paxdb.paxos.values import NOOP_VALUE, Value, ValueKind
from paxdb.storage.memory import MemoryLogStore

MEMBERS = (1, 2, 3)


def master(node_id: int, prev_version: int) -> Value:
    return MasterClaim(node_id, 40, prev_version, 1 + node_id, node_id).to_value()


def membership(members: tuple[int, ...], prev_version: int) -> Value:
    return MembershipChange(members, prev_version).to_value()


def sql(text: bytes) -> Value:
    return Value(ValueKind.SQL_BATCH, text)


# Instance by instance: stale values (wrong prev_version) must change nothing.
VALUES = [
    master(1, -1),  # 0: master 1, version 0
    sql(b"a"),  # 1
    membership((1, 2, 3, 4), -1),  # 2: members version 2
    master(3, -1),  # 3: stale (version is 0)
    master(2, 0),  # 4: master 2, version 4
    NOOP_VALUE,  # 5
    membership((1, 2), -1),  # 6: stale (version is 2)
    membership((1, 2, 4), 2),  # 7: members version 7
    master(2, 4),  # 8: master 2 renews, version 8
    sql(b"b"),  # 9
]

# instance_next -> (members, members_version, master, master_version), by hand.
EXPECTED = {
    0: (MEMBERS, -1, None, -1),
    1: (MEMBERS, -1, 1, 0),
    2: (MEMBERS, -1, 1, 0),
    3: ((1, 2, 3, 4), 2, 1, 0),
    4: ((1, 2, 3, 4), 2, 1, 0),
    5: ((1, 2, 3, 4), 2, 2, 4),
    6: ((1, 2, 3, 4), 2, 2, 4),
    7: ((1, 2, 3, 4), 2, 2, 4),
    8: ((1, 2, 4), 7, 2, 4),
    9: ((1, 2, 4), 7, 2, 8),
    10: ((1, 2, 4), 7, 2, 8),
}


def stored_log(values: list[Value], start: int = 0, chain: int = CHAIN_START) -> MemoryLogStore:
    store = MemoryLogStore()
    records: list[tuple[str, Record]] = []
    if start > 0:
        records.append((GROUP, LogBaseRecord(start, chain)))
    for offset, value in enumerate(values):
        chain = chain_next(chain, value)
        records.append((GROUP, ChosenRecord(LogEntry(start + offset, value, chain))))
    store.write_batch(records, sync=True)
    return store


def chains(values: list[Value]) -> list[int]:
    """chains[n] is chain[n - 1]: the chain a checkpoint at instance_next n records."""
    result = [CHAIN_START]
    for value in values:
        result.append(chain_next(result[-1], value))
    return result


def replica_on(store: MemoryLogStore, **options: object) -> Replica:
    config = ReplicaConfig(
        2,
        GROUP,
        MEMBERS,
        dataclasses.replace(FAST, **options),  # type: ignore[arg-type]
    )
    return Replica(config, store, applied_next=0)


@pytest.mark.parametrize("instance_next", sorted(EXPECTED))
def test_a_replica_that_scanned_its_log_knows_the_config_at_every_instance(
    instance_next: int,
) -> None:
    replica = replica_on(stored_log(VALUES))
    assert replica.instance == len(VALUES)
    meta = replica.checkpoint_meta(instance_next)
    members, members_version, holder, master_version = EXPECTED[instance_next]
    assert meta == CheckpointMeta(
        instance_next,
        chains(VALUES)[instance_next],
        members,
        members_version,
        holder,
        master_version,
    )


def test_a_replica_started_from_any_of_those_checkpoints_agrees_with_the_scan() -> None:
    full = replica_on(stored_log(VALUES))
    for instance_next in range(len(VALUES) + 1):
        base = full.checkpoint_meta(instance_next)
        assert base is not None
        store = stored_log(VALUES[instance_next:], instance_next, base.chain)
        config = ReplicaConfig(3, GROUP, MEMBERS, FAST)
        started = Replica(config, store, applied_next=instance_next, base=base)
        assert started.membership.members == full.membership.members
        assert started.membership.version == full.membership.version
        assert started.master.master == full.master.master
        assert started.master.version == full.master.version
        for later in range(instance_next, len(VALUES) + 1):
            assert started.checkpoint_meta(later) == full.checkpoint_meta(later), later
        if instance_next > 0:
            assert started.checkpoint_meta(instance_next - 1) is None


@pytest.mark.parametrize(
    "instance_next, reason",
    [
        (len(VALUES) + 1, "beyond the replica's instance"),
        (len(VALUES) + 100, "beyond the replica's instance"),
    ],
)
def test_no_meta_past_the_replica(instance_next: int, reason: str) -> None:
    assert replica_on(stored_log(VALUES)).checkpoint_meta(instance_next) is None, reason


def test_a_negative_instance_is_misuse() -> None:
    with pytest.raises(UsageError):
        replica_on(stored_log(VALUES)).checkpoint_meta(-1)


def test_the_history_is_bounded_and_says_so() -> None:
    # Five configuration changes in VALUES (instances 0, 2, 4, 7, 8); keep three entries.
    replica = replica_on(stored_log(VALUES), config_history_max=3)
    assert len(replica.history) == 3
    assert replica.history.start == 5  # Entries from 5 (master 2), 8 and 9 remain.
    for instance_next in range(0, 5):
        assert replica.checkpoint_meta(instance_next) is None
    assert replica.stats["checkpoint_meta_beyond_history"] == 5
    for instance_next in range(5, len(VALUES) + 1):
        meta = replica.checkpoint_meta(instance_next)
        assert meta is not None
        members, members_version, holder, master_version = EXPECTED[instance_next]
        assert (meta.members, meta.members_version) == (members, members_version)
        assert (meta.master, meta.master_version) == (holder, master_version)


def test_no_meta_below_what_the_log_still_holds() -> None:
    store = stored_log(VALUES)
    replica = replica_on(store)
    store.truncate_below(GROUP, 6)
    for instance_next in range(0, 6):
        assert replica.checkpoint_meta(instance_next) is None, instance_next
    assert replica.stats["checkpoint_meta_beyond_log"] == 6
    meta = replica.checkpoint_meta(6)  # chain[5] is the log's chain_before.
    assert meta is not None and meta.chain == chains(VALUES)[6]
    assert replica.checkpoint_meta(10) is not None


def test_after_restore_the_history_starts_at_the_checkpoint() -> None:
    cluster = Cluster(3)
    cluster.elect(1)
    for index in range(4):
        cluster.propose(1, b"r%d" % index, index)
        cluster.deliver_all()
    source = cluster.replica(1)
    meta = source.checkpoint_meta(source.instance)
    assert meta is not None
    fresh = replica_on(MemoryLogStore())
    fresh.restore(meta)
    assert fresh.checkpoint_meta(meta.instance_next) == meta
    assert fresh.checkpoint_meta(meta.instance_next - 1) is None


def test_every_instance_a_live_replica_passed_through_keeps_its_exact_config() -> None:
    """Snapshot each replica's config whenever its instance moves, through an election,
    writes, a membership change and a second election; then ask for every one."""
    cluster = Cluster(3)
    seen: dict[int, dict[int, tuple[object, ...]]] = {n: {} for n in cluster.members}

    def snapshot() -> None:
        for node_id in cluster.members:
            replica = cluster.replica(node_id)
            seen[node_id][replica.instance] = (
                replica.chain,
                replica.membership.members,
                replica.membership.version,
                replica.master.master,
                replica.master.version,
            )

    cluster.elect(1)
    snapshot()
    for index in range(3):
        cluster.propose(1, b"w%d" % index, index)
        cluster.deliver_all()
        snapshot()
    cluster.replica(1).propose(membership((1, 2, 3), -1), "m")
    cluster.process(1)
    cluster.deliver_all()
    snapshot()
    for _ in range(3 * FAST.lease_ticks):  # Node 1 stops; node 2 takes over.
        cluster.tick(2)
        cluster.tick(3)
        cluster.deliver_all()
        snapshot()
    assert cluster.replica(2).master.master in (2, 3)
    checked = 0
    for node_id, by_instance in seen.items():
        replica = cluster.replica(node_id)
        for instance_next, (chain, members, members_version, holder, version) in sorted(
            by_instance.items()
        ):
            meta = replica.checkpoint_meta(instance_next)
            assert meta == CheckpointMeta(
                instance_next, chain, members, members_version, holder, version
            ), (node_id, instance_next)
            checked += 1
    assert checked > 10
