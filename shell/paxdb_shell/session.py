"""Session: runs SQL on one connection and reads the schema; knows nothing of terminals.

This is litecli's `SQLExecute`: the Shell decides what to print, the Session only talks
to the database, through a connection-like object given to it (dependency injection),
so tests pass a `SqliteConnection` and the real program a paxdb driver connection.
paxdb-specific calls go through `paxdb_shell.backend`.

Schema reads use plain SELECTs on `sqlite_master` and the `pragma_table_info` table
functions (not `PRAGMA` statements, which paxdb's determinism check may refuse).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import backend
from .backend import ShellConnection
from .errors import ShellError
from .sqltext import first_keyword, quote_identifier

__all__ = ["INTERNAL_PREFIXES", "Result", "SchemaEntry", "Session", "is_internal"]

FETCH_ROWS_MAX = 1000  # rows per fetchmany when streaming a table (`.dump`)
INTERNAL_PREFIXES = ("sqlite_", "_paxdb_")
DDL_KEYWORDS = frozenset({"CREATE", "DROP", "ALTER"})

Row = tuple[Any, ...]


def is_internal(name: str) -> bool:
    """True for SQLite's and paxdb's own tables, which listings and dumps skip."""
    return name.lower().startswith(INTERNAL_PREFIXES)


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one statement.

    `columns` is None when the statement returns no rows (a write without RETURNING);
    then `rows` is empty and `rowcount` says how many rows changed (-1 if unknown).
    """

    columns: tuple[str, ...] | None
    rows: list[Row]
    rowcount: int
    elapsed_s: float


@dataclass(frozen=True, slots=True)
class SchemaEntry:
    """One row of `sqlite_master`; `sql` is None for automatic indexes."""

    type: str
    name: str
    table: str
    sql: str | None


class Session:
    """One connection plus the schema questions the shell asks of it.

    Invariant: the schema cache (`schema_map`) is dropped after any DDL statement and
    after switching databases, so completion never offers a stale current-database name.
    """

    def __init__(
        self, conn: ShellConnection, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self.conn = conn
        self.clock = clock
        self._schema: dict[str, list[str]] | None = None

    # The paxdb extensions, all through `backend`.

    @property
    def database(self) -> str:
        return backend.current_database(self.conn)

    @property
    def consistency(self) -> str:
        return backend.get_consistency(self.conn)

    @consistency.setter
    def consistency(self, level: str) -> None:
        if level not in backend.CONSISTENCY_LEVELS:
            choices = ", ".join(backend.CONSISTENCY_LEVELS)
            raise ShellError(f"unknown consistency {level!r}; use one of {choices}")
        backend.set_consistency(self.conn, level)

    def use(self, name: str) -> None:
        backend.use_database(self.conn, name)
        self._schema = None

    def status(self) -> Mapping[str, Any]:
        return backend.node_status(self.conn)

    def databases(self) -> list[str]:
        return backend.database_names(self.conn)

    def close(self) -> None:
        self.conn.close()

    # Running SQL.

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Result:
        """Run one statement and fetch all of its rows; time covers both."""
        started = self.clock()
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, parameters)
            description = cursor.description
            columns = tuple(str(column[0]) for column in description) if description else None
            rows = [tuple(row) for row in cursor.fetchall()] if columns is not None else []
            rowcount = cursor.rowcount
        finally:
            cursor.close()
        if first_keyword(sql) in DDL_KEYWORDS:
            self._schema = None
        return Result(columns, rows, rowcount, self.clock() - started)

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> list[Row]:
        """The rows of a read; a convenience over `execute`."""
        return self.execute(sql, parameters).rows

    def stream(self, sql: str, parameters: Sequence[Any] = ()) -> Iterator[Row]:
        """Yield rows `FETCH_ROWS_MAX` at a time, so `.dump` of a big table stays small."""
        cursor = self.conn.cursor()
        try:
            cursor.execute(sql, parameters)
            while batch := cursor.fetchmany(FETCH_ROWS_MAX):
                yield from (tuple(row) for row in batch)
        finally:
            cursor.close()

    def execute_atomic(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """`executemany(sql, rows)` as one atomic request: every row applies, or none."""
        with backend.atomic(self.conn):
            cursor = self.conn.cursor()
            try:
                cursor.executemany(sql, list(rows))
            finally:
                cursor.close()

    # The schema.

    def schema_entries(self, pattern: str | None = None) -> list[SchemaEntry]:
        """Entries of `sqlite_master` in creation order, optionally for tables LIKE `pattern`.

        Creation order matters: a view or trigger always comes after what it uses.
        """
        rows = self.query(
            "SELECT type, name, tbl_name, sql FROM sqlite_master"
            " WHERE ? IS NULL OR tbl_name LIKE ? ORDER BY rowid",
            (pattern, pattern),
        )
        return [SchemaEntry(str(t), str(n), str(tb), s) for t, n, tb, s in rows]

    def table_names(self, pattern: str | None = None) -> list[str]:
        """User tables and views (not internal ones), sorted."""
        return sorted(
            entry.name
            for entry in self.schema_entries(pattern)
            if entry.type in ("table", "view") and not is_internal(entry.name)
        )

    def column_names(self, table: str) -> list[str]:
        """Columns of `table` in order, without generated or hidden ones; [] if no such table.

        These are exactly the columns `INSERT INTO t VALUES(...)` expects.
        """
        rows = self.query("SELECT name, hidden FROM pragma_table_xinfo(?) ORDER BY cid", (table,))
        return [str(name) for name, hidden in rows if hidden == 0]

    def has_table(self, table: str) -> bool:
        rows = self.query(
            "SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') AND name = ?"
            " COLLATE NOCASE",
            (table,),
        )
        return bool(rows)

    def schema_map(self) -> dict[str, list[str]]:
        """Table and view names to their column names, cached until the next DDL."""
        if self._schema is None:
            rows = self.query(
                "SELECT m.name, p.name FROM sqlite_master AS m"
                " JOIN pragma_table_info(m.name) AS p"
                " WHERE m.type IN ('table', 'view') ORDER BY m.name, p.cid"
            )
            schema: dict[str, list[str]] = {}
            for table, column in rows:
                if not is_internal(str(table)):
                    schema.setdefault(str(table), []).append(str(column))
            self._schema = schema
        return self._schema

    def forget_schema(self) -> None:
        """Drop the schema cache (after `.read`, `.import` or a failed DDL)."""
        self._schema = None

    def select_all_sql(self, table: str, columns: Sequence[str]) -> str:
        """`SELECT cols FROM table`, naming the columns so generated ones are left out."""
        names = ", ".join(quote_identifier(c) for c in columns)
        return f"SELECT {names} FROM {quote_identifier(table)}"
