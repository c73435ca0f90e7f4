"""The APSW state machine of one database (one Paxos group): apply chosen values in order.

Theory of operation. Each chosen SQL batch is applied in ONE SQLite transaction that also
records `_paxdb_meta(applied_instance, chain)` and the dedupe rows, so applying is atomic
with its bookkeeping: after a crash the replica has applied exactly the instances up to
`applied_instance`, and re-applies the rest from the Paxos log.

Inside the transaction each request runs under its own SAVEPOINT. A *deterministic*
failure (constraint, SQL error, authorizer denial, bad parameter) rolls back that request
alone and becomes its result; every replica fails the same way. An *environmental*
failure (I/O, disk full, corruption, out of memory, busy) is not a property of the SQL:
it raises `ReplicaHalted`, the whole transaction is rolled back and the instance is
never skipped. If a statement destroys the whole transaction (`INSERT OR ROLLBACK`,
`RAISE(ROLLBACK)` in a trigger), the batch is re-run from its start with that request
marked failed, which is again the same on every replica.

Exactly once (DESIGN.md invariant 6): `_paxdb_dedupe` keeps, per client, the highest
applied seq and its result. A request whose seq equals it gets the stored result without
running; an older seq gets an error result.

Stamps: all statements of one value read the stamped `time_ms` as 'now' and draw
random()/randomblob() from `seed` (see stamping.py), so replicas store identical rows.

Users may read paxdb's own tables (`_paxdb_meta`, `_paxdb_dedupe`); the authorizer
refuses any user change to them, and `dump_hash` leaves them out.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Sequence
from typing import Any, NoReturn

import apsw
import msgpack  # type: ignore[import-untyped]

from paxdb import errors
from paxdb.sql import connections, judge
from paxdb.sql.determinism import classify
from paxdb.sql.requests import (
    ENVIRONMENTAL_ERRORS,
    ErrorInfo,
    Request,
    RequestResult,
    Statement,
    StatementResult,
    decode_request,
    decode_result,
    encode_result,
    error_info,
)
from paxdb.sql.stamping import StampedRandom, stamped_vfs
from paxdb.sql.verdict import Kind, Verdict, leading_words

CHAIN_START = 0  # The chain before instance 0 (paxdb.paxos.chain.CHAIN_START).
RANDOMBLOB_BYTES_MAX = 1_000_000_000  # SQLite's default SQLITE_MAX_LENGTH.
_ROWCOUNT_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "WITH"})
_LASTROWID_WORDS = frozenset({"INSERT", "REPLACE", "WITH"})
# Appended to the text of paxdb's own statements so they may live in APSW's statement
# cache: a plan compiled with the authorizer's checks off is found only by text holding
# this per-process secret, which no user statement can contain (authorizer.py).
_INTERNAL_TAG = f" /* paxdb-internal {os.urandom(16).hex()} */"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS _paxdb_meta(
    id INTEGER PRIMARY KEY CHECK (id = 0),
    applied_instance INTEGER NOT NULL,
    chain INTEGER NOT NULL);
INSERT OR IGNORE INTO _paxdb_meta VALUES (0, -1, {CHAIN_START});
CREATE TABLE IF NOT EXISTS _paxdb_members(
    id INTEGER PRIMARY KEY CHECK (id = 0),
    version INTEGER NOT NULL,
    value BLOB);
INSERT OR IGNORE INTO _paxdb_members VALUES (0, -1, NULL);
CREATE TABLE IF NOT EXISTS _paxdb_dedupe(
    client_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    result BLOB NOT NULL) WITHOUT ROWID;
"""


class _TransactionLost(Exception):
    """A statement rolled back the whole batch transaction; carries that request's error."""

    def __init__(self, index: int, info: ErrorInfo) -> None:
        super().__init__(info.message)
        self.index = index
        self.info = info


