"""Judging a statement with SQLite itself: compile it, record every action, run nothing.

Used for statements sqlglot cannot read faithfully (numbered parameters are handled
before sqlglot, but also `CREATE VIRTUAL TABLE`, exotic syntax, future SQLite syntax).
SQLite is the only parser that is right by definition, and its authorizer reports every
function and action a statement would use, including those of the triggers and views
it fires (measured: 4-10 us per statement).

How nothing runs: APSW calls the cursor's exec tracer after preparing each statement and
before its first step; the tracer records `is_readonly` and returns False, which aborts
execution (`apsw.ExecTraceAbort`). This is how `apsw.ext.query_info` works too.

The scratch connection knows no user tables, so compiling `INSERT INTO t ...` fails with
"no such table". Such a verdict is *deferred*: a WRITE whose enforcement is the apply
connection's authorizer (which sees the real schema). Callers that have the schema (the
state machine's judge connection) get a complete verdict from `judge_sql` instead.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import apsw

from paxdb.sql import policy
from paxdb.sql.authorizer import DDL_ACTIONS, action_reason
from paxdb.sql.verdict import Kind, Verdict, reject

# SQLite messages that mean the text itself is malformed, whatever the schema.
_SYNTAX_MARKERS = ("syntax error", "incomplete input", "unrecognized token")


@dataclass(slots=True)
class _Compiled:
    """What one compilation told us."""

    actions: list[tuple[int, str | None, str | None]] = field(default_factory=list)
    statements: list[tuple[str, bool]] = field(default_factory=list)  # (text, is_readonly)


def _compile(connection: apsw.Connection, sql: str) -> _Compiled:
    """Prepare every statement in `sql` on `connection`, execute none. May raise apsw errors."""
    compiled = _Compiled()

    def record(code: int, arg1: str | None, arg2: str | None, db: object, trig: object) -> int:
        compiled.actions.append((code, arg1, arg2))
        return apsw.SQLITE_OK

    def trace(cursor: apsw.Cursor, text: str, bindings: object) -> bool:
        compiled.statements.append((text, cursor.is_readonly))
        return False

    previous = connection.authorizer
    connection.authorizer = record
    try:
        remaining = sql
        while remaining.strip() and len(compiled.statements) < 2:
            cursor = connection.cursor()
            cursor.exec_trace = trace
            before = len(compiled.statements)
            try:
                cursor.execute(remaining, can_cache=False)
            except apsw.ExecTraceAbort:
                pass
            except apsw.BindingsError:
                pass  # Parameters are bound at apply; judging needs none.
            if len(compiled.statements) == before:
                break  # Only comments were left.
            remaining = remaining[len(compiled.statements[-1][0]) :]
    finally:
        connection.authorizer = previous
    return compiled


def judge_sql(connection: apsw.Connection, sql: str) -> Verdict:
    """Classify `sql` by compiling it on `connection` (scratch, or read-only with schema)."""
    try:
        compiled = _compile(connection, sql)
    except apsw.Error as error:
        message = str(error)
        if any(marker in message for marker in _SYNTAX_MARKERS):
            return reject(f"SQLite cannot parse the statement: {message}", sql, is_malformed=True)
        return Verdict(Kind.WRITE, f"checked on apply: {message}", sql[:80], is_deferred=True)
    if not compiled.statements:
        return reject("the text holds no SQL statement", sql, is_malformed=True)
    if len(compiled.statements) > 1:
        return reject(policy.MULTIPLE_REASON, sql)
    return _verdict_from_actions(compiled.actions, compiled.statements[0][1], sql)


def _verdict_from_actions(
    actions: list[tuple[int, str | None, str | None]], is_readonly: bool, sql: str
) -> Verdict:
    """Fold the recorded actions into a verdict; the first refused action names the reason."""
    needs_time = needs_random = is_ddl = False
    reason = ""
    for code, arg1, arg2 in actions:
        if code in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT):
            return reject(policy.TRANSACTION_REASON, sql, is_transaction_control=True)
        is_ddl = is_ddl or code in DDL_ACTIONS
        if code == apsw.SQLITE_FUNCTION:
            name = (arg2 or "").lower()
            needs_time = needs_time or name in policy.TIME_FUNCTIONS
            needs_random = needs_random or name in policy.RANDOM_FUNCTIONS
        # A read is judged twice: by read rules (refused anywhere if they fail) and by
        # write rules, whose reason then says why it may not go inside a write request.
        if is_readonly:
            refusal = action_reason(code, arg1, arg2, is_write=False)
            if refusal:
                return reject(refusal, sql)
        why = action_reason(code, arg1, arg2, is_write=True)
        reason = reason or why
    if is_readonly:
        fragment = sql[:80] if reason else ""
        return Verdict(Kind.READ, reason, fragment, needs_time, needs_random, is_ddl)
    if reason:
        return reject(reason, sql, needs_time=needs_time, needs_random=needs_random, is_ddl=is_ddl)
    return Verdict(Kind.WRITE, "", "", needs_time, needs_random, is_ddl)


_scratch = threading.local()


def scratch_connection() -> apsw.Connection:
    """This thread's empty in-memory connection for judging (APSW objects are per thread)."""
    connection: apsw.Connection | None = getattr(_scratch, "connection", None)
    if connection is None:
        connection = apsw.Connection(":memory:")
        _scratch.connection = connection
    return connection
