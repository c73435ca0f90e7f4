"""A small blocking client for integration tests: failover, retries with the same seq.

The DB-API driver (paxdb.client) is the real thing; this one exists so the node can be
tested on its own, against the protocol alone.
"""

from __future__ import annotations

import itertools
import socket
import time
import uuid
from typing import Any

from paxdb.client.protocol import (
    Consistency,
    ExecuteReply,
    ExecuteRequest,
    StatusReply,
    StatusRequest,
    decode,
    encode,
)
from paxdb.sql.requests import ErrorInfo, Statement
from paxdb.wire import FrameDecoder

RETRYABLE = {"NotMaster", "ProposalDropped", "ProposalTimeout", "OperationalError"}


class RequestFailed(Exception):
    def __init__(self, error: ErrorInfo) -> None:
        super().__init__(f"{error.class_name}: {error.message}")
        self.error = error


class TestClient:
    __test__ = False  # Not a pytest test class.

    def __init__(self, addresses: list[tuple[str, int]], timeout: float = 20.0) -> None:
        self.addresses = addresses
        self.timeout = timeout
        self.client_id = uuid.uuid4().hex
        self.seq = itertools.count(1)
        self.ids = itertools.count(1)

    def call(self, address: tuple[str, int], request: Any, timeout: float = 12.0) -> Any:
        with socket.create_connection(address, timeout=timeout) as sock:
            sock.sendall(encode(request))
            decoder = FrameDecoder()
            while True:
                data = sock.recv(1 << 20)
                if not data:
                    raise ConnectionError("closed")
                for mapping in decoder.feed(data):
                    return decode(mapping)

    def status(self) -> dict[str, Any]:
        reply = self.call(self.addresses[0], StatusRequest(next(self.ids)))
        assert isinstance(reply, StatusReply)
        return reply.status

    def execute(
        self,
        sql: str | list[tuple[str, Any]],
        params: Any = None,
        write: bool | None = None,
        consistency: str = "master",
        database: str = "main",
        seq: int | None = None,
    ) -> ExecuteReply:
        statements = (
            (Statement(sql, params),)
            if isinstance(sql, str)
            else tuple(Statement(s, p) for s, p in sql)
        )
        request = ExecuteRequest(
            next(self.ids),
            database,
            statements,
            write,
            Consistency(consistency),
            self.client_id,
            next(self.seq) if seq is None else seq,
        )
        return self.send(request)

    def send(self, request: ExecuteRequest) -> ExecuteReply:
        """Send until a final answer, trying every node; the same seq every time."""
        deadline = time.monotonic() + self.timeout
        attempt = 0
        last = "nothing tried"
        while time.monotonic() < deadline:
            address = self.addresses[attempt % len(self.addresses)]
            attempt += 1
            try:
                reply = self.call(address, request)
            except OSError as error:
                last = f"{address}: {error}"
                time.sleep(0.05)
                continue
            assert isinstance(reply, ExecuteReply)
            if reply.error is None:
                return reply
            if reply.error.class_name not in RETRYABLE:
                raise RequestFailed(reply.error)
            last = f"{address}: {reply.error.class_name}: {reply.error.message}"
            time.sleep(0.05)
        raise TimeoutError(f"no answer within {self.timeout} s; last: {last}")
