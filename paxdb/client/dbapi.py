"""paxdb's DB-API 2.0 (PEP 249) driver.

    import paxdb.client as paxdb
    conn = paxdb.connect("paxdb://127.0.0.1:8001,127.0.0.1:8002/main")
    conn.execute("INSERT INTO t(name) VALUES (?)", ("ada",))
    rows = conn.execute("SELECT * FROM t WHERE name = :name", {"name": "ada"}).fetchall()

Connecting. `connect(url)` takes the URL of DESIGN.md
(`paxdb://HOST:PORT[,HOST:PORT...]/DATABASE?consistency=...&timeout=SECONDS`);
`timeout=`, `consistency=` and `autocommit=` override the URL's options.
`connect(node=node, database="main")` connects to an embedded, in-process Node: the
driver calls `node.client_address()` ("host:port" of the node's client port) and
connects there like to any other node. No request is sent by `connect()` itself; the
first statement finds a node that answers (`status()` checks reachability at once).

Parameters are `?` (a sequence) or `:name` (a mapping). They travel apart from the SQL
text and are bound by SQLite on the node; only int, float, str, bytes and None travel,
so bool becomes int and date/time values become ISO strings (see dbtypes.py).

Autocommit (the default). Each write is its own replicated request, applied on every
replica before `execute()` returns, with its real `rowcount`, `lastrowid` and RETURNING
rows. `executemany()` sends all its parameter sets as ONE atomic request.

Transactions. With `conn.autocommit = False`, after an explicit `BEGIN` (or
`SAVEPOINT`), or inside `with conn:`, writes are buffered in the driver and sent by
`commit()` as ONE request that applies wholly on every replica or not at all;
`rollback()` discards them. While a write is buffered:
- its cursor has `rowcount` -1, `lastrowid` None and no result set (RETURNING rows
  included: fetching raises ProgrammingError saying the write is buffered);
- reads inside the transaction see the committed state of the database, NOT the
  buffered writes (they are sent at once, as reads);
- after `commit()`, those cursors are not updated retroactively.
`with conn:` commits on success and rolls back on an exception. `BEGIN`, `COMMIT`,
`END`, `ROLLBACK`, `SAVEPOINT`, `RELEASE` and `ROLLBACK TO` passed to `execute()` are
handled by the driver and never sent (savepoints mark positions in the buffer).
Which statements are buffered is decided by the first keyword (see classify.py).

Consistency of reads: `local`, `master` (default) or `linearizable`, per connection
(`conn.consistency`) or per call (`cursor.execute(sql, params, consistency="local")`).
Read-your-writes: the connection remembers, per database, the highest instance its
writes were applied at and sends it with every read, so even a `local` read waits
(bounded, on the node) until that replica has applied it.

Exactly once. Each Connection has a random client id; every request that may write
carries (client id, sequence number). A request that got no answer (refused, timeout,
broken connection, NotMaster, ProposalTimeout...) is retried, on the hinted master or
the next node, with the SAME sequence number, so a node never applies it twice and a
retry gets the first result. When no node answers within the timeout, `Unavailable`
(an OperationalError) names what was tried; a write's outcome is then unknown. After
`commit()` raises Unavailable the transaction stays open: `commit()` again retries it
safely, `rollback()` abandons it; adding writes first is refused.

Threads: `threadsafety = 1`: share the module, not a connection or its cursors.
"""

from __future__ import annotations

import uuid
from types import TracebackType
from typing import Any

from paxdb import errors
from paxdb.client import protocol
from paxdb.client.classify import Control
from paxdb.client.cursor import Cursor
from paxdb.client.protocol import Consistency, ExecuteReply, ExecuteRequest, StatusReply
from paxdb.client.transport import Cluster, Unavailable
from paxdb.client.url import (
    Target,
    check_consistency,
    check_database,
    check_timeout,
    parse_address,
    parse_url,
)
from paxdb.errors import InterfaceError, OperationalError, ProgrammingError
from paxdb.sql.requests import REQUEST_STATEMENTS_MAX, SEQ_MAX, Statement, StatementResult

