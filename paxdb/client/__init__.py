"""paxdb.client: the DB-API 2.0 driver (see paxdb/client/dbapi.py) and the client protocol.

    import paxdb.client
    conn = paxdb.client.connect("paxdb://127.0.0.1:8001,127.0.0.1:8002/main")

Everything in `__all__` is public; the modules' other names are internal.
"""

from __future__ import annotations

from paxdb.client.cursor import Cursor
from paxdb.client.dbapi import (
    Connection,
    apilevel,
    connect,
    paramstyle,
    threadsafety,
)
from paxdb.client.dbtypes import (
    BINARY,
    DATETIME,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    Date,
    DateFromTicks,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
)
from paxdb.client.protocol import Consistency
from paxdb.client.transport import Unavailable
from paxdb.client.url import Target, parse_url
from paxdb.errors import (
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
    ProgrammingError,
    ProposalDropped,
    ProposalTimeout,
    Warning,
)

__all__ = [
    "BINARY",
    "DATETIME",
    "NUMBER",
    "ROWID",
    "STRING",
    "Binary",
    "Connection",
    "Consistency",
    "Cursor",
    "DataError",
    "DatabaseError",
    "Date",
    "DateFromTicks",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "NondeterministicStatement",
    "NotMaster",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "ProposalDropped",
    "ProposalTimeout",
    "Target",
    "Time",
    "TimeFromTicks",
    "Timestamp",
    "TimestampFromTicks",
    "Unavailable",
    "Warning",
    "apilevel",
    "connect",
    "paramstyle",
    "parse_url",
    "threadsafety",
]
