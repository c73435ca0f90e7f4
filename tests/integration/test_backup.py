"""`paxdb backup`: a consistent, checked SQLite copy of one database, in chunks."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
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
