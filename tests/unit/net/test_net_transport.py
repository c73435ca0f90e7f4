"""The TCP transport on loopback: delivery, reconnects, authentication, bad peers, bounds.

Every test binds port 0 (the OS picks a free port), runs its own event loop with
asyncio.run, and waits with bounded polling loops, so a hang fails instead of blocking.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable

import pytest

from paxdb.ids import Ballot
from paxdb.net import Transport
from paxdb.net.handshake import DialerHandshake
from paxdb.net.link import DOWN_FRAMES_MAX, FrameReader
from paxdb.net.transport import UNAUTHENTICATED_WARNING
from paxdb.paxos.effects import Envelope
from paxdb.paxos.messages import Accept, Accepted, Prepare
from paxdb.paxos.values import Value, ValueKind
from paxdb.wire import encode_envelope, encode_frame

CLUSTER = "test-cluster"
SECRET = b"shared-secret"
LOOPBACK = ("127.0.0.1", 0)
WAIT_S = 5.0
POLL_S = 0.01
FAST_TIMEOUT_MS = 300


class Node:
    """A transport plus the envelopes it received."""

    def __init__(self, node_id: int, secret: bytes | None = SECRET, **options: int) -> None:
        self.node_id = node_id
        self.received: list[Envelope] = []
        self.transport = Transport(
            node_id, CLUSTER, LOOPBACK, {}, secret, self.received.append, **options
        )

    @property
    def address(self) -> tuple[str, int]:
        return self.transport.listen_address

    def send(self, target: int, instance: int, group: str = "main") -> bool:
        message = Accepted(Ballot(1, self.node_id), instance)
        return self.transport.send(Envelope(group, self.node_id, target, message))

    def instances_from(self, source: int) -> list[int]:
        return [e.message.instance for e in self.received if e.source == source]  # type: ignore[union-attr]


async def wait_until(predicate: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(POLL_S)


async def start_cluster(nodes: list[Node]) -> None:
    for node in nodes:
        await node.transport.start()
    peers = {node.node_id: node.address for node in nodes}
    for node in nodes:
        node.transport.set_peers(peers)


async def stop_all(nodes: list[Node]) -> None:
    for node in nodes:
        await node.transport.stop()


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())  # type: ignore[arg-type]


@pytest.mark.timeout(30)
def test_two_nodes_exchange_envelopes_both_ways() -> None:
    async def scenario() -> None:
        a, b = Node(1), Node(2)
        await start_cluster([a, b])
        try:
            for instance in range(200):  # One loop turn: coalesced into few writes.
                assert a.send(2, instance)
                assert b.send(1, instance)
            await wait_until(lambda: len(a.received) == len(b.received) == 200, "delivery")
            assert b.instances_from(1) == list(range(200))  # TCP keeps order on one link.
            assert a.instances_from(2) == list(range(200))
            assert a.transport.stats.frames_sent == 200
            assert a.transport.stats.writes == 1  # Queued in one turn, written in one call.
            assert b.transport.stats.frames_received == 200
            assert a.transport.stats.connections_dialed == 1
            assert a.transport.stats.connections_accepted == 1
            assert a.transport.stats.frames_dropped == 0
        finally:
            await stop_all([a, b])

    run(scenario)


@pytest.mark.timeout(30)
def test_three_nodes_all_to_all_with_large_values() -> None:
    async def scenario() -> None:
        nodes = [Node(1), Node(2), Node(3)]
        await start_cluster(nodes)
        value = Value(ValueKind.SQL_BATCH, bytes(range(256)) * 4096)  # 1 MiB.
        try:
            for node in nodes:
                for other in nodes:
                    message = Accept(Ballot(1, node.node_id), 7, value, 99)
                    envelope = Envelope("g", node.node_id, other.node_id, message)
                    assert node.transport.send(envelope)
            await wait_until(lambda: all(len(n.received) == 3 for n in nodes), "delivery")
            for node in nodes:
                assert sorted(e.source for e in node.received) == [1, 2, 3]
                assert all(
                    e.message == Accept(Ballot(1, e.source), 7, value, 99) for e in node.received
                )
                assert node.transport.stats.frames_sent == 2  # The third went to itself.
        finally:
            await stop_all(nodes)

    run(scenario)


@pytest.mark.timeout(30)
def test_a_restarted_peer_is_reconnected_and_gets_queued_frames() -> None:
    async def scenario() -> None:
        a, b = Node(1), Node(2)
        await start_cluster([a, b])
        b_address = b.address
        a.send(2, 0)
        await wait_until(lambda: len(b.received) == 1, "first delivery")
        await b.transport.stop()
        await wait_until(lambda: not a.transport.peer_is_up(2), "link down")
        for instance in range(1, 6):
            assert a.send(2, instance)  # Queued while the peer is away.
        assert a.transport.queued_frames(2) == 5
        b2 = Node(2)
        b2.transport.listen = b_address
        b2.transport.set_peers({1: a.address})
        await b2.transport.start()
        try:
            await wait_until(lambda: len(b2.received) == 5, "delivery after restart")
            assert b2.instances_from(1) == [1, 2, 3, 4, 5]
            assert a.transport.stats.connections_dialed == 2
            b2.send(1, 42)
            await wait_until(lambda: a.instances_from(2) == [42], "reverse delivery")
        finally:
            await stop_all([a, b2])

    run(scenario)


@pytest.mark.timeout(30)
def test_a_wrong_secret_is_rejected_and_counted_while_the_right_one_works() -> None:
    async def scenario() -> None:
        a, b, intruder = Node(1), Node(2), Node(3, secret=b"guess")
        await start_cluster([a, b, intruder])
        try:
            a.send(2, 1)
            intruder.send(2, 666)
            await wait_until(lambda: len(b.received) == 1, "delivery from a")
            await wait_until(
                lambda: (
                    b.transport.stats.handshakes_rejected >= 1
                    and intruder.transport.stats.handshakes_rejected >= 1
                ),
                "rejections",
            )
            await asyncio.sleep(0.1)
            assert [e.source for e in b.received] == [1]
            assert not intruder.transport.peer_is_up(2)
            assert a.transport.peer_is_up(2)
        finally:
            await stop_all([a, b, intruder])

    run(scenario)


@pytest.mark.timeout(30)
def test_without_a_secret_it_warns_once_and_still_checks_the_cluster(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        a, b, secretive = Node(1, secret=None), Node(2, secret=None), Node(3)
        with caplog.at_level(logging.WARNING, logger="paxdb.net.transport"):
            await start_cluster([a, b, secretive])
        try:
            a.send(2, 1)
            secretive.send(2, 2)  # Has a secret: refuses a listener that proves nothing.
            await wait_until(lambda: len(b.received) == 1, "delivery")
            await wait_until(lambda: secretive.transport.stats.handshakes_rejected >= 1, "refusal")
            warnings = [r for r in caplog.records if r.getMessage() == UNAUTHENTICATED_WARNING]
            assert len(warnings) == 2  # Once per transport without a secret.
        finally:
            await stop_all([a, b, secretive])

    run(scenario)


async def dial_raw(
    target: Node, as_node: int, secret: bytes | None = SECRET
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A hand-driven peer connection that completes the handshake as `as_node`."""
    reader, writer = await asyncio.open_connection(*target.address)
    frames = FrameReader(reader, target.transport.stats.__class__())
    handshake = DialerHandshake(CLUSTER, as_node, target.node_id, secret)
    writer.write(encode_frame(handshake.hello()))
    writer.write(encode_frame(handshake.on_welcome(await frames.next())))
    handshake.on_ready(await frames.next())
    return reader, writer


