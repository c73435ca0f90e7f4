"""PEP 249 module interface: globals, exceptions, type objects, constructors, parameters."""

from __future__ import annotations

import datetime
import enum
import time
from decimal import Decimal

import pytest

import paxdb.client as driver
from paxdb import errors
from paxdb.client.dbtypes import adapt_params

pytestmark = pytest.mark.timeout(30)

EXCEPTIONS = (
    "Warning",
    "Error",
    "InterfaceError",
    "DatabaseError",
    "DataError",
    "OperationalError",
    "IntegrityError",
    "InternalError",
    "ProgrammingError",
    "NotSupportedError",
)


def test_module_globals() -> None:
    assert driver.apilevel == "2.0"
    assert driver.threadsafety == 1
    assert driver.paramstyle == "qmark"
    assert callable(driver.connect)


def test_public_names_resolve() -> None:
    for name in driver.__all__:
        assert hasattr(driver, name), name


@pytest.mark.parametrize("name", EXCEPTIONS)
def test_exceptions_are_paxdb_errors_and_connection_attributes(name: str) -> None:
    cls = getattr(driver, name)
    assert cls is getattr(errors, name)
    assert getattr(driver.Connection, name) is cls
    assert issubclass(cls, Exception)


def test_exception_hierarchy() -> None:
    assert not issubclass(driver.Warning, driver.Error)
    assert issubclass(driver.InterfaceError, driver.Error)
    assert issubclass(driver.DatabaseError, driver.Error)
    for name in (
        "DataError",
        "OperationalError",
        "IntegrityError",
        "InternalError",
        "ProgrammingError",
        "NotSupportedError",
    ):
        assert issubclass(getattr(driver, name), driver.DatabaseError)
    assert issubclass(driver.NotMaster, driver.OperationalError)
    assert issubclass(driver.Unavailable, driver.OperationalError)
    assert issubclass(driver.NondeterministicStatement, driver.ProgrammingError)


def test_constructors() -> None:
    assert driver.Date(2024, 2, 29) == datetime.date(2024, 2, 29)
    assert driver.Time(13, 14, 15) == datetime.time(13, 14, 15)
    assert driver.Timestamp(2024, 2, 29, 13, 14, 15) == datetime.datetime(2024, 2, 29, 13, 14, 15)
    assert driver.Binary(b"\x00\x01") == b"\x00\x01"
    ticks = time.mktime((2024, 2, 29, 13, 14, 15, 0, 0, -1))
    assert driver.DateFromTicks(ticks) == datetime.date(2024, 2, 29)
    assert driver.TimeFromTicks(ticks) == datetime.time(13, 14, 15)
    assert driver.TimestampFromTicks(ticks) == datetime.datetime(2024, 2, 29, 13, 14, 15)


def test_type_objects() -> None:
    assert driver.STRING == "TEXT"
    assert driver.STRING == "varchar"
    text_type: type = str
    assert text_type == driver.STRING  # type.__eq__ defers to the type object.
    assert driver.BINARY == "BLOB"
    assert driver.NUMBER == "INTEGER"
    real_type: type = float
    assert real_type == driver.NUMBER
    assert driver.DATETIME == "TIMESTAMP"
    assert driver.ROWID == "ROWID"
    assert driver.STRING != "BLOB"
    assert driver.NUMBER != driver.STRING
    assert driver.STRING != [1]  # Unhashable: simply unequal.
    assert len({driver.STRING, driver.BINARY, driver.NUMBER, driver.DATETIME, driver.ROWID}) == 5


class Color(enum.IntEnum):
    RED = 1


class Name(str, enum.Enum):  # noqa: UP042 - str() of this kind of enum is its name.
    ADA = "ada"


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        (None, None),
        (7, 7),
        (-(2**63), -(2**63)),
        (2.5, 2.5),
        ("x", "x"),
        (b"\x00", b"\x00"),
        (True, 1),
        (False, 0),
        (bytearray(b"ab"), b"ab"),
        (memoryview(b"cd"), b"cd"),
        (datetime.date(2024, 2, 29), "2024-02-29"),
        (datetime.datetime(2024, 2, 29, 13, 14, 15), "2024-02-29 13:14:15"),
        (datetime.datetime(2024, 2, 29, 13, 14, 15, 5), "2024-02-29 13:14:15.000005"),
        (
            datetime.datetime(2024, 2, 29, 13, 14, 15, tzinfo=datetime.UTC),
            "2024-02-29 13:14:15+00:00",
        ),
        (datetime.time(13, 14, 15), "13:14:15"),
        (Color.RED, 1),
        (Name.ADA, "ada"),
    ],
)
def test_parameters_are_converted_to_protocol_types(value: object, sent: object) -> None:
    (converted,) = adapt_params((value,))  # type: ignore[misc]
    assert converted == sent
    assert type(converted) in (type(None), int, float, str, bytes)


@pytest.mark.parametrize("value", [Decimal("1.5"), [1], {"a": 1}, object(), 1 + 2j])
def test_unsupported_parameter_types_raise_programming_error(value: object) -> None:
    with pytest.raises(driver.ProgrammingError, match="parameter 0 is of unsupported type"):
        adapt_params([value])
    with pytest.raises(driver.ProgrammingError, match="parameter 'x'"):
        adapt_params({"x": value})


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1])
def test_integers_outside_64_bits_raise_data_error(value: int) -> None:
    with pytest.raises(driver.DataError, match="64-bit"):
        adapt_params([value])


@pytest.mark.parametrize("parameters", ["abc", b"abc", 5, {1: 2}, {"": 1}])
def test_bad_parameter_containers(parameters: object) -> None:
    with pytest.raises(driver.ProgrammingError):
        adapt_params(parameters)


def test_parameter_containers() -> None:
    assert adapt_params(None) is None
    assert adapt_params([1, "a"]) == (1, "a")
    assert adapt_params((1,)) == (1,)
    assert adapt_params({"a": True}) == {"a": 1}