apilevel = "2.0"
threadsafety = 1
paramstyle = "qmark"

DATABASE_DEFAULT = "main"  # The database of connect(node=...) when none is named.


class Connection:
    """A PEP 249 connection to a paxdb cluster. Create it with `connect()`."""

    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError

    def __init__(self, target: Target, *, autocommit: bool = True) -> None:
        self._cluster = Cluster(target.addresses, target.timeout_s)
        self._database = target.database
        self._consistency = target.consistency
        self._autocommit = bool(autocommit)
        self._closed = False
        self._client_id = uuid.uuid4().hex
        self._seq = 0  # The last sequence number allocated; 0 means "not a write".
        self._min_instance: dict[str, int] = {}  # Per database: highest instance written.
        # The transaction: buffered writes, explicitly begun?, savepoints (name, position).
        self._explicit = False
        self._buffer: list[Statement] = []
        self._buffer_seq: int | None = None  # Allocated at the first commit() attempt.
        self._commit_in_doubt = False  # The last commit() got no answer.
        self._savepoints: list[tuple[str, int]] = []
        self._savepoint_began = False

    # Properties.

    @property
    def database(self) -> str:
        """The database (group) this connection's statements run in; see `use()`."""
        return self._database

    @property
    def addresses(self) -> tuple[str, ...]:
        """The node addresses this connection may use, in URL order."""
        return self._cluster.addresses

    @property
    def timeout(self) -> float:
        """Seconds one request may take, retries included."""
        return self._cluster.timeout_s

    @property
    def client_id(self) -> str:
        """The random id that, with a sequence number, makes every write exactly-once."""
        return self._client_id

    @property
    def consistency(self) -> str:
        """The default read consistency: "local", "master" or "linearizable"."""
        return self._consistency.value

    @consistency.setter
    def consistency(self, value: str) -> None:
        self._check_open()
        self._consistency = check_consistency(value)

    @property
    def autocommit(self) -> bool:
        """True: each write is its own request. False: writes wait for `commit()`."""
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._check_open()
        if not isinstance(value, bool):
            raise ProgrammingError(f"autocommit must be True or False, not {value!r}")
        if value and not self._autocommit:
            self.commit()  # As sqlite3 does: turning autocommit on commits what is pending.
        self._autocommit = value

    @property
    def in_transaction(self) -> bool:
        """True when writes are buffered until `commit()` rather than sent at once."""
        return self._explicit or not self._autocommit

    @property
    def closed(self) -> bool:
        return self._closed

    # PEP 249 methods.

    def cursor(self) -> Cursor:
        self._check_open()
        return Cursor(self)

    def commit(self) -> None:
        """Send the buffered writes as one atomic request (nothing to do if none).

        On a result error (IntegrityError, ...) nothing was applied and the transaction
        is over. On Unavailable the outcome is unknown and the transaction stays open:
        call commit() again (same sequence number: never applied twice) or rollback().
        """
        self._check_open()
        if self._buffer:
            if self._buffer_seq is None:
                self._buffer_seq = self._next_seq()
            try:
                self._send(tuple(self._buffer), True, self._consistency, self._buffer_seq, 0)
            except Unavailable:
                self._commit_in_doubt = True
                raise
            except errors.Error:
                self._end_transaction()
                raise
        self._end_transaction()

    def rollback(self) -> None:
        """Discard the buffered writes and end the transaction."""
        self._check_open()
        self._end_transaction()

    def close(self) -> None:
        """Discard buffered writes (PEP 249: closing rolls back) and close the sockets."""
        if self._closed:
            return
        self._end_transaction()
        self._cluster.close()
        self._closed = True

    def __enter__(self) -> Connection:
        """Start buffering writes; `__exit__` commits them, or rolls back on an exception."""
        self._check_open()
        self._explicit = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Commit, or roll back if the block raised or the commit failed. (If the commit
        raised Unavailable, the writes may have been applied all the same.)"""
        if self._closed:
            return
        if exc_type is not None:
            self.rollback()
            return
        try:
            self.commit()
        except BaseException:
            self.rollback()
            raise

    # Conveniences (as in sqlite3) and paxdb extensions.

    def execute(
        self, operation: str, parameters: Any = None, *, consistency: str | None = None
    ) -> Cursor:
        """A new cursor's `execute()`; returns the cursor."""
        return self.cursor().execute(operation, parameters, consistency=consistency)

    def executemany(self, operation: str, seq_of_parameters: Any) -> Cursor:
        """A new cursor's `executemany()`; returns the cursor."""
        return self.cursor().executemany(operation, seq_of_parameters)

    def use(self, database: str) -> None:
        """Run later statements in `database` (the shell's `.open NAME`)."""
        self._check_open()
        name = check_database(database)
        if self._buffer:
            raise ProgrammingError(
                f"{len(self._buffer)} buffered writes belong to database {self._database!r}: "
                "commit() or rollback() before use()"
            )
        self._database = name

    def status(self) -> dict[str, Any]:
        """The status map of the first node that answers (the shell's `.status`)."""
        self._check_open()
        reply = self._cluster.call(
            lambda request_id: protocol.encode(protocol.StatusRequest(request_id)),
            to_master=False,
            is_write=False,
        )
        if not isinstance(reply, StatusReply):
            raise InterfaceError(f"node answered a status request with {type(reply).__name__}")
        return dict(reply.status)

    # Internals used by Cursor.

    def _check_open(self) -> None:
        if self._closed:
            raise ProgrammingError("cannot operate on a closed connection")

    def _next_seq(self) -> int:
        assert self._seq < SEQ_MAX, "sequence numbers exhausted"
        self._seq += 1
        return self._seq

    def _request(
        self, statements: tuple[Statement, ...], write: bool | None, consistency: Consistency
    ) -> tuple[StatementResult, ...]:
        """Send statements now: a write (or maybe-write) gets a new sequence number, a
        read (or maybe-read) carries the read-your-writes floor."""
        seq = 0 if write is False else self._next_seq()
        min_instance = 0 if write is True else self._min_instance.get(self._database, 0)
        return self._send(statements, write, consistency, seq, min_instance)

    def _send(
        self,
        statements: tuple[Statement, ...],
        write: bool | None,
        consistency: Consistency,
        seq: int,
        min_instance: int,
    ) -> tuple[StatementResult, ...]:
        """One logical request, retried by the transport with this exact body."""
        database, client_id = self._database, self._client_id

        def build(request_id: int) -> bytes:
            request = ExecuteRequest(
                request_id=request_id,
                database=database,
                statements=statements,
                write=write,
                consistency=consistency,
                client_id=client_id,
                seq=seq,
                min_instance=min_instance,
            )
            try:
                return protocol.encode(request)
            except errors.UsageError as error:  # Too large for one frame.
                raise errors.DataError(f"request cannot be sent: {error}") from None

        reply = self._cluster.call(
            build,
            to_master=write is not False or consistency is not Consistency.LOCAL,
            is_write=write is not False,
        )
        if not isinstance(reply, ExecuteReply):
            raise InterfaceError(f"node answered a statement with {type(reply).__name__}")
        if write is not False and reply.instance > self._min_instance.get(database, 0):
            self._min_instance[database] = reply.instance
        if len(reply.results) != len(statements):
            raise InterfaceError(
                f"node returned {len(reply.results)} results for {len(statements)} statements"
            )
        return reply.results

    def _buffer_writes(self, statements: tuple[Statement, ...]) -> None:
        """Add writes to the transaction; a changed buffer needs a new sequence number."""
        self._check_not_in_doubt()
        if len(self._buffer) + len(statements) > REQUEST_STATEMENTS_MAX:
            raise ProgrammingError(
                f"a transaction holds at most {REQUEST_STATEMENTS_MAX} statements: "
                "commit() before adding more"
            )
        self._buffer.extend(statements)
        self._buffer_seq = None

    def _check_not_in_doubt(self) -> None:
        if self._commit_in_doubt:
            raise ProgrammingError(
                "the last commit() got no answer and may have been applied: call commit() "
                "again to retry it safely, or rollback() to abandon it"
            )

    def _end_transaction(self) -> None:
        self._buffer.clear()
        self._buffer_seq = None
        self._commit_in_doubt = False
        self._savepoints.clear()
        self._savepoint_began = False
        self._explicit = False

    def _control(self, control: Control) -> None:
        """BEGIN, COMMIT, ROLLBACK and savepoints given to execute(): never sent."""
        verb = control.verb
        if verb == "BEGIN":
            if self._explicit or self._buffer:
                raise OperationalError("cannot start a transaction within a transaction")
            self._explicit = True
        elif verb == "COMMIT":
            self.commit()
        elif verb == "ROLLBACK":
            self.rollback()
        elif verb == "SAVEPOINT":
            if not self.in_transaction:
                self._explicit = self._savepoint_began = True
            self._savepoints.append((control.name, len(self._buffer)))
        else:
            self._savepoint_release_or_rollback(verb, control.name)

    def _savepoint_release_or_rollback(self, verb: str, name: str) -> None:
        """RELEASE drops the savepoint and those after it (committing if it began the
        transaction); ROLLBACK TO discards the writes after it and keeps it."""
        found = [i for i, (n, _) in enumerate(self._savepoints) if n == name]
        if not found:
            raise OperationalError(f"no such savepoint: {name}")
        index = found[-1]
        if verb == "RELEASE":
            del self._savepoints[index:]
            if not self._savepoints and self._savepoint_began:
                self.commit()
            return
        assert verb == "ROLLBACK TO", verb
        self._check_not_in_doubt()
        del self._buffer[self._savepoints[index][1] :]
        del self._savepoints[index + 1 :]
        self._buffer_seq = None


