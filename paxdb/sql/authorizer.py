"""SQLite authorizers: the apply-side half of "validated on propose, enforced on apply".

SQLite calls an authorizer while it *compiles* a statement, once per action (read a
column, call a function, run a PRAGMA, ATTACH, ...), including the actions of triggers
and views the statement fires. `action_reason` turns one action into a refusal reason
using the same lists as the proposer's check (`policy.py`); both the scratch-connection
judge and the apply connection use it, so they cannot disagree.

A denial on the apply connection makes SQLite raise `apsw.AuthError` before anything
runs. Every replica compiles the same statement against the same schema, so every
replica denies it identically; the state machine turns that into an error *result*
(a ProgrammingError carrying `ApplyAuthorizer.denial`), never a halt.

Invariant: statements the state machine itself runs (SAVEPOINT, meta and dedupe updates)
are compiled with `is_internal` set, and their text carries a per-process secret tag
(`statemachine._INTERNAL_TAG`), so a user statement can never find, in APSW's statement
cache, a plan that was compiled with the checks off.
"""

from __future__ import annotations

import apsw

from paxdb.sql import policy

# Tables whose names start with this belong to paxdb; users may read but never change them.
RESERVED_TABLE_PREFIX = "_paxdb_"

_TEMP_ACTIONS = frozenset(
    {
        apsw.SQLITE_CREATE_TEMP_INDEX,
        apsw.SQLITE_CREATE_TEMP_TABLE,
        apsw.SQLITE_CREATE_TEMP_TRIGGER,
        apsw.SQLITE_CREATE_TEMP_VIEW,
        apsw.SQLITE_DROP_TEMP_INDEX,
        apsw.SQLITE_DROP_TEMP_TABLE,
        apsw.SQLITE_DROP_TEMP_TRIGGER,
        apsw.SQLITE_DROP_TEMP_VIEW,
    }
)
_TABLE_CHANGE_ACTIONS = frozenset(
    {
        apsw.SQLITE_INSERT,
        apsw.SQLITE_UPDATE,
        apsw.SQLITE_DELETE,
        apsw.SQLITE_CREATE_TABLE,
        apsw.SQLITE_DROP_TABLE,
        apsw.SQLITE_CREATE_INDEX,
        apsw.SQLITE_CREATE_TRIGGER,
        apsw.SQLITE_ALTER_TABLE,
    }
)
DDL_ACTIONS = frozenset(
    {
        apsw.SQLITE_CREATE_INDEX,
        apsw.SQLITE_CREATE_TABLE,
        apsw.SQLITE_CREATE_TRIGGER,
        apsw.SQLITE_CREATE_VIEW,
        apsw.SQLITE_CREATE_VTABLE,
        apsw.SQLITE_DROP_INDEX,
        apsw.SQLITE_DROP_TABLE,
        apsw.SQLITE_DROP_TRIGGER,
        apsw.SQLITE_DROP_VIEW,
        apsw.SQLITE_DROP_VTABLE,
        apsw.SQLITE_ALTER_TABLE,
    }
)


def action_reason(code: int, arg1: str | None, arg2: str | None, *, is_write: bool) -> str:
    """Why SQLite action `code` is refused in this context, or "" if it is allowed.

    Argument meanings follow https://sqlite.org/c3ref/c_alter_table.html.
    """
    if code == apsw.SQLITE_FUNCTION:
        return policy.function_reason(arg2 or "", internal_ok=True) if is_write else ""
    if code == apsw.SQLITE_PRAGMA and is_write and arg1 == "data_version" and arg2 is None:
        return ""  # FTS5 reads it internally to refresh its config cache; result-invariant.
    if code == apsw.SQLITE_PRAGMA:
        return policy.pragma_reason(arg1 or "", arg2 is not None, is_write=is_write)
    if code in (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH):
        return policy.ATTACH_REASON
    if code in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT):
        return policy.TRANSACTION_REASON
    if code in _TEMP_ACTIONS:
        return policy.TEMP_REASON
    if code == apsw.SQLITE_CREATE_VTABLE:
        return policy.vtable_reason(arg2 or "")
    if code == apsw.SQLITE_READ and is_write:
        reason = policy.table_reason(arg1 or "")
        if reason:
            return reason
    table = (arg2 if code in (apsw.SQLITE_CREATE_INDEX, apsw.SQLITE_ALTER_TABLE) else arg1) or ""
    if code in _TABLE_CHANGE_ACTIONS and table.lower().startswith(RESERVED_TABLE_PREFIX):
        return f"table {table} belongs to paxdb and may only be read"
    return ""


class ApplyAuthorizer:
    """The authorizer of the apply connection; remembers why it last denied.

    `is_internal` is toggled by the state machine around its own statements only.
    """

    __slots__ = ("is_internal", "denial")

    def __init__(self) -> None:
        self.is_internal = False
        self.denial = ""

    def __call__(
        self, code: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
    ) -> int:
        if self.is_internal:
            return apsw.SQLITE_OK
        reason = action_reason(code, arg1, arg2, is_write=True)
        if not reason:
            return apsw.SQLITE_OK
        self.denial = f"{reason} (in trigger or view {trigger})" if trigger else reason
        return apsw.SQLITE_DENY


class ReadAuthorizer:
    """The authorizer of the read-only connection: reads may not reach outside the file."""

    __slots__ = ("denial",)

    def __init__(self) -> None:
        self.denial = ""

    def __call__(
        self, code: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None
    ) -> int:
        reason = action_reason(code, arg1, arg2, is_write=False)
        if not reason:
            return apsw.SQLITE_OK
        self.denial = reason
        return apsw.SQLITE_DENY
