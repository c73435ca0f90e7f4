"""Three real `paxdb serve` processes: writes under kill -9, restarts, identical replicas."""

from __future__ import annotations

import threading
import time

import pytest
from client import RequestFailed
from cluster import ProcessCluster

WRITERS = 3
WRITES_PER_WRITER = 120


def converge(cluster: ProcessCluster, timeout: float = 20.0) -> None:
    """Wait until every replica applied the same instance."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metas = {cluster.meta(n) for n in cluster.ports}
        if len(metas) == 1:
            return
        time.sleep(0.1)
    raise AssertionError(f"replicas did not converge: {[cluster.meta(n) for n in cluster.ports]}")


def writer(
    cluster: ProcessCluster, index: int, acknowledged: list[tuple[int, int]], errors: list[str]
) -> None:
    nodes = list(cluster.ports)
    rotated = nodes[index % len(nodes) :] + nodes[: index % len(nodes)]
    client = cluster.client(rotated)
    for n in range(WRITES_PER_WRITER):
        try:
            client.execute("INSERT INTO t(writer, n) VALUES (?, ?)", (index, n), write=True)
        except Exception as error:  # noqa: BLE001 - recorded and asserted on below.
            errors.append(f"writer {index} n {n}: {error}")
            return
        acknowledged.append((index, n))
        time.sleep(0.002)


@pytest.mark.timeout(180)
def test_writes_survive_master_kill_restart_and_full_cluster_restart(
    cluster: ProcessCluster,
) -> None:
    cluster.master()
    cluster.client().execute(
        "CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER)", write=True
    )
    acknowledged: list[tuple[int, int]] = []
    errors: list[str] = []
    threads = [
        threading.Thread(target=writer, args=(cluster, i, acknowledged, errors))
        for i in range(WRITERS)
    ]
    for thread in threads:
        thread.start()
    while len(acknowledged) < WRITERS * WRITES_PER_WRITER // 4:
        time.sleep(0.01)
    old_master = cluster.master()
    killed_at = time.monotonic()
    cluster.kill(old_master)
    new_master = cluster.master(timeout=15)
    failover_s = time.monotonic() - killed_at
    assert new_master != old_master
    assert failover_s < 8, f"a new master took {failover_s:.1f} s"
    cluster.start(old_master)
    for thread in threads:
        thread.join(120)
    assert not errors, errors
    assert len(acknowledged) == WRITERS * WRITES_PER_WRITER

    for node_id in list(cluster.processes):
        assert cluster.stop(node_id) == 0, cluster.log(node_id)[-2000:]
    cluster.start()
    cluster.master()
    cluster.client().execute("INSERT INTO t(writer, n) VALUES (-1, -1)", write=True)
    converge(cluster)

    reference = cluster.rows(1, "SELECT * FROM t ORDER BY id")
    for node_id in cluster.ports:
        assert cluster.rows(node_id, "SELECT * FROM t ORDER BY id") == reference
        counts = dict(
            ((w, n), c)
            for w, n, c in cluster.rows(node_id, "SELECT writer, n, count(*) FROM t GROUP BY 1, 2")
        )
        for key in acknowledged:
            assert counts.get(key) == 1, (node_id, key, counts.get(key))
    assert len({cluster.meta(n) for n in cluster.ports}) == 1


@pytest.mark.timeout(60)
def test_random_and_now_store_the_same_value_on_every_replica(cluster: ProcessCluster) -> None:
    cluster.master()
    client = cluster.client()
    client.execute(
        "CREATE TABLE r(id INTEGER PRIMARY KEY, x, blob, at, created DEFAULT CURRENT_TIMESTAMP)",
        write=True,
    )
    for _ in range(5):
        client.execute(
            "INSERT INTO r(x, blob, at) VALUES (random(), randomblob(8), datetime('now'))",
            write=True,
        )
    with pytest.raises(RequestFailed, match="localtime"):
        client.execute("INSERT INTO r(at) VALUES (datetime('now', 'localtime'))", write=True)
    converge(cluster)
    rows = [cluster.rows(n, "SELECT * FROM r ORDER BY id") for n in cluster.ports]
    assert len(rows[0]) == 5
    assert rows[0] == rows[1] == rows[2]
    assert len({row[1] for row in rows[0]}) == 5  # random() really is random per row
    assert all(row[3] and row[4] for row in rows[0])


@pytest.mark.timeout(60)
def test_reads_follow_the_consistency_levels(cluster: ProcessCluster) -> None:
    master = cluster.master()
    client = cluster.client()
    client.execute("CREATE TABLE k(v)", write=True)
    reply = client.execute("INSERT INTO k VALUES (42)", write=True)
    follower = next(n for n in cluster.ports if n != master)
    local = cluster.client([follower]).execute("SELECT v FROM k", consistency="local", write=False)
    assert local.instance >= 0
    for level in ("master", "linearizable"):
        result = cluster.client([follower]).execute("SELECT v FROM k", consistency=level)
        assert result.results[0].rows == ((42,),)
        assert result.instance >= reply.instance


def test_a_relayed_write_names_the_master_so_the_driver_goes_there(
    cluster: ProcessCluster,
) -> None:
    master = cluster.master()
    follower = next(n for n in (1, 2, 3) if n != master)
    client = cluster.client([follower])
    client.execute("CREATE TABLE r(x)", write=True)
    reply = client.execute("INSERT INTO r VALUES (1)", write=True)
    assert reply.error is None
    host, port = cluster.client_address(master)
    assert reply.master == f"{host}:{port}"
