"""Requests and results of the SQL state machine, their msgpack encoding, and error mapping.

A `Request` is what one client asks to apply atomically: (client id, sequence number,
statements). Requests travel inside chosen values, so `decode_request` treats its input
as untrusted and raises ValueError on anything malformed. Results are stored in the
dedupe table (a retry gets the first result) and sent to clients, so their encoding is
canonical: the same result always encodes to the same bytes on every replica.

`error_class_name` is the one place where a SQLite (APSW) error becomes a PEP 249 class
(STYLE.md section 9); `ErrorInfo.to_exception` builds the matching `paxdb.errors` object.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import apsw
import msgpack  # type: ignore[import-untyped]

from paxdb import errors

ENCODING_VERSION = 1
CLIENT_ID_CHARS_MAX = 128  # A client id is a short opaque name (a UUID fits).
REQUEST_STATEMENTS_MAX = 4096  # Statements in one atomic request.
SEQ_MAX = 2**63 - 1  # Sequence numbers are SQLite integers in the dedupe table.

Param = int | float | str | bytes | None
Params = tuple[Param, ...] | dict[str, Param] | None


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement and its parameters (qmark/numbered tuple or named dict)."""

    sql: str
    params: Params = None


@dataclass(frozen=True, slots=True)
class Request:
    """Statements applied atomically; (client_id, seq) identifies it for exactly-once."""

    client_id: str
    seq: int
    statements: tuple[Statement, ...]


@dataclass(frozen=True, slots=True)
class StatementResult:
    """What one statement did. rowcount is -1 for statements that change no rows by design."""

    rowcount: int
    lastrowid: int | None
    columns: tuple[str, ...] = ()
    rows: tuple[tuple[Any, ...], ...] = ()


@dataclass(frozen=True, slots=True)
class ErrorInfo:
    """A deterministic error: PEP 249 class name, SQLite message, SQLite extended code."""

    class_name: str
    message: str
    code: int = 0

    def to_exception(self) -> errors.DatabaseError:
        """The paxdb.errors instance a client raises for this result."""
        if self.class_name == "NondeterministicStatement":
            return errors.NondeterministicStatement(self.message)
        cls = _ERROR_CLASSES.get(self.class_name, errors.DatabaseError)
        exception = cls(self.message)
        exception.sqlite_errorcode = self.code  # type: ignore[attr-defined]
        return exception


@dataclass(frozen=True, slots=True)
class RequestResult:
    """Either every statement's result, or the error that rolled the request back."""

    results: tuple[StatementResult, ...] = ()
    error: ErrorInfo | None = None

    def __post_init__(self) -> None:
        if self.error is not None:
            assert not self.results, "a failed request has no statement results"


_ERROR_CLASSES: dict[str, type[errors.DatabaseError]] = {
    cls.__name__: cls
    for cls in (
        errors.DatabaseError,
        errors.DataError,
        errors.OperationalError,
        errors.IntegrityError,
        errors.InternalError,
        errors.ProgrammingError,
        errors.NotSupportedError,
        errors.NondeterministicStatement,
        errors.NotMaster,
        errors.ProposalTimeout,
        errors.ProposalDropped,
    )
}

# Failures of the machine, not of the SQL: the replica must halt, never record a result.
ENVIRONMENTAL_ERRORS: tuple[type[BaseException], ...] = (
    apsw.IOError,
    apsw.FullError,
    apsw.CorruptError,
    apsw.NoMemError,
    apsw.BusyError,
    apsw.LockedError,
    apsw.CantOpenError,
    apsw.NotADBError,
    apsw.ProtocolError,
    apsw.ReadOnlyError,
    apsw.InternalError,
    apsw.MisuseError,
    MemoryError,
)

_SQLITE_ERROR = 1
_OPERATIONAL_SQL_MESSAGES = ("interrupted", "cannot ", "too many levels of trigger")


def error_class_name(error: BaseException) -> str:
    """The PEP 249 class for `error` (STYLE.md: the only such mapping in paxdb)."""
    if isinstance(error, apsw.AuthError):
        return "NondeterministicStatement"
    if isinstance(error, (apsw.ConstraintError, apsw.MismatchError)):
        return "IntegrityError"
    if isinstance(error, (apsw.TooBigError, OverflowError)):
        return "DataError"
    if isinstance(error, apsw.SQLError):
        message = str(error)
        if any(marker in message for marker in _OPERATIONAL_SQL_MESSAGES):
            return "OperationalError"
        return "ProgrammingError"  # PEP 249: syntax error, table not found or exists.
    if isinstance(error, (apsw.RangeError, apsw.BindingsError, TypeError, ValueError)):
        return "ProgrammingError"
    if isinstance(error, (apsw.CorruptError, apsw.InternalError, apsw.MisuseError)):
        return "InternalError"
    if isinstance(error, (apsw.Error, MemoryError)):
        return "OperationalError"
    return "DatabaseError"


