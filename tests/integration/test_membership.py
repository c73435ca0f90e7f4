"""Membership changes on real nodes: a node joins a running cluster under write load,
catches up (by a checkpoint: the others' logs were cut short), becomes a voter, then an
old node (the master) is removed, and no acknowledged write is lost."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time

import pytest
from cluster import ProcessCluster, wait_until

import paxdb


class Writers:
    """Threads inserting (writer, n) rows through the driver until stopped; each keeps
    the n values whose insert was acknowledged."""

    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.stop = threading.Event()
        self.acked: dict[int, list[int]] = {w: [] for w in range(count)}
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(w,)) for w in range(count)]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def total(self) -> int:
        return sum(len(done) for done in self.acked.values())

    def _run(self, writer: int) -> None:
        connection = paxdb.connect(self.url + "?timeout=20")
        n = 0
        while not self.stop.is_set():
            try:
                connection.execute("INSERT INTO t(writer, n) VALUES (?, ?)", (writer, n))
                self.acked[writer].append(n)
            except paxdb.Error as error:  # Unknown outcome: not counted as acknowledged.
                self.failures.append(f"{writer}/{n}: {error}")
            n += 1
        connection.close()


def _members(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paxdb", "members", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(300)
def test_add_a_node_under_load_then_remove_the_master(small_cluster: ProcessCluster) -> None:
    cluster = small_cluster
    connection = paxdb.connect(cluster.bootstrap_url)
    connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER)")
    connection.close()
    other = paxdb.connect(cluster.bootstrap_url.replace("/main", "/other"))
    other.execute("CREATE TABLE o(x INTEGER)")
    other.executemany("INSERT INTO o VALUES (?)", [(i,) for i in range(20)])

    with Writers(cluster.bootstrap_url, 3) as writers:
        wait_until(lambda: cluster.main_group(1)["log_first"] > 0, 60, "the log to be cut short")
        cluster.join(4)
        wait_until(
            lambda: (
                4 in cluster.main_group(1)["members"]
                and cluster.main_group(4)["role"] == "follower"
            ),
            120,
            "node 4 to become a voting follower",
        )
        joined = cluster.main_group(4)
        # Node 4 started from a checkpoint: its log never held the first instances.
        assert joined["log_first"] > 0, joined
        assert "checkpoint of main at instance" in cluster.log(4)
        assert 4 in joined["members"] and joined["learners"] == []
        listing = _members(cluster.bootstrap_url, "list")
        assert listing.returncode == 0, listing.stderr
        assert any(line.split()[:2] == ["4", "voter"] for line in listing.stdout.splitlines())

        old_master = cluster.master()
        removed = _members(cluster.bootstrap_url, "remove", str(old_master))
        assert removed.returncode == 0, removed.stderr + removed.stdout
        survivors = [n for n in (1, 2, 3, 4) if n != old_master]
        wait_until(
            lambda: all(sorted(cluster.main_group(n)["members"]) == survivors for n in survivors),
            30,
            f"node {old_master} to be out of every survivor's members",
        )
        wait_until(
            lambda: cluster.main_group(old_master)["role"] == "outsider",
            30,
            f"node {old_master} to see it is out",
        )
        before = writers.total()
        wait_until(lambda: writers.total() > before + 100, 30, "writes after the removal")
        cluster.kill(old_master)
        before = writers.total()
        wait_until(lambda: writers.total() > before + 100, 30, "writes without the old master")

    assert cluster.master() in survivors
    # Database `other` followed main's members by itself, and lost nothing either.
    other.execute("INSERT INTO o VALUES (20)")
    other.close()
    wait_until(
        lambda: all(
            sorted(cluster.status(n)["groups"]["other"]["members"]) == survivors for n in survivors
        ),
        30,
        "database other to follow main's members",
    )
    wait_until(
        lambda: all(
            cluster.rows(n, "SELECT count(*) FROM o", "other") == [(21,)] for n in survivors
        ),
        30,
        "every survivor to hold database other",
    )
    assert writers.total() > 300
    cluster.converge(30)
    expected = {(w, n) for w, done in writers.acked.items() for n in done}
    for node in survivors:
        rows = cluster.rows(node, "SELECT writer, n FROM t WHERE writer >= 0")
        assert len(rows) == len(set(rows)), f"node {node} applied a write twice"
        missing = expected - set(rows)
        assert not missing, f"node {node} lost acknowledged writes: {sorted(missing)[:5]}"
    reference = cluster.rows(survivors[0], "SELECT id, writer, n FROM t ORDER BY id")
    for node in survivors[1:]:
        assert cluster.rows(node, "SELECT id, writer, n FROM t ORDER BY id") == reference
    assert len({cluster.meta(node) for node in survivors}) == 1


def test_members_refuses_bad_arguments_with_one_line(small_cluster: ProcessCluster) -> None:
    url = small_cluster.bootstrap_url
    for args, expected in [
        (("add", "4"), "add needs the node's peer address"),
        (("remove", "x"), "is not a node id"),
        (("promote", "4=127.0.0.1:1"), "takes the node id only"),
        (("promote", "9"), "node 9 is not a learner; add it first"),
        (("add", "2=127.0.0.1:1"), "node 2 is already a voter at"),
    ]:
        result = _members(url, *args)
        assert result.returncode != 0, args
        assert expected in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert _members(url, "remove", "9").returncode == 0  # Idempotent: nothing to do.
    # With one voter down, removing another live one would leave no majority up.
    master = small_cluster.master()
    down, live = [n for n in (1, 2, 3) if n != master]
    small_cluster.kill(down)
    refused = _members(url, "remove", str(live))
    assert refused.returncode == 1
    assert f"only [{master}] are up; 2 must be" in refused.stderr, refused.stderr
    removed = _members(url, "remove", str(down))  # Removing the dead one is fine.
    assert removed.returncode == 0, removed.stderr
    assert f"node {down} removed, from instance" in removed.stdout


@pytest.mark.timeout(180)
def test_a_learner_receives_everything_but_never_votes(small_cluster: ProcessCluster) -> None:
    cluster = small_cluster
    cluster.join(4, "--learner")
    wait_until(lambda: cluster.main_group(4)["role"] == "learner", 60, "node 4 to be a learner")
    assert cluster.main_group(1)["learners"] == [4]
    assert sorted(cluster.main_group(1)["members"]) == [1, 2, 3]
    connection = paxdb.connect(cluster.bootstrap_url)
    connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER)")
    connection.executemany("INSERT INTO t(writer, n) VALUES (0, ?)", [(i,) for i in range(50)])
    connection.close()
    host, port = cluster.client_address(4)
    local = paxdb.connect(f"paxdb://{host}:{port}/main?consistency=local")
    wait_until(
        lambda: local.execute("SELECT count(*) FROM t").fetchone() == (50,),
        30,
        "the learner to serve the 50 rows locally",
    )
    local.close()
    # Two voters down: the learner does not make up the quorum.
    master = cluster.master()
    for node in [n for n in (1, 2, 3) if n != master][:1] + [master]:
        cluster.kill(node)
    voter = next(n for n in (1, 2, 3) if n in cluster.processes)
    writes = paxdb.connect(f"paxdb://127.0.0.1:{cluster.ports[voter] + 1000}/main?timeout=3")
    with pytest.raises(paxdb.OperationalError):
        writes.execute("INSERT INTO t(writer, n) VALUES (1, 1)")
    writes.close()
    assert cluster.main_group(4)["role"] == "learner"


@pytest.mark.timeout(240)
def test_a_wiped_member_of_a_changed_cluster_rejoins_with_join(
    small_cluster: ProcessCluster,
) -> None:
    cluster = small_cluster
    cluster.join(4)
    wait_until(lambda: cluster.main_group(4)["role"] == "follower", 60, "node 4 to become a voter")
    connection = paxdb.connect(cluster.bootstrap_url + "?timeout=20")
    connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, writer INTEGER, n INTEGER)")
    for n in range(300):
        connection.execute("INSERT INTO t(writer, n) VALUES (0, ?)", (n,))
    wiped = next(n for n in (1, 2, 3) if n != cluster.master())
    cluster.kill(wiped)
    shutil.rmtree(cluster.data_dir(wiped))
    cluster.joiners[wiped] = ()  # Same id and address, empty directory, --join.
    cluster.start(wiped)
    wait_until(
        lambda: cluster.main_group(wiped)["role"] == "follower", 90, "the wiped node to vote"
    )
    assert sorted(cluster.main_group(wiped)["members"]) == [1, 2, 3, 4]
    # Four voters need three: with one more voter down, the rejoined node must vote.
    down = next(n for n in (1, 2, 3, 4) if n not in (wiped, cluster.master()))
    cluster.kill(down)
    connection.execute("INSERT INTO t(writer, n) VALUES (1, 0)")
    connection.close()
    alive = [n for n in (1, 2, 3, 4) if n != down]
    cluster.converge(30)
    counts = {n: cluster.rows(n, "SELECT count(*) FROM t") for n in alive}
    assert set(map(str, counts.values())) == {"[(301,)]"}, counts


@pytest.mark.timeout(180)
def test_a_removed_node_restarted_with_its_join_flags_stays_out(
    small_cluster: ProcessCluster,
) -> None:
    cluster = small_cluster
    cluster.join(4, "--learner")
    wait_until(lambda: cluster.main_group(4)["role"] == "learner", 60, "node 4 to be a learner")
    removed = _members(cluster.bootstrap_url, "remove", "4")
    assert removed.returncode == 0, removed.stderr
    wait_until(lambda: cluster.main_group(4)["role"] == "outsider", 30, "node 4 to see it is out")
    assert cluster.stop(4) == 0
    cluster.start(4)
    wait_until(lambda: "this node was removed" in cluster.log(4), 30, "node 4 to say it stays out")
    time.sleep(1)  # Time enough for a wrong re-add to be chosen.
    assert cluster.main_group(1)["learners"] == []
    assert sorted(cluster.main_group(1)["members"]) == [1, 2, 3]
