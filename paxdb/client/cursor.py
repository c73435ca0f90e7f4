"""The PEP 249 Cursor of the paxdb driver (see paxdb/client/dbapi.py for the semantics).

A cursor holds the result of its last `execute*()`: the rows (already transferred:
the client protocol returns a statement's whole result in one reply), `description`,
`rowcount` and `lastrowid`. It never talks to a node itself; it asks its Connection,
which owns the transaction buffer, the sequence numbers and the transport.

Invariants:
- `_has_result` is True exactly when the last execute produced a result set (a read,
  or a write with RETURNING); fetching without one raises ProgrammingError saying why,
  as PEP 249 asks, instead of silently returning nothing.
- `0 <= _position <= len(_rows)`.
- A closed cursor, or a cursor of a closed connection, raises ProgrammingError on every
  operation except `close()` (which is idempotent).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from paxdb.client.classify import Kind, classify, parse_control
from paxdb.client.dbtypes import adapt_params
from paxdb.client.url import check_consistency
from paxdb.errors import ProgrammingError
from paxdb.sql.requests import REQUEST_STATEMENTS_MAX, Statement, StatementResult

if TYPE_CHECKING:
    from paxdb.client.dbapi import Connection

Row = tuple[Any, ...]
Description = tuple[tuple[str, None, None, None, None, None, None], ...]

# How a statement is sent outside a transaction: the `write` field of the request.
_WRITE_OUTSIDE: dict[Kind, bool | None] = {
    Kind.READ: False,
    Kind.WRITE: True,
    Kind.MAYBE_READ: None,
    Kind.MAYBE_WRITE: None,
}
_BUFFERED_KINDS = (Kind.WRITE, Kind.MAYBE_WRITE)
_NO_STATEMENT = "no statement has been executed on this cursor"


class Cursor:
    """A PEP 249 cursor. Create it with `Connection.cursor()`."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._closed = False
        self.arraysize = 1
        self._rows: tuple[Row, ...] = ()
        self._position = 0
        self._description: Description | None = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._has_result = False
        self._no_result_reason = _NO_STATEMENT

    # PEP 249 attributes.

    @property
    def connection(self) -> Connection:
        return self._connection

    @property
    def description(self) -> Description | None:
        """One 7-tuple (name, None x 6) per result column; None if no result set."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows changed by the last INSERT/UPDATE/DELETE/REPLACE (summed over executemany);
        -1 for reads, for statements that change no rows, and for buffered writes."""
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        """The rowid of the last row inserted by the last write; None if none (or buffered)."""
        return self._lastrowid

    # Execution.

    def execute(
        self, operation: str, parameters: Any = None, *, consistency: str | None = None
    ) -> Cursor:
        """Run one statement; returns the cursor (so `cur.execute(...).fetchall()` works).

        `consistency` ("local", "master", "linearizable") overrides the connection's
        for this call (a paxdb extension); it matters only for reads.
        """
        connection = self._check_open()
        if type(operation) is not str:
            raise ProgrammingError(f"operation must be a str, not {type(operation).__name__}")
        params = adapt_params(parameters)
        kind = classify(operation)
        self._reset()
        if kind is Kind.CONTROL:
            if params:
                raise ProgrammingError(f"{operation.strip()!r} takes no parameters")
            connection._control(parse_control(operation))
            self._no_result_reason = "transaction control statements return no rows"
            return self
        if kind is Kind.EMPTY:
            self._no_result_reason = "the statement was empty"
            return self
        statement = Statement(operation, params)
        level = connection._consistency if consistency is None else check_consistency(consistency)
        if connection.in_transaction:
            if kind in _BUFFERED_KINDS:
                connection._buffer_writes((statement,))
                self._no_result_reason = "the write is buffered until commit()"
                return self
            write: bool | None = False
        else:
            write = _WRITE_OUTSIDE[kind]
        results = connection._request((statement,), write, level)
        self._set_result(results, is_read=kind in (Kind.READ, Kind.MAYBE_READ))
        return self

    def executemany(self, operation: str, seq_of_parameters: Iterable[Any]) -> Cursor:
        """Run a write once per parameter set, as ONE atomic request (all or none).

        rowcount is the sum over the sets; lastrowid is the last set's; RETURNING rows
        of every set are concatenated. In a transaction the statements are buffered.
        """
        connection = self._check_open()
        if type(operation) is not str:
            raise ProgrammingError(f"operation must be a str, not {type(operation).__name__}")
        if classify(operation) not in _BUFFERED_KINDS:
            raise ProgrammingError(
                "executemany() runs one write per parameter set; use execute() for reads "
                "and transaction statements"
            )
        statements = tuple(Statement(operation, adapt_params(p)) for p in seq_of_parameters)
        if len(statements) > REQUEST_STATEMENTS_MAX:
            raise ProgrammingError(
                f"executemany() got {len(statements)} parameter sets; one atomic request "
                f"holds at most {REQUEST_STATEMENTS_MAX}: split them in a transaction"
            )
        self._reset()
        if not statements:
            self._rowcount = 0
            self._no_result_reason = "executemany() got no parameter sets"
        elif connection.in_transaction:
            connection._buffer_writes(statements)
            self._no_result_reason = "the writes are buffered until commit()"
        else:
            results = connection._request(statements, True, connection._consistency)
            self._set_result(results, is_read=False)
        return self

    # Fetching.

    def fetchone(self) -> Row | None:
        """The next row, or None when the result set is exhausted."""
        self._check_result()
        position = self._position
        if position < len(self._rows):
            self._position = position + 1
            return self._rows[position]
        return None

    def fetchmany(self, size: int | None = None) -> list[Row]:
        """Up to `size` (default `arraysize`) next rows; fewer (or none) at the end."""
        self._check_result()
        count = self.arraysize if size is None else size
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ProgrammingError(f"fetchmany() size must be an int >= 0, not {count!r}")
        start = self._position
        end = min(start + count, len(self._rows))
        self._position = end
        return list(self._rows[start:end])

    def fetchall(self) -> list[Row]:
        """Every remaining row."""
        self._check_result()
        start = self._position
        self._position = len(self._rows)
        return list(self._rows[start:])

    def __iter__(self) -> Iterator[Row]:
        return self

    def __next__(self) -> Row:
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    # Lifecycle and PEP 249 no-ops.

    def close(self) -> None:
        """Release the result; every later operation raises ProgrammingError."""
        self._closed = True
        self._rows = ()

    def __enter__(self) -> Cursor:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def setinputsizes(self, sizes: Any) -> None:
        """PEP 249 no-op: values are typed by SQLite."""
        self._check_open()

    def setoutputsize(self, size: Any, column: Any = None) -> None:
        """PEP 249 no-op: whole values are always returned."""
        self._check_open()

    # Internals.

    def _check_open(self) -> Connection:
        if self._closed:
            raise ProgrammingError("cannot operate on a closed cursor")
        connection = self._connection
        if connection._closed:
            raise ProgrammingError("cannot operate on a closed connection")
        return connection

    def _check_result(self) -> None:
        self._check_open()
        if not self._has_result:
            raise ProgrammingError(f"no result set to fetch from: {self._no_result_reason}")

    def _reset(self) -> None:
        self._rows = ()
        self._position = 0
        self._description = None
        self._rowcount = -1
        self._lastrowid = None
        self._has_result = False
        self._no_result_reason = _NO_STATEMENT

    def _set_result(self, results: tuple[StatementResult, ...], is_read: bool) -> None:
        """Take the statement results of one request (one per statement, in order)."""
        if len(results) == 1:
            result = results[0]
            rows = result.rows
            columns = result.columns
        else:
            rows = tuple(row for r in results for row in r.rows)
            columns = next((r.columns for r in results if r.columns), ())
        self._rows = rows
        if columns:
            self._description = tuple(
                (name, None, None, None, None, None, None) for name in columns
            )
        self._has_result = bool(columns) or bool(rows) or is_read
        if not self._has_result:
            self._no_result_reason = "the statement returned no result set"
        if not is_read:
            counts = [r.rowcount for r in results if r.rowcount >= 0]
            self._rowcount = sum(counts) if counts else -1
            self._lastrowid = results[-1].lastrowid
