"""`paxdb backup`: a consistent, checked SQLite copy of one database, in chunks."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster import ProcessCluster


@pytest.mark.timeout(120)
def test_backup_writes_a_consistent_copy_at_a_known_instance(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    cluster.master()
    client = cluster.client()
    client.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, v BLOB)", write=True)
    for _ in range(6):  # About 3 MiB: several 1 MiB chunks.
        client.execute(
            "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 100) "
            "INSERT INTO big(v) SELECT randomblob(5000) FROM n",
            write=True,
        )
    target = tmp_path / "copy.db"
    result = subprocess.run(
        [sys.executable, "-m", "paxdb", "backup", cluster.url, str(target)],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr
    match = re.match(
        r"backed up database main at instance (\d+) \(chain ([0-9a-f]{8})\)", result.stdout
    )
    assert match, result.stdout
    with sqlite3.connect(target) as copy:
        assert copy.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        meta = copy.execute("SELECT applied_instance, chain FROM _paxdb_meta").fetchone()
        instance, chain = meta
        assert (instance, f"{chain:08x}") == (int(match.group(1)), match.group(2))
        rows = copy.execute("SELECT id, v FROM big ORDER BY id").fetchall()
    assert len(rows) == 600
    cluster.converge()
    assert rows == cluster.rows(1, "SELECT id, v FROM big ORDER BY id")
    for node_id in cluster.ports:
        assert not list((cluster.data_dir(node_id) / "backups").glob("*.sqlite"))


def test_backup_of_a_missing_database_is_a_one_line_error(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "paxdb",
            "backup",
            cluster.url,
            str(tmp_path / "x.db"),
            "--database",
            "nosuch",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: ProgrammingError: no database 'nosuch' on this node"
    assert not (tmp_path / "x.db").exists()


def test_the_shell_backs_up_the_current_database(cluster: ProcessCluster, tmp_path: Path) -> None:
    cluster.master()
    cluster.client().execute("CREATE TABLE notes(body)", write=True)
    cluster.client().execute("INSERT INTO notes VALUES ('kept')", write=True)
    target = tmp_path / "shell-copy.db"
    result = subprocess.run(
        [sys.executable, "-m", "paxdb", "shell", cluster.url, "-c", f".backup {target}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT body FROM notes").fetchall() == [("kept",)]


def restore(data_dir: Path, file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paxdb", "restore", "--data", str(data_dir), str(file)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.timeout(150)
def test_backup_then_restore_into_a_fresh_cluster_gives_identical_rows(
    cluster: ProcessCluster, tmp_path: Path
) -> None:
    cluster.master()
    client = cluster.client()
    client.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v)", write=True)
    for n in range(20):
        client.execute("INSERT INTO kv VALUES (?, ?)", (f"k{n}", n * n), write=True)
    copy = tmp_path / "copy.db"
    backed = subprocess.run(
        [sys.executable, "-m", "paxdb", "backup", cluster.url, str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert backed.returncode == 0, backed.stderr
    (tmp_path / "fresh").mkdir()
    fresh = ProcessCluster(tmp_path / "fresh")
    try:
        for node_id in fresh.ports:
            seeded = restore(fresh.data_dir(node_id), copy)
            assert seeded.returncode == 0, seeded.stderr
            assert "seeded" in seeded.stdout
        again = restore(fresh.data_dir(1), copy)
        assert again.returncode == 1 and "already holds paxdb data" in again.stderr
        fresh.start()
        fresh.master()
        fresh.client().execute("INSERT INTO kv VALUES ('after', 1)", write=True)
        fresh.converge()
        expected = cluster.rows(1, "SELECT k, v FROM kv ORDER BY k") + [("after", 1)]
        for node_id in fresh.ports:
            rows = fresh.rows(node_id, "SELECT k, v FROM kv ORDER BY k")
            assert sorted(rows) == sorted(expected)
    finally:
        fresh.close()


@pytest.mark.timeout(120)
def test_a_node_seeded_differently_halts_instead_of_diverging(tmp_path: Path) -> None:
    """Two nodes seeded, one not: their chains disagree at the first value (the first
    master claim), and whichever side receives the other's proposal halts with a
    chain mismatch. Which side that is depends on who campaigns first; what never
    happens is two replicas applying the same instance with different chains."""
    seed = tmp_path / "seed.db"
    with sqlite3.connect(seed) as connection:
        connection.execute("CREATE TABLE t(v)")
        connection.execute("INSERT INTO t VALUES (1)")
    (tmp_path / "mixed").mkdir()
    fresh = ProcessCluster(tmp_path / "mixed")
    try:
        for node_id in (1, 2):
            assert restore(fresh.data_dir(node_id), seed).returncode == 0
        fresh.start()  # Node 3 starts empty.
        deadline = time.monotonic() + 30
        halted: list[str] = []
        while time.monotonic() < deadline and not halted:
            halted = [
                reason
                for n in fresh.ports
                if (reason := fresh.status(n)["groups"]["main"]["halted"])
            ]
            time.sleep(0.2)
        assert halted and all("chain" in reason for reason in halted), halted
        by_instance: dict[int, set[int]] = {}
        for node_id in fresh.ports:
            instance, chain = fresh.meta(node_id)
            if instance >= 0:
                by_instance.setdefault(instance, set()).add(chain)
        assert all(len(chains) == 1 for chains in by_instance.values()), by_instance
    finally:
        fresh.close()


def test_restore_refuses_what_is_not_a_sqlite_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    result = restore(tmp_path / "node", junk)
    assert result.returncode == 1
    assert "is not a SQLite database" in result.stderr