def connect(
    url: str | None = None,
    *,
    timeout: float | None = None,
    consistency: str | None = None,
    autocommit: bool = True,
    node: Any = None,
    database: str | None = None,
) -> Connection:
    """A Connection to the cluster named by `url`, or to an embedded `node`.

    `connect(node=n, database="main")`: `n.client_address()` must return the
    "host:port" of the node's client port (the embedded Node provides it); `database`
    defaults to "main". With a URL the database is part of the URL. `timeout`
    (seconds) and `consistency` override the URL's options.
    """
    if node is not None:
        if url is not None:
            raise InterfaceError("connect() takes a URL or node=, not both")
        target = Target((_node_address(node),), check_database(database or DATABASE_DEFAULT))
    elif url is None:
        raise InterfaceError(
            "connect() needs a URL such as 'paxdb://127.0.0.1:8001/main', or node="
        )
    elif database is not None:
        raise InterfaceError("with a URL, name the database in it: paxdb://HOST:PORT/DATABASE")
    else:
        target = parse_url(url)
    if timeout is not None:
        target = Target(
            target.addresses, target.database, target.consistency, check_timeout(timeout)
        )
    if consistency is not None:
        target = Target(
            target.addresses, target.database, check_consistency(consistency), target.timeout_s
        )
    if not isinstance(autocommit, bool):
        raise ProgrammingError(f"autocommit must be True or False, not {autocommit!r}")
    return Connection(target, autocommit=autocommit)


def _node_address(node: Any) -> str:
    """The client address of an embedded Node: the hook is `node.client_address()`."""
    client_address = getattr(node, "client_address", None)
    if not callable(client_address):
        raise InterfaceError(
            f"node= needs a paxdb Node with a client_address() method, not {type(node).__name__}"
        )
    address = client_address()
    if not isinstance(address, str):
        raise InterfaceError(f"node.client_address() returned {address!r}, not 'host:port'")
    return parse_address(address)
