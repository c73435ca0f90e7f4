"""PEP 249 type objects and constructors, and the client-side check of parameters.

Only int, float, str, bytes and None travel in the client protocol (they are what
SQLite stores). Everything else is converted here, before a request is built, so that
a bad parameter fails at the call that passed it, with a message naming its position:

- bool becomes int (True -> 1), as SQLite has no boolean type.
- bytearray and memoryview become bytes.
- datetime.datetime becomes "YYYY-MM-DD HH:MM:SS[.ffffff][+HH:MM]", datetime.date
  "YYYY-MM-DD" and datetime.time "HH:MM:SS[.ffffff]": the ISO strings of sqlite3's default
  adapters, which SQLite's own date functions read.
- Subclasses of int, float and str (IntEnum, StrEnum, ...) become the plain type.
- Anything else (Decimal, list, dict, ...) raises ProgrammingError: a silent str() would
  store a value that does not round-trip.

Parameters are positional (a sequence, for `?` and `?NNN`) or named (a mapping, for
`:name`, `@name`, `$name`). They are never substituted into the SQL text: SQLite binds
them on the node.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from paxdb.errors import DataError, ProgrammingError
from paxdb.sql.requests import Param, Params

INTEGER_MIN = -(2**63)  # SQLite INTEGER is a signed 64-bit value.
INTEGER_MAX = 2**63 - 1
PARAMS_MAX = 32_766  # SQLite's default SQLITE_MAX_VARIABLE_NUMBER.

# PEP 249 constructors.
Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:  # noqa: N802 - PEP 249 name.
    """The local date of `ticks` seconds since the epoch."""
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:  # noqa: N802 - PEP 249 name.
    """The local time of day of `ticks` seconds since the epoch."""
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:  # noqa: N802 - PEP 249 name.
    """The local date and time of `ticks` seconds since the epoch."""
    return Timestamp(*time.localtime(ticks)[:6])


class DBAPITypeObject:
    """A PEP 249 type object: equal to each of the SQLite declared types it covers.

    paxdb's `description` carries no type code (None, like sqlite3), because SQLite
    values are typed per value, not per column; these objects still compare equal to
    declared type names ("INTEGER", "TEXT", ...) and to the Python types they map to,
    so code written against other drivers keeps working.
    """

    __slots__ = ("name", "values")

    def __init__(self, name: str, *values: object) -> None:
        self.name = name
        self.values = frozenset(v.upper() if isinstance(v, str) else v for v in values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, DBAPITypeObject):
            return self is other
        if isinstance(other, str):
            other = other.upper()
        try:
            return other in self.values
        except TypeError:  # Unhashable.
            return False

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<paxdb type {self.name}>"


STRING = DBAPITypeObject("STRING", "TEXT", "CHAR", "VARCHAR", "CLOB", "NCHAR", str)
BINARY = DBAPITypeObject("BINARY", "BLOB", bytes)
NUMBER = DBAPITypeObject(
    "NUMBER", "INTEGER", "INT", "REAL", "FLOAT", "DOUBLE", "NUMERIC", "DECIMAL", int, float
)
DATETIME = DBAPITypeObject(
    "DATETIME", "DATE", "TIME", "TIMESTAMP", "DATETIME", Date, Time, Timestamp
)
ROWID = DBAPITypeObject("ROWID", "ROWID", "INTEGER PRIMARY KEY")


# Parameter checking. The common case (int, str, float, bytes, None) is one dict lookup.


def _int(value: Any) -> Param:
    number = int(value)
    if not INTEGER_MIN <= number <= INTEGER_MAX:
        raise DataError(f"integer {number} does not fit SQLite's 64-bit INTEGER")
    return number


def _datetime(value: datetime.datetime) -> Param:
    return value.isoformat(" ")


def _isoformat(value: datetime.date | datetime.time) -> Param:
    return value.isoformat()


def _same(value: Any) -> Param:
    return value  # type: ignore[no-any-return]


_ADAPTERS: dict[type, Callable[[Any], Param]] = {
    int: _int,
    str: _same,
    float: _same,
    bytes: _same,
    type(None): _same,
    bool: int,
    bytearray: bytes,
    memoryview: bytes,
    datetime.datetime: _datetime,
    datetime.date: _isoformat,
    datetime.time: _isoformat,
}
# Checked in order for subclasses: datetime before date (datetime is a date), bool before int.
_SUBCLASS_ADAPTERS: tuple[tuple[type, Callable[[Any], Param]], ...] = (
    (bool, int),
    (int, _int),
    (float, float),
    (str, str.__str__),  # The string's own value: str() of a (str, Enum) is its name.
    (bytes, bytes),
    (datetime.datetime, _datetime),
    (datetime.date, _isoformat),
    (datetime.time, _isoformat),
)


def adapt_value(value: object, where: object) -> Param:
    """`value` as a protocol parameter; `where` (index or name) goes in the error message."""
    adapter = _ADAPTERS.get(type(value))
    if adapter is None:
        for cls, candidate in _SUBCLASS_ADAPTERS:
            if isinstance(value, cls):
                adapter = candidate
                break
        else:
            raise ProgrammingError(
                f"parameter {where!r} is of unsupported type {type(value).__name__}: "
                "pass int, float, str, bytes, None, bool or a date/time (convert it first)"
            )
    return adapter(value)


def adapt_params(parameters: object) -> Params:
    """Positional or named parameters, checked and converted (see the module docstring)."""
    if parameters is None:
        return None
    if isinstance(parameters, Mapping):
        if len(parameters) > PARAMS_MAX:
            raise ProgrammingError(f"{len(parameters)} parameters; at most {PARAMS_MAX}")
        named: dict[str, Param] = {}
        for key, value in parameters.items():
            if not isinstance(key, str) or not key:
                raise ProgrammingError(f"named parameter {key!r} needs a non-empty str name")
            named[key] = adapt_value(value, key)
        return named
    if isinstance(parameters, str | bytes | bytearray) or not isinstance(parameters, Sequence):
        raise ProgrammingError(
            f"parameters must be a sequence (for ?) or a mapping (for :name), "
            f"not {type(parameters).__name__}"
        )
    if len(parameters) > PARAMS_MAX:
        raise ProgrammingError(f"{len(parameters)} parameters; at most {PARAMS_MAX}")
    return tuple([adapt_value(value, index) for index, value in enumerate(parameters)])
