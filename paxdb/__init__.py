"""paxdb: a replicated embedded SQL database (SQLite replicas agreed on by multi-Paxos)."""

from __future__ import annotations

from paxdb.errors import (
    CorruptionError,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotMaster,
    NotSupportedError,
    OperationalError,
    PaxdbError,
    ProgrammingError,
    Warning,
)

__version__ = "0.1.0"

__all__ = [
    "CorruptionError",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NotMaster",
    "NotSupportedError",
    "OperationalError",
    "PaxdbError",
    "ProgrammingError",
    "Warning",
    "__version__",
]
