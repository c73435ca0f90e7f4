"""`paxdb restore --data DIR FILE.db`: seed a new node's data directory from a SQLite file.

Any SQLite database will do: a `paxdb backup` copy or a file someone already has.
Restore every node of the new cluster from the same file, then start them. The seed's
content digest becomes the first link of the CRC chain, so nodes seeded from different
files (or not at all) disagree at the very first value, and whichever receives the
other side's proposal halts with a chain mismatch instead of silently diverging.
"""

from __future__ import annotations

import sqlite3
import zlib
from pathlib import Path

import apsw

from paxdb.node.checkpoints import BACKUP_STEP_PAGES
from paxdb.node.config import ConfigError
from paxdb.sql.statemachine import StateMachine


def restore(data_dir: Path, source: Path, database: str = "main") -> str:
    """Seed `data_dir` with `database` copied from `source`; returns a one-line report."""
    target = data_dir / "groups" / database / "db.sqlite"
    if target.exists() or (data_dir / "log").exists():
        raise ConfigError(
            f"{data_dir} already holds paxdb data; restore seeds a new, empty "
            "data directory (one per node of the new cluster)"
        )
    _check_source(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    reader = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    writer = apsw.Connection(str(target))
    try:
        with writer.backup("main", reader, "main") as backup:
            while not backup.done:
                backup.step(BACKUP_STEP_PAGES)
    finally:
        writer.close()
        reader.close()
    machine = StateMachine(str(target))  # Adds paxdb's tables if the file lacks them.
    digest = machine.dump_hash()
    machine.close()
    chain = zlib.crc32(bytes.fromhex(digest)) or 1  # Never the unseeded chain start (0).
    connection = apsw.Connection(str(target))
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("DELETE FROM _paxdb_dedupe")  # Clients of the old cluster.
        connection.execute("UPDATE _paxdb_meta SET applied_instance = -1, chain = ?", (chain,))
        # The old cluster's members and addresses: the new one starts from its --peers.
        connection.execute("UPDATE _paxdb_members SET version = -1, value = NULL")
        connection.execute("COMMIT")
    finally:
        connection.close()
    return (
        f"seeded {target} from {source} (content digest {digest[:16]}, chain "
        f"{chain:08x}); restore every node of the new cluster from the same file, "
        "then start them with paxdb serve"
    )


def _check_source(source: Path) -> None:
    if not source.is_file():
        raise ConfigError(f"{source} is not a file")
    try:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as connection:
            result = connection.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as error:
        raise ConfigError(f"{source} is not a SQLite database ({error})") from None
    if result != [("ok",)]:
        raise ConfigError(f"{source} fails PRAGMA integrity_check: {result[:3]}")
