"""The driver's own cost per request, against a trivial echo node in another process.

The echo node answers every exec frame with a canned one-row result. The same loop is
timed twice: raw (pre-encoded frame, sendall, recv until the reply) and through
`cursor.execute("SELECT 1")` + `fetchall()`. The difference is the Python the driver
adds per round trip (classification, parameter checks, request encoding, reply
decoding, bookkeeping). Run `pytest -s -k overhead tests/dbapi` to see the numbers.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

import paxdb.client as driver
from paxdb.client import protocol
from paxdb.client.protocol import ExecuteRequest
from paxdb.sql.requests import Statement

pytestmark = pytest.mark.timeout(60)

BATCHES = 15
BATCH_ROUND_TRIPS = 400
OVERHEAD_US_MAX = 500.0  # Generous, so that a loaded CI machine does not fail the test.

ECHO_NODE = r"""
import socket, threading
from paxdb.client import protocol
from paxdb.client.protocol import ExecuteReply, StatusReply
from paxdb.sql.requests import StatementResult
from paxdb.wire import FrameDecoder

RESULT = (StatementResult(-1, None, ("1",), ((1,),)),)

def serve(connection):
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    decoder = FrameDecoder()
    while data := connection.recv(65536):
        for mapping in decoder.feed(data):
            request_id = mapping["id"]
            if mapping["t"] == "status":
                reply = StatusReply(request_id, {})
            else:
                reply = ExecuteReply(request_id, RESULT, instance=1)
            connection.sendall(protocol.encode(reply))
    connection.close()

server = socket.create_server(("127.0.0.1", 0))
print(server.getsockname()[1], flush=True)
while True:
    threading.Thread(target=serve, args=(server.accept()[0],), daemon=True).start()
"""


@pytest.fixture
def echo_address() -> Iterator[str]:
    process = subprocess.Popen([sys.executable, "-c", ECHO_NODE], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    port = int(process.stdout.readline())
    yield f"127.0.0.1:{port}"
    process.kill()
    process.wait()


def raw_round_trips_us(sock: socket.socket, frame: bytes, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        sock.sendall(frame)
        sock.recv(65536)  # The reply is one small frame: one recv gets it.
    return (time.perf_counter() - started) / count * 1e6


def driver_round_trips_us(cursor: driver.Cursor, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        cursor.execute("SELECT 1")
        cursor.fetchall()
    return (time.perf_counter() - started) / count * 1e6


def test_driver_overhead_per_round_trip(echo_address: str) -> None:
    """Batches of raw and driver round trips alternate, and the best batch of each
    counts, so that noise from other processes hits both sides alike."""
    conn = driver.connect(f"paxdb://{echo_address}/main")
    cursor = conn.cursor()
    assert cursor.execute("SELECT 1").fetchall() == [(1,)]
    host, port = echo_address.split(":")
    frame = protocol.encode(
        ExecuteRequest(1, "main", (Statement("SELECT 1"),), False, client_id="c" * 32)
    )
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw_us = driver_us = float("inf")
        for _ in range(BATCHES):
            raw_us = min(raw_us, raw_round_trips_us(sock, frame, BATCH_ROUND_TRIPS))
            driver_us = min(driver_us, driver_round_trips_us(cursor, BATCH_ROUND_TRIPS))
    conn.close()
    overhead_us = driver_us - raw_us
    print(
        f"\nround trip: raw {raw_us:.1f} us, driver {driver_us:.1f} us, "
        f"driver overhead {overhead_us:.1f} us"
    )
    assert overhead_us < OVERHEAD_US_MAX
