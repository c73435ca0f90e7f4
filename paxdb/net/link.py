"""The outbound half of the transport: one `PeerLink` per peer, plus shared helpers.

A link owns a bounded queue of encoded frames and one task that dials the peer,
completes the handshake (handshake.py), and then writes: it sleeps on an
`asyncio.Event` while the queue is empty, and on waking joins everything queued (up to
WRITE_BATCH_BYTES_MAX) into one `writer.write`, then awaits `drain()` for backpressure.
So frames queued in one loop turn leave in one system call, with no coroutine or future
per message. When the connection fails it redials with capped exponential backoff and
jitter from the transport's seeded PRNG; frames queued meanwhile are kept up to the
bound, frames in a failed write are lost (the Paxos core tolerates loss).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from paxdb.errors import RemoteProtocolError
from paxdb.limits import RECONNECT_BACKOFF_MS_MAX, RECONNECT_BACKOFF_MS_MIN
from paxdb.net.handshake import HANDSHAKE_FRAME_BYTES_MAX, DialerHandshake, HandshakeRejected
from paxdb.wire import FrameDecoder, encode_frame

if TYPE_CHECKING:
    from paxdb.net.transport import Transport

logger = logging.getLogger("paxdb.net.transport")  # One logger name for the whole transport.

WRITE_BATCH_BYTES_MAX = 4 * 1024 * 1024  # At most this much is joined into one write.
DOWN_FRAMES_MAX = 256  # Frames kept for a peer while its link is down (see enqueue).
READ_CHUNK_BYTES = 256 * 1024  # One read from a socket.

Address = tuple[str, int]
EXPECTED_ERRORS = (OSError, EOFError, asyncio.IncompleteReadError, RemoteProtocolError)


@dataclass(slots=True)
class TransportStats:
    """Counters since start. `frames_dropped` counts every frame `send` did not queue."""

    frames_sent: int = 0
    frames_received: int = 0
    frames_dropped: int = 0  # Queue full, unknown target or frame too large.
    bytes_sent: int = 0
    writes: int = 0  # writer.write calls: frames_sent / writes is the coalescing factor.
    bytes_received: int = 0
    bad_frames: int = 0  # Frames that did not decode or were misaddressed: connection closed.
    handshakes_rejected: int = 0  # Either side, including handshakes that timed out.
    connections_accepted: int = 0  # Inbound connections that completed the handshake.
    connections_dialed: int = 0  # Outbound connections that completed the handshake.

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FrameReader:
    """Frames from one stream, one at a time, holding any extra frames a read completed."""

    __slots__ = ("reader", "decoder", "pending", "stats")

    def __init__(self, reader: asyncio.StreamReader, stats: TransportStats) -> None:
        self.reader = reader
        self.decoder = FrameDecoder(HANDSHAKE_FRAME_BYTES_MAX)
        self.pending: deque[dict[str, Any]] = deque()
        self.stats = stats

    async def next(self) -> dict[str, Any]:
        while not self.pending:
            self.pending.extend(await self.read_frames())
        return self.pending.popleft()

    async def read_frames(self) -> list[dict[str, Any]]:
        """The frames completed by the next read; EOFError at end of stream."""
        data = await self.reader.read(READ_CHUNK_BYTES)
        if not data:
            raise EOFError("connection closed by peer")
        self.stats.bytes_received += len(data)
        return self.decoder.feed(data)


async def close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class PeerLink:
    """The outbound connection to one peer: a bounded queue and the task that drains it.

    Invariants: `len(queue) <= frames_max` and `queued_bytes <= bytes_max` at all times;
    only `run` (one task) takes frames off the queue.
    """

    def __init__(self, transport: Transport, peer_id: int, address: Address) -> None:
        self.transport = transport
        self.peer_id = peer_id
        self.address = address
        self.queue: deque[bytes] = deque()
        self.queued_bytes = 0
        self.wakeup = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.is_up = False
        self._last_failure = ""
        self._writer: asyncio.StreamWriter | None = None  # Set while the link is up.

    def enqueue(self, frame: bytes) -> bool:
        transport = self.transport
        writer = self._writer
        if (
            writer is not None
            and not self.queue
            and writer.transport.get_write_buffer_size() == 0
            and not writer.is_closing()
        ):
            # Fast path: nothing waits before this frame and the socket takes it now,
            # so write it at once instead of waking the writer task a loop turn later.
            writer.write(frame)
            transport.stats.frames_sent += 1
            transport.stats.writes += 1
            transport.stats.bytes_sent += len(frame)
            return True
        # A peer that is down gets only a short backlog: Paxos treats a dropped message
        # as lost, and a long one would replay stale rounds (and hold memory) when the
        # peer returns; the learner's catch-up brings it up to date instead.
        frames_max = transport.send_queue_frames_max
        if not self.is_up:
            frames_max = min(frames_max, DOWN_FRAMES_MAX)
        if (
            len(self.queue) >= frames_max
            or self.queued_bytes + len(frame) > transport.send_queue_bytes_max
        ):
            transport.stats.frames_dropped += 1
            return False
        self.queue.append(frame)
        self.queued_bytes += len(frame)
        self.wakeup.set()
        return True

    def start(self) -> None:
        assert self.task is None or self.task.done()
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"paxdb-link-{self.transport.node_id}-{self.peer_id}"
        )

    async def stop(self) -> None:
        task, self.task = self.task, None
        self.is_up = False
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        """Dial, handshake, pump; on any failure wait with backoff and dial again."""
        transport = self.transport
        backoff_ms = RECONNECT_BACKOFF_MS_MIN
        while True:
            try:
                await self.connect_and_pump()
                reason = "closed"
            except HandshakeRejected as error:
                transport.stats.handshakes_rejected += 1
                reason = describe_error(error)
            except (*EXPECTED_ERRORS, TimeoutError) as error:
                reason = describe_error(error)
            except Exception:
                logger.exception("bug in the link to peer %d at %s", self.peer_id, self.address)
                reason = "internal error"
            if self.is_up:
                self.is_up = False
                backoff_ms = RECONNECT_BACKOFF_MS_MIN
                self._last_failure = reason
                logger.warning("peer %d down (%s:%d): %s", self.peer_id, *self.address, reason)
            else:
                self.note_failure(reason)
            delay_ms = transport.rng.uniform(backoff_ms / 2, backoff_ms)
            await asyncio.sleep(delay_ms / 1000)
            backoff_ms = min(backoff_ms * 2, RECONNECT_BACKOFF_MS_MAX)

    def note_failure(self, reason: str) -> None:
        """Log a failure once at WARNING, and its repeats (every backoff) at DEBUG."""
        level = logging.DEBUG if reason == self._last_failure else logging.WARNING
        self._last_failure = reason
        logger.log(level, "link to peer %d at %s:%d: %s", self.peer_id, *self.address, reason)

    async def connect_and_pump(self) -> None:
        transport = self.transport
        host, port = self.address
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), transport.connect_timeout_ms / 1000
        )
        try:
            async with asyncio.timeout(transport.handshake_timeout_ms / 1000):
                await self.handshake(reader, writer)
            self.is_up = True
            self._last_failure = ""
            transport.stats.connections_dialed += 1
            logger.info("peer %d up (%s:%d)", self.peer_id, host, port)
            await self.pump(reader, writer)
        finally:
            await close_writer(writer)

    async def handshake(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        transport = self.transport
        frames = FrameReader(reader, transport.stats)
        handshake = DialerHandshake(
            transport.cluster_id, transport.node_id, self.peer_id, transport.secret
        )
        writer.write(encode_frame(handshake.hello()))
        writer.write(encode_frame(handshake.on_welcome(await frames.next())))
        handshake.on_ready(await frames.next())
        if frames.pending:
            raise RemoteProtocolError("peer sent frames after 'ready' on an outbound link")

    async def pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Write queued frames until the connection fails or the peer closes it.

        A watcher task reads the (otherwise silent) stream, so a peer that closes or
        restarts is noticed while we are idle, not at the next write.
        """
        watcher = asyncio.get_running_loop().create_task(reader.read(1))
        watcher.add_done_callback(lambda _: self.wakeup.set())
        stats = self.transport.stats
        self._writer = writer
        try:
            while not watcher.done():
                if not self.queue:
                    self.wakeup.clear()
                    await self.wakeup.wait()
                    continue
                data, count = self.take_batch()
                writer.write(data)
                stats.frames_sent += count
                stats.writes += 1
                stats.bytes_sent += len(data)
                await writer.drain()
        finally:
            self._writer = None
            if not watcher.done():
                watcher.cancel()
            elif not watcher.cancelled():
                watcher.exception()  # Retrieve it, so asyncio does not warn about it.
        # Here the watcher finished by itself: EOF, an error, or unexpected data.
        error = watcher.exception()
        if error is not None:
            raise error
        if watcher.result():
            raise RemoteProtocolError("peer sent data on an outbound link after the handshake")
        raise EOFError("peer closed the connection")

    def take_batch(self) -> tuple[bytes, int]:
        """Everything queued (up to WRITE_BATCH_BYTES_MAX, at least one frame) as one write."""
        queue = self.queue
        if len(queue) == 1:
            frame = queue.popleft()
            self.queued_bytes -= len(frame)
            return frame, 1
        frames: list[bytes] = []
        size = 0
        while queue and (not frames or size + len(queue[0]) <= WRITE_BATCH_BYTES_MAX):
            frame = queue.popleft()
            frames.append(frame)
            size += len(frame)
        self.queued_bytes -= size
        return b"".join(frames), len(frames)
