"""The asyncio TCP transport between nodes, shared by every group of a node.

Theory of operation. A node listens on one address; every peer dials it. Envelopes to a
peer travel on the connection *we* dialed, envelopes from a peer arrive on the connection
*it* dialed, so each pair of nodes holds two TCP connections, one per direction. That
keeps each connection's job simple: an outbound link only writes, an inbound connection
only reads (after the handshake, see handshake.py).

- `send(envelope)` is synchronous and never blocks: it encodes the frame and appends it to
  the target's bounded queue (`send_queue_frames_max` frames, `send_queue_bytes_max`
  bytes); past either bound the frame is dropped and counted. The Paxos core tolerates
  loss, duplication and reordering (STYLE.md section 5), so dropping is always safe.
- One writer task per peer (`PeerLink`, link.py) sleeps on an `asyncio.Event` while its queue is
  empty. When it wakes it joins everything queued, up to `WRITE_BATCH_BYTES_MAX`, into
  one `writer.write` and awaits `drain()` for backpressure: frames queued in one loop
  turn leave in one system call, and there is no coroutine or future per message.
- A link that fails or is closed redials with capped exponential backoff
  (RECONNECT_BACKOFF_MS_MIN..MAX) with jitter from a PRNG seeded at construction. Frames
  queued meanwhile stay queued up to the bound; frames in a failed write are lost.
- Inbound frames are decoded with `wire.FrameDecoder` (at most HANDSHAKE_FRAME_BYTES_MAX
  until the peer has authenticated) and delivered with `on_envelope` only if their source
  is the authenticated node and their target is this node. Any bad frame closes that one
  connection and is counted; every other connection keeps working.
- An envelope addressed to this node itself is delivered locally with `call_soon`,
  without encoding, so the core may treat itself like any other acceptor.

No exception escapes a connection handler: expected failures (I/O errors, protocol
errors, timeouts) are logged at WARNING in one line with the peer's address, and an
unexpected one (a bug, e.g. in `on_envelope`) is logged with its traceback and closes
only that connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from paxdb.errors import RemoteProtocolError
from paxdb.limits import (
    FRAME_BYTES_MAX,
    SEND_QUEUE_FRAMES_MAX,
)
from paxdb.net.handshake import (
    CLUSTER_ID_CHARS_MAX,
    HANDSHAKE_FRAME_BYTES_MAX,
    HandshakeRejected,
    ListenerHandshake,
    refuse_frame,
)
from paxdb.net.link import (
    EXPECTED_ERRORS,
    Address,
    FrameReader,
    PeerLink,
    TransportStats,
    close_writer,
    describe_error,
)
from paxdb.paxos.effects import Envelope
from paxdb.wire import (
    FrameTooLargeError,
    decode_envelope,
    encode_envelope,
    encode_frame,
)

logger = logging.getLogger(__name__)

SEND_QUEUE_BYTES_MAX = 256 * 1024 * 1024  # Bytes queued for one peer before frames drop.
HANDSHAKE_TIMEOUT_MS = 5_000  # Connect-to-ready limit for both sides of the handshake.
CONNECT_TIMEOUT_MS = 5_000  # TCP connect limit for an outbound link.
REFUSAL_LOG_HOSTS_MAX = 256  # Hosts whose last refusal reason is remembered (log dedupe).
UNAUTHENTICATED_WARNING = (
    "cluster started without --secret-file; any process that can reach the port can join"
)


assert FRAME_BYTES_MAX < SEND_QUEUE_BYTES_MAX
assert HANDSHAKE_FRAME_BYTES_MAX < FRAME_BYTES_MAX


@dataclass(slots=True, eq=False)
class _Inbound:
    """One inbound connection. `peer_id` is None until the handshake completes."""

    writer: asyncio.StreamWriter
    task: asyncio.Task[Any]
    peer_id: int | None = None
    is_dismissed: bool = False

    def dismiss(self) -> None:
        """Close it from our side. Aborting the socket ends the handler's read with EOF, so
        the handler returns normally (cancelling it would make asyncio 3.11 log an error)."""
        self.is_dismissed = True
        self.writer.transport.abort()


class Transport:
    """TCP transport of one node: one server for inbound, one link per peer for outbound.

    `peers` maps node id to its listen address; an entry for this node itself is
    ignored. `on_envelope` is called on the event loop for every envelope received (and
    for envelopes sent to this node itself); it must not block.
    """

    def __init__(
        self,
        node_id: int,
        cluster_id: str,
        listen: Address,
        peers: dict[int, Address],
        secret: bytes | None,
        on_envelope: Callable[[Envelope], None],
        *,
        seed: int | None = None,
        frame_bytes_max: int = FRAME_BYTES_MAX,
        send_queue_frames_max: int = SEND_QUEUE_FRAMES_MAX,
        send_queue_bytes_max: int = SEND_QUEUE_BYTES_MAX,
        handshake_timeout_ms: int = HANDSHAKE_TIMEOUT_MS,
        connect_timeout_ms: int = CONNECT_TIMEOUT_MS,
    ) -> None:
        assert 0 < len(cluster_id) <= CLUSTER_ID_CHARS_MAX
        assert secret is None or len(secret) > 0
        assert HANDSHAKE_FRAME_BYTES_MAX <= frame_bytes_max <= FRAME_BYTES_MAX
        assert send_queue_frames_max > 0
        assert frame_bytes_max <= send_queue_bytes_max
        assert handshake_timeout_ms > 0
        assert connect_timeout_ms > 0
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.listen = listen
        self.secret = secret
        self.on_envelope = on_envelope
        self.frame_bytes_max = frame_bytes_max
        self.send_queue_frames_max = send_queue_frames_max
        self.send_queue_bytes_max = send_queue_bytes_max
        self.handshake_timeout_ms = handshake_timeout_ms
        self.connect_timeout_ms = connect_timeout_ms
        self.rng = random.Random(node_id if seed is None else seed)
        self.stats = TransportStats()
        self._links: dict[int, PeerLink] = {}
        self._inbound: list[_Inbound] = []
        self._refusals_logged: dict[str, str] = {}  # host -> last refusal logged at WARNING.
        self._background: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._peers: dict[int, Address] = {}
        self._set_peers(peers)

    # Lifecycle.

    async def start(self) -> None:
        """Listen, and start dialing every peer. Raises OSError if the address is in use."""
        assert self._server is None, "start called twice"
        self._loop = asyncio.get_running_loop()
        if self.secret is None:
            logger.warning(UNAUTHENTICATED_WARNING)
        host, port = self.listen
        self._server = await asyncio.start_server(self._on_inbound, host, port)
        for link in self._links.values():
            link.start()

    async def stop(self) -> None:
        """Close the server and every connection; queued frames are discarded."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for link in list(self._links.values()):
            await link.stop()
        await asyncio.gather(*self._background, return_exceptions=True)
        inbound = list(self._inbound)
        for connection in inbound:
            connection.dismiss()
        await asyncio.gather(*(c.task for c in inbound), return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    @property
    def listen_address(self) -> Address:
        """The address actually bound (useful with port 0)."""
        assert self._server is not None, "not started"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    @property
    def peers(self) -> dict[int, Address]:
        return dict(self._peers)

    def peer_is_up(self, peer_id: int) -> bool:
        link = self._links.get(peer_id)
        return link is not None and link.is_up

    def queued_frames(self, peer_id: int) -> int:
        link = self._links.get(peer_id)
        return 0 if link is None else len(link.queue)

    # Membership.

    def set_peers(self, peers: dict[int, Address]) -> None:
        """Replace the peer set. New peers are dialed; removed peers' links and inbound
        connections are closed; a peer whose address changed is redialed (its queue kept)."""
        self._set_peers(peers)

    def _set_peers(self, peers: dict[int, Address]) -> None:
        peers = {peer_id: tuple(a) for peer_id, a in peers.items() if peer_id != self.node_id}  # type: ignore[misc]
        running = self._server is not None
        for peer_id in sorted(set(self._links) - set(peers)):
            removed = self._links.pop(peer_id)
            if running:
                self._spawn(removed.stop())
            for connection in self._inbound:
                if connection.peer_id == peer_id:
                    connection.dismiss()
        for peer_id in sorted(peers):
            address = peers[peer_id]
            link = self._links.get(peer_id)
            if link is None:
                link = self._links[peer_id] = PeerLink(self, peer_id, address)
                if running:
                    link.start()
            elif link.address != address:
                link.address = address
                if running:
                    self._spawn(self._restart(link))
        self._peers = peers

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run a housekeeping coroutine, holding a reference so it is not collected."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _restart(self, link: PeerLink) -> None:
        await link.stop()
        if self._server is not None and self._links.get(link.peer_id) is link:
            link.start()

    # Sending.

    def send(self, envelope: Envelope) -> bool:
        """Queue `envelope` for its target; False if it was dropped (and counted).

        Never blocks and never raises for a full queue or an unknown or unreachable peer:
        the core treats a dropped message like a lost one.
        """
        assert envelope.source == self.node_id, "envelope from another node"
        target = envelope.target
        if target == self.node_id:
            assert self._loop is not None, "send to self before start"
            self._loop.call_soon(self.on_envelope, envelope)
            return True
        link = self._links.get(target)
        if link is None:
            self.stats.frames_dropped += 1
            logger.debug("dropped a frame for unknown node %d", target)
            return False
        try:
            frame = encode_envelope(envelope, self.frame_bytes_max)
        except FrameTooLargeError as error:
            self.stats.frames_dropped += 1
            logger.warning("dropped a frame for node %d: %s", target, error)
            return False
        return link.enqueue(frame)

    # Receiving.

    async def _on_inbound(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = _Inbound(writer, task)
        self._inbound.append(connection)
        peer = writer.get_extra_info("peername")
        address = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        try:
            await self._serve_inbound(connection, reader)
        except asyncio.CancelledError:
            # Only loop shutdown cancels a handler; returning normally keeps asyncio quiet.
            pass
        except Exception as error:
            self._note_inbound_failure(connection, address, error)
        finally:
            self._inbound.remove(connection)
            await close_writer(writer)

    def _note_inbound_failure(self, connection: _Inbound, address: str, error: Exception) -> None:
        """Count and log why an inbound connection ended (one line, no traceback unless a bug)."""
        if connection.is_dismissed:
            logger.debug("closed connection from %s", address)
        elif isinstance(error, HandshakeRejected):
            self.stats.handshakes_rejected += 1
            logger.log(
                self._refusal_log_level(address, str(error)),
                "refused peer connection from %s: %s",
                address,
                error,
            )
            with contextlib.suppress(OSError, RuntimeError):
                connection.writer.write(encode_frame(refuse_frame(str(error))))
        elif isinstance(error, RemoteProtocolError):
            self.stats.bad_frames += 1
            logger.warning("closed connection from %s: bad frame: %s", address, error)
        elif isinstance(error, EXPECTED_ERRORS):
            logger.debug("connection from %s ended: %s", address, describe_error(error))
        else:
            logger.error("bug while serving the connection from %s", address, exc_info=error)

    def _refusal_log_level(self, address: str, reason: str) -> int:
        """WARNING for a new (host, reason), DEBUG for its repeats: a misconfigured peer
        redials every few seconds and must not flood the log."""
        host = address.rsplit(":", 1)[0]
        if self._refusals_logged.get(host) == reason:
            return logging.DEBUG
        if len(self._refusals_logged) >= REFUSAL_LOG_HOSTS_MAX:
            self._refusals_logged.clear()
        self._refusals_logged[host] = reason
        return logging.WARNING

    async def _serve_inbound(self, connection: _Inbound, reader: asyncio.StreamReader) -> None:
        frames = FrameReader(reader, self.stats)
        peer_id = await self._accept_handshake(frames, connection.writer)
        # A peer that redials (after a restart, say) replaces its older connection.
        for other in self._inbound:
            if other.peer_id == peer_id and other is not connection:
                other.dismiss()
        connection.peer_id = peer_id
        self.stats.connections_accepted += 1
        logger.debug("inbound connection from peer %d authenticated", peer_id)
        frames.decoder.frame_bytes_max = self.frame_bytes_max
        deliver = self._deliver
        while frames.pending:
            deliver(frames.pending.popleft(), peer_id)
        while True:
            for mapping in await frames.read_frames():
                deliver(mapping, peer_id)

    async def _accept_handshake(self, frames: FrameReader, writer: asyncio.StreamWriter) -> int:
        handshake = ListenerHandshake(self.cluster_id, self.node_id, self._peers, self.secret)
        try:
            async with asyncio.timeout(self.handshake_timeout_ms / 1000):
                writer.write(encode_frame(handshake.on_hello(await frames.next())))
                writer.write(encode_frame(handshake.on_proof(await frames.next())))
        except TimeoutError:
            raise HandshakeRejected(
                f"handshake not completed within {self.handshake_timeout_ms} ms"
            ) from None
        except (EOFError, RemoteProtocolError) as error:
            if isinstance(error, HandshakeRejected):
                raise
            raise HandshakeRejected(f"handshake failed: {describe_error(error)}") from None
        assert handshake.peer_id is not None
        return handshake.peer_id

    def _deliver(self, mapping: dict[str, Any], peer_id: int) -> None:
        envelope = decode_envelope(mapping)
        if envelope.source != peer_id:
            raise RemoteProtocolError(
                f"envelope from node {envelope.source} on node {peer_id}'s connection"
            )
        if envelope.target != self.node_id:
            raise RemoteProtocolError(f"envelope for node {envelope.target} sent to us")
        self.stats.frames_received += 1
        self.on_envelope(envelope)
