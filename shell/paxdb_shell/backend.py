"""The seam between the shell and the database driver: the only paxdb-specific code.

Everything the shell does to a database goes through a PEP 249 connection plus the
paxdb extensions named in `ShellConnection`: `consistency`, `database`, `use()` and
`status()`. Those extension calls, the choice of driver from a URL, the atomic batch
used by `.import` and the way errors are classified all live here, so wiring the real
driver in `paxdb/client` means changing this module and nothing else.

Test hook: a URL starting with `sqlite:` (`sqlite:///path/to/file.db`, `sqlite://` or
`sqlite://:memory:`) opens `SqliteConnection`, a stand-in over the stdlib `sqlite3`
module, instead of a cluster. The test-suite and the pseudo-terminal test use it;
it is not a supported way to run paxdb.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

__all__ = [
    "CONSISTENCY_LEVELS",
    "DEFAULT_URL",
    "ShellConnection",
    "ShellCursor",
    "atomic",
    "connect",
    "current_database",
    "database_names",
    "get_consistency",
    "is_master_unavailable",
    "node_status",
    "set_consistency",
    "use_database",
]

DEFAULT_URL = "paxdb://127.0.0.1:8001/main"
CONSISTENCY_LEVELS = ("local", "master", "linearizable")
TEST_URL_SCHEME = "sqlite:"


class ShellCursor(Protocol):
    """The PEP 249 cursor surface the shell relies on."""

    @property
    def description(self) -> Sequence[Sequence[Any]] | None: ...

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def fetchmany(self, size: int = ..., /) -> list[Any]: ...

    def close(self) -> None: ...


class ShellConnection(Protocol):
    """A PEP 249 connection with the paxdb extensions (DESIGN.md "URL and driver").

    `consistency` is one of `CONSISTENCY_LEVELS`; `database` is the current database
    (Paxos group) name; `use(name)` switches it; `status()` describes the node and the
    cluster as nested dicts. `autocommit = False` buffers writes until `commit()`, which
    sends them as one atomic request.
    """

    autocommit: bool
    consistency: str

    @property
    def database(self) -> str: ...

    def cursor(self) -> ShellCursor: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...

    def use(self, name: str) -> None: ...

    def status(self) -> Mapping[str, Any]: ...


def connect(url: str) -> ShellConnection:
    """Open the connection named by `url`: a paxdb cluster, or the sqlite test hook."""
    if url.startswith(TEST_URL_SCHEME):
        from .sqlite_backend import SqliteConnection

        return SqliteConnection.from_url(url)
    import paxdb.client

    connect_function = getattr(paxdb.client, "connect", None)
    if connect_function is None:
        raise RuntimeError("this paxdb build has no driver yet (paxdb.client.connect is missing)")
    connection: ShellConnection = connect_function(url)
    return connection


# The paxdb extensions of a connection. Session calls these, never the attributes.


def current_database(conn: ShellConnection) -> str:
    return str(conn.database)


def use_database(conn: ShellConnection, name: str) -> None:
    conn.use(name)


def get_consistency(conn: ShellConnection) -> str:
    return str(conn.consistency)


def set_consistency(conn: ShellConnection, level: str) -> None:
    assert level in CONSISTENCY_LEVELS, level
    conn.consistency = level


def node_status(conn: ShellConnection) -> Mapping[str, Any]:
    return conn.status()


def backup_database(conn: ShellConnection, file: str, progress: Any) -> str:
    """Copy the current database to `file` (`paxdb backup`); returns the report line."""
    backup_to = getattr(conn, "backup_to", None)
    if backup_to is not None:  # The sqlite stand-in copies with sqlite3's backup API.
        return str(backup_to(file))
    from paxdb.client.backup import fetch_backup

    url = f"paxdb://{','.join(conn.addresses)}/{current_database(conn)}"  # type: ignore[attr-defined]
    return fetch_backup(url, file, None, progress)


def database_names(conn: ShellConnection) -> list[str]:
    """Names of the databases (groups) the node serves; at least the current one."""
    groups = node_status(conn).get("groups")
    names = [str(name) for name in groups] if isinstance(groups, Mapping) else []
    if current_database(conn) not in names:
        names.append(current_database(conn))
    return sorted(names)


@contextmanager
def atomic(conn: ShellConnection) -> Iterator[None]:
    """Run the block's writes as one atomic request: all applied on commit, or none.

    Uses the PEP 249 way (autocommit off, then `commit()`), which the paxdb driver turns
    into a single replicated request. Autocommit is restored whatever happens. Inside a
    transaction the user opened (`BEGIN`), the block just joins it: committing here would
    commit the user's earlier writes too, so their own COMMIT or ROLLBACK decides.
    """
    if getattr(conn, "in_transaction", False):
        yield
        return
    previous = conn.autocommit
    conn.autocommit = False
    try:
        yield
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    finally:
        conn.autocommit = previous


def is_master_unavailable(error: BaseException) -> bool:
    """True for an OperationalError caused by a master change (paxdb's `NotMaster`).

    Judged by class names along the MRO and the message, so it works for the real
    driver's `paxdb.errors.NotMaster` and for stand-ins without importing either.
    """
    names = {cls.__name__ for cls in type(error).__mro__}
    if "NotMaster" in names:
        return True
    return "OperationalError" in names and "master" in str(error).lower()