async def assert_closed_by_peer(reader: asyncio.StreamReader) -> None:
    async with asyncio.timeout(WAIT_S):
        while await reader.read(4096):
            pass


BAD_STREAMS = {
    "garbage": b"\x00\x00\x00\x05\xc1\xc1\xc1\xc1\xc1",
    "oversized": struct.pack(">I", 1_000_000),
    "wrong-source": encode_envelope(Envelope("main", 1, 2, Prepare(Ballot(1, 1), 0))),
    "wrong-target": encode_envelope(Envelope("main", 3, 1, Prepare(Ballot(1, 3), 0))),
    "not-an-envelope": encode_frame({"t": "hello"}),
}


@pytest.mark.timeout(30)
def test_bad_frames_close_only_that_connection() -> None:
    async def scenario() -> None:
        a, b = Node(1), Node(2, frame_bytes_max=64 * 1024)
        await start_cluster([a, b])
        b.transport.set_peers({1: a.address, 3: ("127.0.0.1", 9)})  # 3 is a known id.
        try:
            for count, stream in enumerate(BAD_STREAMS.values(), start=1):
                reader, writer = await dial_raw(b, as_node=3)
                writer.write(stream)
                await assert_closed_by_peer(reader)
                writer.close()
                assert b.transport.stats.bad_frames == count
            a.send(2, 5)
            await wait_until(lambda: b.instances_from(1) == [5], "good peer still served")
            assert b.transport.stats.handshakes_rejected == 0
        finally:
            await stop_all([a, b])

    run(scenario)


@pytest.mark.timeout(30)
def test_garbage_or_silence_before_the_handshake_is_rejected() -> None:
    async def scenario() -> None:
        b = Node(2, handshake_timeout_ms=FAST_TIMEOUT_MS)
        await start_cluster([b])
        b.transport.set_peers({3: ("127.0.0.1", 9)})
        try:
            reader, writer = await asyncio.open_connection(*b.address)
            writer.write(b"GET / HTTP/1.1\r\n\r\n")  # Declares a huge first frame.
            await assert_closed_by_peer(reader)
            writer.close()
            reader, writer = await asyncio.open_connection(*b.address)  # Says nothing.
            await assert_closed_by_peer(reader)
            writer.close()
            assert b.transport.stats.handshakes_rejected == 2
            assert b.transport.stats.connections_accepted == 0
            _, writer = await dial_raw(b, as_node=3)  # A real member still gets in.
            await wait_until(lambda: b.transport.stats.connections_accepted == 1, "accept")
            writer.close()
        finally:
            await stop_all([b])

    run(scenario)


