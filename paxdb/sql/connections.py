"""Connection settings of a replica's SQLite file, as named functions (apsw bestpractice).

Why `synchronous=NORMAL` on the apply connection is safe: the durability point of a
write is the Paxos log's fsync, which happens before the value is chosen. In WAL mode
with NORMAL, a power loss can drop the last committed SQLite transactions but never
corrupts the file; `_paxdb_meta.applied_instance` is committed in the same transaction
as the data, so after a restart the replica sees exactly which instances it still has,
and the lost tail is re-applied from the log. Fsyncing SQLite per transaction too would
double the cost of every write for no extra safety.

Why no auto-ANALYZE or `PRAGMA optimize` on the apply connection: statistics change query
plans, and replicas must run the same plans; only a replicated ANALYZE may change them.
"""

from __future__ import annotations

import apsw

from paxdb.sql.authorizer import ApplyAuthorizer, ReadAuthorizer
from paxdb.sql.stamping import STAMPED_VFS_NAME, StampedRandom, stamped_vfs

READ_BUSY_TIMEOUT_MS = 5_000  # A read waits this long for a WAL checkpoint to let go.


def use_wal(connection: apsw.Connection) -> None:
    """WAL: readers never block the single writer, and a crash never tears the file."""
    mode = connection.execute("PRAGMA journal_mode=WAL").fetchall()
    assert mode == [("wal",)], f"journal_mode is {mode}"


def sync_normal(connection: apsw.Connection) -> None:
    """No fsync per commit: the Paxos log is the durability point (module docstring)."""
    connection.execute("PRAGMA synchronous=NORMAL")


def enforce_foreign_keys(connection: apsw.Connection) -> None:
    """paxdb enforces foreign keys on every replica; users cannot switch it per connection."""
    connection.execute("PRAGMA foreign_keys=ON")


def distrust_schema(connection: apsw.Connection) -> None:
    """Functions in views/triggers/defaults must be SQLITE_INNOCUOUS (defense in depth)."""
    connection.execute("PRAGMA trusted_schema=OFF")


def open_apply_connection(
    path: str, random_source: StampedRandom
) -> tuple[apsw.Connection, ApplyAuthorizer]:
    """The only connection that writes the replica: stamped VFS, stamped random, authorizer."""
    stamped_vfs()  # Registers the VFS before the open below names it.
    flags = apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE
    connection = apsw.Connection(path, flags=flags, vfs=STAMPED_VFS_NAME)
    use_wal(connection)
    sync_normal(connection)
    enforce_foreign_keys(connection)
    distrust_schema(connection)
    connection.enable_load_extension(False)
    random_source.install(connection)
    authorizer = ApplyAuthorizer()
    connection.authorizer = authorizer
    return connection, authorizer


def open_read_connection(path: str) -> apsw.Connection:
    """A read-only connection: SQLite itself refuses any write that slips through."""
    connection = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    connection.set_busy_timeout(READ_BUSY_TIMEOUT_MS)
    connection.execute("PRAGMA query_only=ON")
    connection.authorizer = ReadAuthorizer()
    return connection


def open_judge_connection(path: str) -> apsw.Connection:
    """A read-only connection that only compiles statements (schema-aware judging)."""
    connection = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    connection.set_busy_timeout(READ_BUSY_TIMEOUT_MS)
    connection.execute("PRAGMA query_only=ON")
    return connection
