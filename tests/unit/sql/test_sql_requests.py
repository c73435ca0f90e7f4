"""Request/result encoding (untrusted input) and the one SQLite-to-PEP-249 mapping."""

from __future__ import annotations

import apsw
import msgpack
import pytest

from paxdb import errors
from paxdb.sql.requests import (
    ErrorInfo,
    Request,
    RequestResult,
    Statement,
    StatementResult,
    decode_request,
    decode_result,
    encode_request,
    encode_result,
    error_class_name,
    error_info,
)


def test_request_round_trip() -> None:
    request = Request(
        "client-1",
        7,
        (
            Statement("INSERT INTO t VALUES (?, ?, ?, ?, ?)", (1, 2.5, "x", b"\x00", None)),
            Statement("UPDATE t SET a = :a", {"a": -(2**63)}),
            Statement("DELETE FROM t"),
        ),
    )
    assert decode_request(encode_request(request)) == request


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xc1",
        msgpack.packb([2, "c", 1, [["SELECT 1", None]]]),
        msgpack.packb([1, "", 1, [["SELECT 1", None]]]),
        msgpack.packb([1, "c" * 129, 1, [["SELECT 1", None]]]),
        msgpack.packb([1, "c", -1, [["SELECT 1", None]]]),
        msgpack.packb([1, "c", True, [["SELECT 1", None]]]),
        msgpack.packb([1, "c", 1, []]),
        msgpack.packb([1, "c", 1, [["SELECT 1"]]]),
        msgpack.packb([1, "c", 1, [[b"SELECT 1", None]]]),
        msgpack.packb([1, "c", 1, [["SELECT ?", [True]]]]),
        msgpack.packb([1, "c", 1, [["SELECT ?", [[1]]]]]),
        msgpack.packb([1, "c", 1, [["SELECT ?", {"": 1}]]]),
        msgpack.packb([1, "c", 1, [["SELECT ?", 5]]]),
        msgpack.packb({"v": 1}),
    ],
)
def test_malformed_requests_raise_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        decode_request(raw)


def test_result_round_trip() -> None:
    ok = RequestResult(
        results=(
            StatementResult(1, 5, ("a", "b"), ((1, b"x"), (None, 2.5))),
            StatementResult(-1, None),
        )
    )
    failed = RequestResult(error=ErrorInfo("IntegrityError", "UNIQUE constraint failed", 2067))
    assert decode_result(encode_result(ok)) == ok
    assert decode_result(encode_result(failed)) == failed
    assert encode_result(ok) == encode_result(decode_result(encode_result(ok)))


def test_malformed_result_raises_value_error() -> None:
    with pytest.raises(ValueError):
        decode_result(msgpack.packb([1, "maybe", []]))


@pytest.mark.parametrize(
    ("error", "name"),
    [
        (apsw.ConstraintError("UNIQUE constraint failed: t.a"), "IntegrityError"),
        (apsw.MismatchError("datatype mismatch"), "IntegrityError"),
        (apsw.SQLError("no such table: t"), "ProgrammingError"),
        (apsw.SQLError('near "x": syntax error'), "ProgrammingError"),
        (apsw.SQLError("cannot VACUUM from within a transaction"), "OperationalError"),
        (apsw.TooBigError("string or blob too big"), "DataError"),
        (apsw.BindingsError("wrong number"), "ProgrammingError"),
        (apsw.AuthError("not authorized"), "NondeterministicStatement"),
        (apsw.BusyError("database is locked"), "OperationalError"),
        (apsw.CorruptError("malformed"), "InternalError"),
        (TypeError("bad binding"), "ProgrammingError"),
        (OverflowError("int too big"), "DataError"),
    ],
)
def test_error_mapping(error: BaseException, name: str) -> None:
    assert error_class_name(error) == name


def test_error_info_builds_the_paxdb_exception() -> None:
    info = ErrorInfo("IntegrityError", "UNIQUE constraint failed: t.a", 2067)
    exception = info.to_exception()
    assert isinstance(exception, errors.IntegrityError)
    assert exception.sqlite_errorcode == 2067  # type: ignore[attr-defined]
    assert isinstance(
        ErrorInfo("NondeterministicStatement", "x").to_exception(), errors.NondeterministicStatement
    )


def test_error_info_carries_the_extended_code() -> None:
    connection = apsw.Connection(":memory:")
    connection.execute("CREATE TABLE t(a UNIQUE); INSERT INTO t VALUES (1)")
    with pytest.raises(apsw.ConstraintError) as caught:
        connection.execute("INSERT INTO t VALUES (1)")
    info = error_info(caught.value)
    assert info == ErrorInfo("IntegrityError", "UNIQUE constraint failed: t.a", 2067)