def error_info(error: BaseException, message: str = "") -> ErrorInfo:
    """ErrorInfo for `error`; `message` overrides the text (e.g. an authorizer's reason)."""
    code = getattr(error, "extendedresult", None) or getattr(error, "result", None)
    return ErrorInfo(error_class_name(error), message or str(error), int(code or _SQLITE_ERROR))


def _check_param(value: object) -> Param:
    if value is None or type(value) in (str, bytes, float):
        return value  # type: ignore[return-value]
    if type(value) is int and -(2**63) <= value < 2**63:  # noqa: E721 - bool is not a param.
        return value
    raise ValueError(f"parameter of type {type(value).__name__} is not int/float/str/bytes/None")


def _check_params(raw: object) -> Params:
    if raw is None:
        return None
    if isinstance(raw, (list, tuple)):
        return tuple(_check_param(value) for value in raw)
    if isinstance(raw, dict):
        if not all(isinstance(key, str) and key for key in raw):
            raise ValueError("named parameters need non-empty string names")
        return {key: _check_param(value) for key, value in raw.items()}
    raise ValueError("parameters must be a list, a map or nil")


def encode_request(request: Request) -> bytes:
    """Canonical bytes of `request`; `decode_request` is its exact inverse."""
    statements = [
        [s.sql, list(s.params) if isinstance(s.params, tuple) else s.params]
        for s in request.statements
    ]
    data: bytes = msgpack.packb(
        [ENCODING_VERSION, request.client_id, request.seq, statements], use_bin_type=True
    )
    return data


def decode_request(data: bytes) -> Request:
    """Parse and validate untrusted bytes; raises ValueError if they are not a Request."""
    try:
        raw = msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    except Exception as error:  # msgpack raises several unrelated types.
        raise ValueError(f"request is not msgpack: {error}") from error
    if not isinstance(raw, list) or len(raw) != 4 or raw[0] != ENCODING_VERSION:
        raise ValueError("request is not [version 1, client_id, seq, statements]")
    _, client_id, seq, statements = raw
    if not isinstance(client_id, str) or not 0 < len(client_id) <= CLIENT_ID_CHARS_MAX:
        raise ValueError("client_id must be a non-empty string of at most 128 characters")
    if type(seq) is not int or not 0 <= seq <= SEQ_MAX:
        raise ValueError("seq must be an integer in [0, 2**63)")
    if not isinstance(statements, list) or not 0 < len(statements) <= REQUEST_STATEMENTS_MAX:
        raise ValueError("a request holds 1 to REQUEST_STATEMENTS_MAX statements")
    parsed: list[Statement] = []
    for item in statements:
        if not isinstance(item, list) or len(item) != 2 or not isinstance(item[0], str):
            raise ValueError("a statement is [sql, params]")
        parsed.append(Statement(item[0], _check_params(item[1])))
    return Request(client_id, seq, tuple(parsed))


def encode_result(result: RequestResult) -> bytes:
    """Canonical bytes of `result` (stored in the dedupe table, sent to clients)."""
    if result.error is not None:
        body: list[Any] = [
            ENCODING_VERSION,
            "error",
            [result.error.class_name, result.error.message, result.error.code],
        ]
    else:
        body = [
            ENCODING_VERSION,
            "ok",
            [
                [r.rowcount, r.lastrowid, list(r.columns), [list(row) for row in r.rows]]
                for r in result.results
            ],
        ]
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def decode_result(data: bytes) -> RequestResult:
    """Inverse of `encode_result`; raises ValueError on malformed bytes."""
    try:
        version, status, body = msgpack.unpackb(data, raw=False, strict_map_key=True)
        if version != ENCODING_VERSION:
            raise ValueError(f"result encoding version {version}")
        if status == "error":
            class_name, message, code = body
            return RequestResult(error=ErrorInfo(str(class_name), str(message), int(code)))
        if status != "ok":
            raise ValueError(f"result status {status!r}")
        results = tuple(
            StatementResult(
                int(rowcount), lastrowid, tuple(columns), tuple(tuple(row) for row in rows)
            )
            for rowcount, lastrowid, columns, rows in body
        )
        return RequestResult(results=results)
    except (TypeError, ValueError, msgpack.UnpackException) as error:
        raise ValueError(f"malformed result: {error}") from error