@pytest.mark.timeout(30)
def test_send_queue_overflow_drops_and_counts() -> None:
    async def scenario() -> None:
        a = Node(1, send_queue_frames_max=10)
        await a.transport.start()
        # Nothing listens at port 9 (discard) on loopback: the link keeps redialing.
        a.transport.set_peers({2: ("127.0.0.1", 9)})
        try:
            results = [a.send(2, instance) for instance in range(25)]
            assert results == [True] * 10 + [False] * 15
            assert a.transport.stats.frames_dropped == 15
            assert a.transport.queued_frames(2) == 10
            assert not a.send(7, 0)  # Unknown node: dropped too.
            assert a.transport.stats.frames_dropped == 16
        finally:
            await stop_all([a])

    run(scenario)


@pytest.mark.timeout(30)
def test_a_peer_that_is_down_gets_only_a_short_backlog() -> None:
    async def scenario() -> None:
        a = Node(1)
        await a.transport.start()
        a.transport.set_peers({2: ("127.0.0.1", 9)})  # Never up.
        try:
            results = [a.send(2, instance) for instance in range(DOWN_FRAMES_MAX + 50)]
            assert results.count(True) == DOWN_FRAMES_MAX
            assert a.transport.queued_frames(2) == DOWN_FRAMES_MAX
        finally:
            await stop_all([a])

    run(scenario)


@pytest.mark.timeout(30)
def test_send_queue_byte_bound_and_removed_peers() -> None:
    async def scenario() -> None:
        a, b = Node(1, frame_bytes_max=64 * 1024, send_queue_bytes_max=100 * 1024), Node(2)
        await start_cluster([a, b])
        await b.transport.stop()
        try:
            await wait_until(lambda: not a.transport.peer_is_up(2), "link down")
            value = Value(ValueKind.SQL_BATCH, b"x" * 40 * 1024)
            accept = Accept(Ballot(1, 1), 0, value, 0)
            results = [a.transport.send(Envelope("main", 1, 2, accept)) for _ in range(3)]
            assert results == [True, True, False]
            huge = Accept(Ballot(1, 1), 0, Value(ValueKind.SQL_BATCH, b"x" * 65 * 1024), 0)
            assert not a.transport.send(Envelope("main", 1, 2, huge))  # Over frame_bytes_max.
            assert a.transport.stats.frames_dropped == 2
            a.transport.set_peers({})
            assert not a.send(2, 1)
            assert a.transport.peers == {}
        finally:
            await stop_all([a])

    run(scenario)


@pytest.mark.timeout(30)
def test_a_redialing_peer_replaces_its_old_connection() -> None:
    async def scenario() -> None:
        b = Node(2)
        await start_cluster([b])
        b.transport.set_peers({3: ("127.0.0.1", 9)})
        try:
            old_reader, old_writer = await dial_raw(b, as_node=3)
            _, new_writer = await dial_raw(b, as_node=3)
            await assert_closed_by_peer(old_reader)
            new_writer.write(encode_envelope(Envelope("main", 3, 2, Prepare(Ballot(1, 3), 0))))
            await wait_until(lambda: len(b.received) == 1, "delivery on the new connection")
            assert b.transport.stats.connections_accepted == 2
            old_writer.close()
            new_writer.close()
        finally:
            await stop_all([b])

    run(scenario)


@pytest.mark.timeout(30)
def test_a_peer_address_change_is_redialed_keeping_the_queue() -> None:
    async def scenario() -> None:
        a, b = Node(1), Node(2)
        await start_cluster([a, b])
        a.transport.set_peers({2: ("127.0.0.1", 9)})  # A wrong address first.
        try:
            await wait_until(lambda: not a.transport.peer_is_up(2), "link down")
            a.send(2, 1)
            a.transport.set_peers({2: b.address})
            await wait_until(lambda: b.instances_from(1) == [1], "delivery at the new address")
        finally:
            await stop_all([a, b])

    run(scenario)


@pytest.mark.timeout(30)
def test_an_envelope_to_this_node_is_delivered_locally() -> None:
    async def scenario() -> None:
        a = Node(1)
        await start_cluster([a])
        try:
            assert a.send(1, 3)
            await wait_until(lambda: a.instances_from(1) == [3], "local delivery")
            assert a.transport.stats.frames_sent == 0
        finally:
            await stop_all([a])

    run(scenario)
