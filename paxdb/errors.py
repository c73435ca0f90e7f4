"""The exception hierarchy of paxdb (STYLE.md section 9).

The PEP 249 classes live here so that the driver, the node and the SQL state machine
raise the same types. Every message says what happened and what to do next.
`AssertionError` is never part of this tree: it means a bug in paxdb.
"""

from __future__ import annotations


class PaxdbError(Exception):
    """Root of every error paxdb raises on purpose."""


class Warning(Exception):  # noqa: A001 - PEP 249 requires this name.
    """PEP 249 Warning; not a subclass of Error."""


class Error(PaxdbError):
    """PEP 249 base class of all database errors."""


class InterfaceError(Error):
    """The driver itself was misused (for example, a closed connection)."""


class DatabaseError(Error):
    """An error related to the database."""


class DataError(DatabaseError):
    """A value did not fit (for example, too large)."""


class OperationalError(DatabaseError):
    """The cluster could not do the work right now: no master, timeout, lost node."""


class IntegrityError(DatabaseError):
    """A constraint failed (UNIQUE, NOT NULL, FOREIGN KEY, CHECK)."""


class InternalError(DatabaseError):
    """The database hit an internal inconsistency."""


class ProgrammingError(DatabaseError):
    """The SQL or its parameters are wrong, or the API was used out of order."""


class NotSupportedError(DatabaseError):
    """The feature is not available in paxdb."""


class NondeterministicStatement(ProgrammingError):
    """A write could give different results on different replicas, so it was refused."""

    def __init__(self, reason: str, fragment: str = "") -> None:
        self.reason = reason
        self.fragment = fragment
        where = f" (in {fragment!r})" if fragment else ""
        super().__init__(f"{reason}{where}")


class NotMaster(OperationalError):
    """This node is not the master of the group; retry at `master_hint` if known."""

    def __init__(self, message: str = "", master_hint: int | None = None) -> None:
        self.master_hint = master_hint
        if not message:
            hint = f"retry at node {master_hint}" if master_hint is not None else "retry later"
            message = f"not master; {hint}"
        super().__init__(message)


class ProposalTimeout(OperationalError):
    """A proposal was not chosen in time; it may still be chosen later."""


class ProposalDropped(OperationalError):
    """A proposal was certainly not chosen (lost mastership, queue full); safe to retry."""


class UsageError(PaxdbError):
    """Local misuse of the core or runtime API (a bug in the caller)."""


class RemoteProtocolError(PaxdbError):
    """A peer or client sent bytes that do not decode; the connection is dropped."""


class StorageError(PaxdbError):
    """The disk failed us; the replica halts rather than continue on bad state."""


class CorruptionError(PaxdbError):
    """A checksum or CRC chain did not match; the replica halts and serves nothing past it."""


class ReplicaHalted(PaxdbError):
    """An environmental failure while applying; the replica stops and never skips."""
