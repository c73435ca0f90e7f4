"""Bad input from strangers and clients never crashes a node or loses data."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest
from client import RequestFailed
from cluster import ProcessCluster

from paxdb.ids import Ballot
from paxdb.net.transport import Transport
from paxdb.paxos.effects import Envelope
from paxdb.paxos.messages import Prepare


def send_raw(address: tuple[str, int], data: bytes) -> bytes:
    """Send bytes, return whatever comes back before the node closes (or 2 s pass)."""
    with socket.create_connection(address, timeout=2) as sock:
        sock.sendall(data)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return received


def assert_still_serving(cluster: ProcessCluster, marker: int) -> None:
    cluster.client().execute("INSERT INTO log VALUES (?)", (marker,), write=True)
    for node_id in cluster.ports:
        assert cluster.processes[node_id].poll() is None, cluster.log(node_id)[-2000:]


@pytest.fixture
def ready(cluster: ProcessCluster) -> ProcessCluster:
    cluster.master()
    cluster.client().execute("CREATE TABLE log(marker)", write=True)
    return cluster


@pytest.mark.timeout(90)
def test_garbage_and_oversized_frames_close_only_that_connection(ready: ProcessCluster) -> None:
    cluster = ready
    node = 1
    peer_address = ("127.0.0.1", cluster.ports[node])
    client_address = cluster.client_address(node)
    oversized = struct.pack(">I", 2**31) + b"x" * 100
    garbage = b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1" + b"GET / HTTP/1.1\r\n\r\n"
    for address in (peer_address, client_address):
        send_raw(address, garbage)
        send_raw(address, oversized)
        send_raw(address, b"\xff" * 10_000)
    assert_still_serving(cluster, 1)


@pytest.mark.timeout(90)
def test_a_peer_with_the_wrong_secret_is_refused(ready: ProcessCluster) -> None:
    cluster = ready
    impostor_id = 3  # Claims to be a member, but does not know the secret.

    async def impostor() -> None:
        transport = Transport(
            impostor_id,
            ready_cluster_id(cluster),
            ("127.0.0.1", 0),
            {1: ("127.0.0.1", cluster.ports[1])},
            b"not-the-secret-at-all",
            lambda envelope: None,
        )
        await transport.start()
        for _ in range(20):
            transport.send(Envelope("main", impostor_id, 1, Prepare(Ballot(10**6, 3), 0)))
            await asyncio.sleep(0.05)
        await transport.stop()

    asyncio.run(impostor())
    assert_still_serving(cluster, 2)
    assert "refus" in cluster.log(1).lower() or "secret" in cluster.log(1).lower()
    # The impostor's huge ballot never reached the acceptor: the master kept its ballot.
    status = cluster.status(1)["groups"]["main"]
    assert status["halted"] is None


def ready_cluster_id(cluster: ProcessCluster) -> str:
    return str(cluster.status(1)["cluster"])


@pytest.mark.timeout(60)
def test_sql_that_does_not_parse_is_an_error_result(ready: ProcessCluster) -> None:
    client = ready.client()
    with pytest.raises(RequestFailed, match="ProgrammingError"):
        client.execute("INSERT INTO log VALUES (", write=True)
    with pytest.raises(RequestFailed, match="ProgrammingError"):
        client.execute("SELEKT 1")
    assert_still_serving(ready, 3)


@pytest.mark.timeout(60)
def test_a_write_sent_as_a_read_is_refused_and_changes_nothing(ready: ProcessCluster) -> None:
    client = ready.client()
    for consistency in ("local", "master"):
        with pytest.raises(RequestFailed, match="ProgrammingError.*write"):
            client.execute("INSERT INTO log VALUES (99)", write=False, consistency=consistency)
    ready.converge()
    for node_id in ready.ports:
        assert ready.rows(node_id, "SELECT count(*) FROM log WHERE marker = 99") == [(0,)]
    assert_still_serving(ready, 4)
