"""A fake paxdb cluster speaking paxdb/client/protocol.py, for the driver's tests.

`FakeCluster` holds what a real cluster agrees on: one APSW in-memory database, the
instance counter and the dedupe table keyed by (client id, seq), shared by every
`FakeNode` so that a retry on another node finds the first result, as on the real one.
Each FakeNode listens on an ephemeral loopback port, one thread per connection, and
records every request it receives. A test steers a node with:

- `node.plan`: actions for the next requests, one per request (see `Action`);
- `node.not_master`: a master hint; every exec request then gets NotMaster;
- `node.stop()`: close the listener and connections (later connects are refused).

Writes (w=True, or w=None holding a non-read) are applied atomically in a SAVEPOINT;
a failing statement rolls the whole request back, and the error is the result. Reads
must be reads (w=False with a write gets ProgrammingError, as the node does).
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import apsw
import pytest

from paxdb.client import protocol
from paxdb.client.protocol import ExecuteReply, ExecuteRequest, StatusReply, StatusRequest
from paxdb.sql.requests import ErrorInfo, Statement, StatementResult, error_info
from paxdb.wire import FrameDecoder

LOOPBACK = "127.0.0.1"
ACCEPT_POLL_S = 0.05
RECV_BYTES = 65_536

# Plan actions for one request.
APPLY_THEN_CLOSE = "apply-then-close"  # Apply, then close the connection: no reply.
APPLY_THEN_SILENT = "apply-then-silent"  # Apply, never reply, keep the connection open.
APPLY_THEN_TIMEOUT = "apply-then-timeout"  # Apply, then reply ProposalTimeout.
CLOSE = "close"  # Close the connection without applying.
GARBAGE = "garbage"  # Answer with a frame that is not msgpack, without applying.
GARBAGE_FRAME = b"\x00\x00\x00\x01\xc1"


@dataclass(frozen=True)
class ErrorAction:
    """Reply with this error (and master hint) without applying anything."""

    class_name: str
    message: str
    master: str | None = None


Action = str | ErrorAction

_DML = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def is_read(sql: str) -> bool:
    """The fake node's own classification (deliberately independent of the driver's)."""
    words = sql.split()
    first = words[0].upper() if words else ""
    if first in ("SELECT", "VALUES", "EXPLAIN"):
        return True
    if first == "WITH":
        return _DML.search(sql) is None
    return first == "PRAGMA" and "=" not in sql


@dataclass
class FakeCluster:
    db: apsw.Connection = field(default_factory=lambda: apsw.Connection(":memory:"))
    lock: threading.Lock = field(default_factory=threading.Lock)
    instance: int = 0
    applies: int = 0  # Write requests actually applied (dedupe hits excluded).
    dedupe: dict[tuple[str, int], tuple[tuple[StatementResult, ...], ErrorInfo | None, int]] = (
        field(default_factory=dict)
    )
    nodes: list[FakeNode] = field(default_factory=list)

    def start_node(self) -> FakeNode:
        node = FakeNode(self)
        self.nodes.append(node)
        return node

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def execute(self, request: ExecuteRequest) -> ExecuteReply:
        with self.lock:
            reads = all(is_read(s.sql) for s in request.statements)
            if request.write is False and not reads:
                error = ErrorInfo("ProgrammingError", "a read request holds a write", 1)
                return ExecuteReply(request.request_id, error=error, instance=self.instance)
            if request.write is False or (request.write is None and reads):
                return self._read(request)
            return self._write(request)

    def _read(self, request: ExecuteRequest) -> ExecuteReply:
        try:
            results = tuple(self._run(s, is_write=False) for s in request.statements)
        except apsw.Error as error:
            return ExecuteReply(request.request_id, error=error_info(error), instance=self.instance)
        return ExecuteReply(request.request_id, results, instance=self.instance)

    def _write(self, request: ExecuteRequest) -> ExecuteReply:
        key = (request.client_id, request.seq)
        if request.client_id and key in self.dedupe:
            results, error, instance = self.dedupe[key]
            return ExecuteReply(request.request_id, results, error, instance)
        error: ErrorInfo | None = None
        results: tuple[StatementResult, ...] = ()
        self.db.execute("SAVEPOINT fake_request")
        try:
            results = tuple(self._run(s, is_write=True) for s in request.statements)
        except apsw.Error as failure:
            self.db.execute("ROLLBACK TO fake_request")
            error, results = error_info(failure), ()
        self.db.execute("RELEASE fake_request")
        self.instance += 1
        self.applies += 1
        self.dedupe[key] = (results, error, self.instance)
        return ExecuteReply(request.request_id, results, error, self.instance)

    def _run(self, statement: Statement, is_write: bool) -> StatementResult:
        cursor = self.db.cursor()
        cursor.execute(statement.sql, statement.params)
        try:
            columns = tuple(name for name, _ in cursor.getdescription())
        except apsw.ExecutionCompleteError:
            columns = ()
        rows = tuple(tuple(row) for row in cursor)
        first = statement.sql.split()[0].upper()
        counts = first in ("INSERT", "UPDATE", "DELETE", "REPLACE", "WITH")
        rowcount = self.db.changes() if is_write and counts else -1
        lastrowid = self.db.last_insert_rowid() if is_write else None
        return StatementResult(rowcount, lastrowid, columns, rows)


class FakeNode:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.plan: deque[Action] = deque()
        self.not_master: str | None = None
        self.requests: list[ExecuteRequest | StatusRequest] = []
        self.status: dict[str, Any] = {"role": "master", "applied": 0}
        self._listener = socket.create_server((LOOPBACK, 0))
        self._listener.settimeout(ACCEPT_POLL_S)
        self.address = f"{LOOPBACK}:{self._listener.getsockname()[1]}"
        self._connections: list[socket.socket] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def exec_requests(self) -> list[ExecuteRequest]:
        return [r for r in self.requests if isinstance(r, ExecuteRequest)]

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        for connection in self._connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            connection.settimeout(None)
            self._connections.append(connection)
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        decoder = FrameDecoder()
        with contextlib.suppress(OSError):
            while True:
                data = connection.recv(RECV_BYTES)
                if not data:
                    break
                for mapping in decoder.feed(data):
                    reply = self._handle(protocol.decode(mapping))
                    if reply == CLOSE:
                        connection.close()
                        return
                    if reply == GARBAGE:
                        connection.sendall(GARBAGE_FRAME)
                    elif reply is not None:
                        connection.sendall(protocol.encode(reply))

    def _handle(self, request: Any) -> Any:
        """The reply to send, None for no reply, CLOSE to close the connection or GARBAGE."""
        self.requests.append(request)
        if isinstance(request, StatusRequest):
            return StatusReply(request.request_id, dict(self.status))
        assert isinstance(request, ExecuteRequest)
        if self.not_master is not None:
            error = ErrorInfo("NotMaster", "not master; retry at the master", 0)
            return ExecuteReply(request.request_id, error=error, master=self.not_master)
        action = self.plan.popleft() if self.plan else None
        if isinstance(action, ErrorAction):
            error = ErrorInfo(action.class_name, action.message, 0)
            return ExecuteReply(request.request_id, error=error, master=action.master)
        if action in (CLOSE, GARBAGE):
            return action
        reply = self.cluster.execute(request)
        if action == APPLY_THEN_CLOSE:
            return CLOSE
        if action == APPLY_THEN_SILENT:
            return None
        if action == APPLY_THEN_TIMEOUT:
            error = ErrorInfo("ProposalTimeout", "proposal not chosen in time", 0)
            return ExecuteReply(request.request_id, error=error)
        return reply


def refused_address() -> str:
    """A loopback address where nothing listens (connecting is refused)."""
    with socket.create_server((LOOPBACK, 0)) as probe:
        port = probe.getsockname()[1]
    return f"{LOOPBACK}:{port}"


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster()
    yield fake
    fake.stop()


@pytest.fixture
def node(cluster: FakeCluster) -> FakeNode:
    return cluster.start_node()


@pytest.fixture
def url(node: FakeNode) -> str:
    return f"paxdb://{node.address}/main?timeout=5"