class StateMachine:
    """One replica's SQLite database. Not thread-safe: one applier, reads on its thread."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._random = StampedRandom(length_max=RANDOMBLOB_BYTES_MAX)
        self._apply, self._authorizer = connections.open_apply_connection(path, self._random)
        with self._internal():
            self._apply.execute(_SCHEMA, can_cache=False)
            row: list[Any] = self._apply.execute(
                "SELECT applied_instance, chain FROM _paxdb_meta", can_cache=False
            ).fetchall()
            members: list[Any] = self._apply.execute(
                "SELECT version, value FROM _paxdb_members", can_cache=False
            ).fetchall()
        assert len(row) == 1 and len(members) == 1
        self._applied_instance: int = row[0][0]
        self._chain: int = row[0][1]
        self._members: tuple[int, bytes | None] = (members[0][0], members[0][1])
        assert self._applied_instance >= -1
        self._read = connections.open_read_connection(path)
        self._judge = connections.open_judge_connection(path)

    @property
    def applied_instance(self) -> int:
        """The last instance applied (-1 for a fresh database)."""
        return self._applied_instance

    @property
    def chain(self) -> int:
        """The CRC chain value after `applied_instance`."""
        return self._chain

    @property
    def members(self) -> tuple[int, bytes | None]:
        """(version, payload) of the MEMBERSHIP value in force after `applied_instance`:
        (-1, None) while the bootstrap configuration is. The node keeps its address book
        here, so checkpoints and backups carry it with the data they belong to."""
        return self._members

    def close(self) -> None:
        for connection in (self._judge, self._read, self._apply):
            connection.close()

    # Applying chosen values.

    def apply_batch(
        self,
        instance: int,
        chain: int,
        requests: Sequence[bytes | Request],
        time_ms: int,
        seed: int,
    ) -> list[RequestResult]:
        """Apply one chosen SQL batch; one result per request, in order.

        An instance at or below `applied_instance` is a replay after a restart: nothing
        runs, and results come from the dedupe table. Raises ReplicaHalted on an
        environmental failure; the instance is then not applied.
        """
        assert instance >= 0
        assert 0 <= chain <= 0xFFFFFFFF
        decoded = [_decode(item) for item in requests]
        if instance <= self._applied_instance:
            return [self._replayed(request) for request in decoded]
        assert instance == self._applied_instance + 1, "instances apply in order, no gap"
        failed: dict[int, ErrorInfo] = {}
        with stamped_vfs().stamped(time_ms):
            while True:
                try:
                    results = self._apply_transaction(instance, chain, decoded, seed, failed)
                    break
                except _TransactionLost as lost:
                    assert lost.index not in failed, "a request failed twice"
                    failed[lost.index] = lost.info
        self._applied_instance = instance
        self._chain = chain
        return results

    def apply_noop(self, instance: int, chain: int, members: bytes | None = None) -> None:
        """Advance the meta row for a value with no SQL (master, membership, noop).
        `members`: the payload of a MEMBERSHIP value that takes effect at `instance`
        (the caller decided it is not stale), stored in the same transaction."""
        assert instance >= 0
        if instance <= self._applied_instance:
            return
        assert instance == self._applied_instance + 1, "instances apply in order, no gap"
        try:
            with self._internal():
                self._run("BEGIN IMMEDIATE")
                self._update_meta(instance, chain)
                if members is not None:
                    self._run(
                        "UPDATE _paxdb_members SET version = ?, value = ?", (instance, members)
                    )
                self._run("COMMIT")
        except ENVIRONMENTAL_ERRORS as error:
            self._halt(instance, error)
        self._applied_instance = instance
        self._chain = chain
        if members is not None:
            self._members = (instance, members)

    def _apply_transaction(
        self,
        instance: int,
        chain: int,
        requests: list[Request | ErrorInfo],
        seed: int,
        failed: dict[int, ErrorInfo],
    ) -> list[RequestResult]:
        try:
            with self._internal():
                self._run("BEGIN IMMEDIATE")
            results = [
                self._apply_request(index, request, seed, failed.get(index))
                for index, request in enumerate(requests)
            ]
            with self._internal():
                self._update_meta(instance, chain)
                self._run("COMMIT")
            return results
        except ENVIRONMENTAL_ERRORS as error:
            self._halt(instance, error)
        except _TransactionLost:
            self._rollback_quietly()
            raise

    def _apply_request(
        self, index: int, request: Request | ErrorInfo, seed: int, failure: ErrorInfo | None
    ) -> RequestResult:
        if isinstance(request, ErrorInfo):
            return RequestResult(error=request)  # Undecodable bytes: same on every replica.
        stored = self._dedupe_lookup(request.client_id)
        if stored is not None and request.seq <= stored[0]:
            return _dedupe_result(request, stored)
        if failure is not None:
            outcome = RequestResult(error=failure)
        else:
            outcome = self._run_request(index, request, seed)
        with self._internal():
            self._run(
                "INSERT INTO _paxdb_dedupe(client_id, seq, result) VALUES (?, ?, ?) "
                "ON CONFLICT(client_id) DO UPDATE SET seq = excluded.seq, result = excluded.result",
                (request.client_id, request.seq, encode_result(outcome)),
            )
        return outcome

    def _run_request(self, index: int, request: Request, seed: int) -> RequestResult:
        """Run one request under a savepoint; a deterministic error rolls back it alone."""
        with self._internal():
            self._run("SAVEPOINT paxdb_request")
        try:
            results = tuple(
                self._run_statement(index, position, statement, seed)
                for position, statement in enumerate(request.statements)
            )
        except ENVIRONMENTAL_ERRORS:
            raise
        except (apsw.Error, TypeError, ValueError, OverflowError) as error:
            info = self._error_info(error)
            if self._apply.in_transaction:
                with self._internal():
                    self._run("ROLLBACK TO paxdb_request")
                    self._run("RELEASE paxdb_request")
                return RequestResult(error=info)
            raise _TransactionLost(index, info) from error
        with self._internal():
            self._run("RELEASE paxdb_request")
        return RequestResult(results=results)

    def _run_statement(
        self, index: int, position: int, statement: Statement, seed: int
    ) -> StatementResult:
        self._random.select(seed, self._applied_instance + 1, index, position)
        self._authorizer.denial = ""
        self._apply.set_last_insert_rowid(0)  # Else an INSERT of no row reports history.
        changes_before = self._apply.total_changes()
        cursor = self._apply.cursor()
        described: list[tuple[str, ...]] = []
        cursor.exec_trace = _described_into(described)
        cursor.execute(statement.sql, statement.params)
        rows = tuple(tuple(row) for row in cursor)
        columns = described[-1] if described else ()
        first = _first_word(statement.sql)
        if self._apply.total_changes() != changes_before:
            rowcount = self._apply.changes()
        else:
            rowcount = 0 if first in _ROWCOUNT_WORDS else -1
        rowid = self._apply.last_insert_rowid() if first in _LASTROWID_WORDS else 0
        return StatementResult(rowcount, rowid or None, columns, rows)

    def _replayed(self, request: Request | ErrorInfo) -> RequestResult:
        if isinstance(request, ErrorInfo):
            return RequestResult(error=request)
        stored = self._dedupe_lookup(request.client_id)
        if stored is None:
            return RequestResult(error=_superseded(request, None))
        return _dedupe_result(request, stored)

    # Reads.

    def query(self, sql: str, params: Any = None) -> StatementResult:
        """Run a read on the read-only connection. A write is refused, never executed."""
        verdict = classify(sql)
        if verdict.kind is Kind.REJECTED:
            raise errors.ProgrammingError(verdict.reason)
        if verdict.kind is not Kind.READ:
            raise errors.ProgrammingError(
                "this statement writes; send it as a write so every replica applies it"
            )
        cursor = self._read.cursor()
        described: list[tuple[str, ...]] = []
        cursor.exec_trace = _described_into(described, refuse_writes=True)
        try:
            cursor.execute(sql, params)
            rows = tuple(tuple(row) for row in cursor)
            columns = described[-1] if described else ()
        except apsw.ExecTraceAbort:
            raise errors.ProgrammingError(
                "this statement writes; send it as a write so every replica applies it"
            ) from None
        except (apsw.Error, TypeError, ValueError, OverflowError) as error:
            raise error_info(error).to_exception() from error
        return StatementResult(-1, None, columns, rows)

    def check_write(self, sql: str) -> Verdict:
        """The proposer's check with this replica's schema; raises if `sql` is unfit.

        `classify` is schema-free and cached; only its deferred verdicts are re-judged by
        SQLite against the current schema here. A statement that still cannot compile
        (its table is created earlier in the same request) stays deferred to apply.
        """
        verdict = classify(sql)
        verdict.raise_unless_write_safe()
        if verdict.is_deferred:
            verdict = judge.judge_sql(self._judge, sql)
            verdict.raise_unless_write_safe()
        return verdict

    def dump_hash(self) -> str:
        """A stable hash of the schema and every user table's rows, in key order.

        Equal on replicas that applied the same instances. paxdb's own tables are left
        out: they are bookkeeping (the chain already compares the log).
        """
        digest = hashlib.sha256()
        cursor = self._judge.cursor()  # No authorizer: it needs BEGIN for one snapshot.
        cursor.execute("BEGIN")
        try:
            schema: list[Any] = cursor.execute(
                "SELECT type, name, tbl_name, sql FROM sqlite_schema "
                "WHERE name NOT LIKE '\\_paxdb\\_%' ESCAPE '\\' ORDER BY type, name"
            ).fetchall()
            digest.update(msgpack.packb(schema, use_bin_type=True))
            for kind, name, _, sql in schema:
                if kind == "table" and not (sql or "").upper().startswith("CREATE VIRTUAL"):
                    for row in cursor.execute(_ordered_select(self._judge, name)):
                        digest.update(msgpack.packb(row, use_bin_type=True))
            version = cursor.execute("PRAGMA user_version").fetchall()
            digest.update(msgpack.packb(version, use_bin_type=True))
        finally:
            cursor.execute("COMMIT")
        return digest.hexdigest()

    # Helpers.

    def _internal(self) -> _Internal:
        return _Internal(self._authorizer)

    def _run(self, sql: str, bindings: tuple[Any, ...] | None = None) -> list[Any]:
        """Run one of paxdb's own statements, cached under the secret tag."""
        assert self._authorizer.is_internal
        rows: list[Any] = self._apply.execute(sql + _INTERNAL_TAG, bindings).fetchall()
        return rows

    def _update_meta(self, instance: int, chain: int) -> None:
        self._run(
            "UPDATE _paxdb_meta SET applied_instance = ?, chain = ? WHERE applied_instance = ?",
            (instance, chain, instance - 1),
        )
        assert self._apply.changes() == 1, "meta row must advance by exactly one instance"

    def _dedupe_lookup(self, client_id: str) -> tuple[int, bytes] | None:
        with self._internal():
            rows = self._run(
                "SELECT seq, result FROM _paxdb_dedupe WHERE client_id = ?", (client_id,)
            )
        return (rows[0][0], rows[0][1]) if rows else None

    def _error_info(self, error: BaseException) -> ErrorInfo:
        """The result of a failed user statement; an authorizer denial names its reason.

        SQLite reports some denials as SQLITE_AUTH and others (functions) as SQLITE_ERROR,
        so the authorizer's own record, reset before each statement, decides.
        """
        info = error_info(error)
        if not self._authorizer.denial:
            return info
        message = f"not authorized: {self._authorizer.denial}"
        return ErrorInfo("NondeterministicStatement", message, info.code)

    def _rollback_quietly(self) -> None:
        if self._apply.in_transaction:
            with self._internal():
                self._run("ROLLBACK")

    def _halt(self, instance: int, error: BaseException) -> NoReturn:
        with contextlib.suppress(apsw.Error):  # The original failure is the one to report.
            self._rollback_quietly()
        raise errors.ReplicaHalted(
            f"applying instance {instance} failed for a reason outside the SQL "
            f"({type(error).__name__}: {error}); this replica stops: fix the disk or "
            "memory problem and restart it, it will re-apply from the log"
        ) from error


