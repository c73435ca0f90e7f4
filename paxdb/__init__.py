"""paxdb: a replicated embedded SQL database (SQLite replicas agreed on by multi-Paxos)."""

from __future__ import annotations

import logging

from paxdb.client import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Connection,
    Cursor,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)
from paxdb.errors import (
    CorruptionError,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NondeterministicStatement,
    NotMaster,
    NotSupportedError,
    OperationalError,
    PaxdbError,
    ProgrammingError,
    Warning,
)

__version__ = "0.1.0"

# A library logs only where the application asks (`paxdb serve` configures logging).
logging.getLogger("paxdb").addHandler(logging.NullHandler())


def __getattr__(name: str) -> object:
    """`paxdb.Node` is imported on first use: a client-only program never loads the node."""
    if name == "Node":
        from paxdb.node.embedded import Node

        return Node
    raise AttributeError(f"module 'paxdb' has no attribute {name!r}")


__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Connection",
    "Cursor",
    "Date",
    "DateFromTicks",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "apilevel",
    "connect",
    "paramstyle",
    "threadsafety",
    "CorruptionError",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NondeterministicStatement",
    "Node",
    "NotMaster",
    "NotSupportedError",
    "OperationalError",
    "PaxdbError",
    "ProgrammingError",
    "Warning",
    "__version__",
]
