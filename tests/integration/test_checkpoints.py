"""Checkpoints on real nodes: the log is cut, a node that was away comes back by a
checkpoint transfer in the same process, and a wiped node rejoins."""

from __future__ import annotations

import concurrent.futures
import shutil

import pytest
from cluster import ProcessCluster, wait_until

TABLE = "CREATE TABLE IF NOT EXISTS t(id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER)"


def _write(cluster: ProcessCluster, nodes: list[int], writer: int, count: int) -> list[int]:
    """`count` sequential inserts through `nodes`; returns the acknowledged n values."""
    client = cluster.client(nodes)
    done = []
    for n in range(count):
        reply = client.execute("INSERT INTO t(writer, n) VALUES (?, ?)", (writer, n), write=True)
        assert reply.error is None, reply.error
        done.append(n)
    return done


def _load(
    cluster: ProcessCluster, nodes: list[int], writers: int, each: int, first: int = 0
) -> int:
    """`writers` concurrent writers with ids first, first + 1, ...; returns the acks."""
    with concurrent.futures.ThreadPoolExecutor(writers) as pool:
        futures = [
            pool.submit(_write, cluster, nodes, w, each) for w in range(first, first + writers)
        ]
        return sum(len(f.result()) for f in futures)


def _all_rows(cluster: ProcessCluster, node_id: int) -> list[tuple[object, ...]]:
    return cluster.rows(node_id, "SELECT id, writer, n FROM t ORDER BY id")


@pytest.mark.timeout(240)
def test_a_node_away_while_the_log_was_cut_comes_back_by_checkpoint(
    small_cluster: ProcessCluster,
) -> None:
    cluster = small_cluster
    cluster.client().execute(TABLE, write=True)
    master = cluster.master()
    away = next(n for n in (1, 2, 3) if n != master)
    others = [n for n in (1, 2, 3) if n != away]
    assert cluster.stop(away) == 0
    acknowledged = _load(cluster, others, writers=8, each=250)  # 2000 writes.
    assert acknowledged == 2000
    for node_id in others:
        group = cluster.main_group(node_id)
        assert int(group["checkpoint"]) > 0
        # The log now starts past everything the stopped node has.
        assert int(group["log_first"]) > cluster.meta(away)[0] + 1

    cluster.start(away)
    pid = cluster.processes[away].pid
    wait_until(lambda: cluster.main_group(away)["checkpoints_installed"] == 1, 60, "the install")
    more = _load(cluster, [1, 2, 3], writers=2, each=50, first=100)
    cluster.converge(30)
    assert cluster.processes[away].pid == pid  # Installed in the same process.
    assert cluster.processes[away].poll() is None
    rows = _all_rows(cluster, away)
    assert len(rows) == acknowledged + more
    assert len({(w, n) for _, w, n in rows}) == len(rows)  # Nothing twice.
    for node_id in others:
        assert _all_rows(cluster, node_id) == rows
        assert cluster.meta(node_id) == cluster.meta(away)
    assert "installed node" in cluster.log(away)


@pytest.mark.timeout(240)
def test_a_wiped_node_rejoins_and_votes_again(small_cluster: ProcessCluster) -> None:
    cluster = small_cluster
    cluster.client().execute(TABLE, write=True)
    _load(cluster, [1, 2, 3], writers=4, each=100)
    master = cluster.master()
    wiped = next(n for n in (1, 2, 3) if n != master)
    cluster.kill(wiped)
    shutil.rmtree(cluster.data_dir(wiped))
    _load(cluster, [master], writers=4, each=100, first=10)
    cluster.start(wiped)
    # The fence lifts once the node learned past every instance its old self could
    # have voted in, which needs new instances chosen after it started.
    wait_until(
        lambda: (
            _load(cluster, [master], writers=1, each=5, first=30) == 5
            and cluster.main_group(wiped)["fenced"] is False
        ),
        60,
        "the fence to lift",
    )
    cluster.converge(60)
    assert _all_rows(cluster, wiped) == _all_rows(cluster, master)
    # It votes again: with the third node gone, writes need the rejoined one.
    third = next(n for n in (1, 2, 3) if n not in (master, wiped))
    cluster.kill(third)
    assert _load(cluster, [master, wiped], writers=2, each=30, first=20) == 60
    assert _all_rows(cluster, wiped) == _all_rows(cluster, master)