class _Internal:
    """Marks paxdb's own statements for the authorizer, for the duration of a block."""

    __slots__ = ("_authorizer", "_previous")

    def __init__(self, authorizer: Any) -> None:
        self._authorizer = authorizer
        self._previous = False

    def __enter__(self) -> None:
        self._previous = self._authorizer.is_internal
        self._authorizer.is_internal = True

    def __exit__(self, *exc: object) -> None:
        self._authorizer.is_internal = self._previous


def _decode(item: bytes | Request) -> Request | ErrorInfo:
    if isinstance(item, Request):
        return item
    try:
        return decode_request(item)
    except ValueError as error:
        return ErrorInfo("ProgrammingError", f"malformed request: {error}", 1)


def _dedupe_result(request: Request, stored: tuple[int, bytes]) -> RequestResult:
    seq, blob = stored
    if request.seq == seq:
        return decode_result(blob)
    return RequestResult(error=_superseded(request, seq))


def _superseded(request: Request, latest: int | None) -> ErrorInfo:
    return ErrorInfo(
        "OperationalError",
        f"request {request.seq} of client {request.client_id!r} was already applied and its "
        f"result is no longer kept (latest applied: {latest}); do not retry it",
        0,
    )


@functools.lru_cache(maxsize=4096)
def _first_word(sql: str) -> str:
    return (leading_words(sql, 1) or [""])[0]


def _refuse_writes(cursor: apsw.Cursor, sql: str, bindings: object) -> bool:
    """Exec tracer of the read path: stop before the first step of any writing statement."""
    return bool(cursor.is_readonly)


def _described_into(described: list[tuple[str, ...]], refuse_writes: bool = False) -> Any:
    """An exec tracer that records the column names before the first step, so a
    statement that returns no row (a SELECT, or RETURNING of nothing) still has them."""

    def trace(cursor: apsw.Cursor, sql: str, bindings: object) -> bool:
        described.append(_columns(cursor))
        return _refuse_writes(cursor, sql, bindings) if refuse_writes else True

    return trace


def _columns(cursor: apsw.Cursor) -> tuple[str, ...]:
    try:
        return tuple(column[0] for column in cursor.get_description())
    except apsw.ExecutionCompleteError:
        return ()


def _ordered_select(connection: apsw.Connection, table: str) -> str:
    """SELECT every row of `table` in a stable order: rowid, or the primary key."""
    quoted = '"' + table.replace('"', '""') + '"'
    info: list[Any] = connection.execute(f"PRAGMA table_info({quoted})").fetchall()
    keys = sorted((pk, name) for _, name, _, _, _, pk in info if pk)
    rowid = connection.execute(
        "SELECT 1 FROM pragma_table_list WHERE name = ? AND wr = 0", (table,)
    ).fetchall()
    if rowid:
        return f"SELECT * FROM {quoted} ORDER BY rowid"
    order = ", ".join('"' + name.replace('"', '""') + '"' for _, name in keys) or "1"
    return f"SELECT * FROM {quoted} ORDER BY {order}"
