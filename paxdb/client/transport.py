"""Blocking request/reply transport of the driver, with failover and retries.

Theory of operation. A `Link` is one TCP connection to one node's client port: plain
blocking socket, TCP_NODELAY, a `wire.FrameDecoder`. `Link.call` sends one frame and
reads until the reply carrying the same request id arrives (a stale reply to an earlier
request is skipped). Any failure of the connection (refused, reset, closed, timed out,
undecodable bytes) raises `LinkFailure` with a short reason, and the link is discarded:
a connection whose state is unknown (a reply may still be on the way) is never reused.

`Cluster` knows every node address of the URL and caches one Link per address. `call`
runs one logical request until it gets an answer or the deadline passes:

- Order: the address that answered last (or the known master, for writes and
  master/linearizable reads) first, then the others in URL order, round and round.
- A master hint (`ExecuteReply.master`, "host:port") is tried next, without waiting.
- Retried: a LinkFailure; a reply error NotMaster or ProposalDropped (certainly not
  applied); ProposalTimeout (perhaps applied: the retry carries the same client id and
  sequence number, so the node's dedupe table returns the first result instead of
  applying twice); OperationalError (a node that cannot serve right now), except that
  the same OperationalError message twice in a row is taken as the statement's result.
- Raised at once: every other error (IntegrityError, ProgrammingError, ...): those are
  results, the same on every replica.
- Between attempts the caller waits a capped exponential backoff (BACKOFF_S_MIN doubling
  to BACKOFF_S_MAX). When the deadline passes, OperationalError says what was tried.

Every attempt for one logical request sends the *same* request body (only the request
id, a per-connection counter, changes): the sequence number is allocated by the caller
once, never per attempt. That is what makes retries exactly-once (DESIGN.md invariant 6).
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

from paxdb import errors
from paxdb.client import protocol
from paxdb.client.protocol import ClientMessage, ExecuteReply
from paxdb.client.url import split_address
from paxdb.errors import OperationalError, RemoteProtocolError
from paxdb.sql.requests import ErrorInfo
from paxdb.wire import FrameDecoder

BACKOFF_S_MIN = 0.02  # First wait between attempts.
BACKOFF_S_MAX = 0.5  # Waits double up to this.
CONNECT_TIMEOUT_S_MAX = 2.0  # A TCP connect on a working network takes far less.
ATTEMPT_TIMEOUT_S_MIN = 1.0  # One attempt may wait at least this long for its reply...
# ...or timeout / (number of nodes) if that is longer, so that one hung node cannot eat
# the whole deadline while others could answer.
RECV_BYTES = 256 * 1024  # One recv(); replies with many rows take several.
REQUEST_ID_MAX = protocol.REQUEST_ID_MAX

_UNSPECIFIED_HOSTS = frozenset({"0.0.0.0", "::", ""})
# Reply error classes that mean "try again, maybe elsewhere".
RETRY_CLASSES = frozenset({"NotMaster", "ProposalDropped", "ProposalTimeout", "OperationalError"})
# Error classes a node may name that ErrorInfo.to_exception (SQLite's mapping) does not know.
_PAXDB_ERROR_CLASSES: dict[str, type[errors.Error]] = {
    "NotMaster": errors.NotMaster,
    "ProposalDropped": errors.ProposalDropped,
    "ProposalTimeout": errors.ProposalTimeout,
    "InterfaceError": errors.InterfaceError,  # The node could not read our request.
}


class Unavailable(OperationalError):
    """No node gave an answer within the timeout (paxdb extension of OperationalError).

    For a write the outcome is unknown: it may have been applied. Sending the same
    request again (same client id and sequence number, as `Connection.commit()` does
    after this error) is safe: it is never applied twice.
    """


class LinkFailure(Exception):
    """The connection to one node failed; `reason` is a few words for the error message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def reply_exception(info: ErrorInfo) -> errors.Error:
    """The paxdb.errors instance for an error reply (paxdb's own classes included)."""
    cls = _PAXDB_ERROR_CLASSES.get(info.class_name)
    if cls is None:
        return info.to_exception()
    exception: errors.Error = cls(info.message)
    exception.sqlite_errorcode = info.code  # type: ignore[attr-defined]
    return exception


class Link:
    """One blocking TCP connection to one node. Not thread-safe (threadsafety = 1)."""

    __slots__ = ("address", "_socket", "_decoder", "_view", "_timeout_s")

    def __init__(self, address: str, timeout_s: float) -> None:
        """Connect to `address` ("host:port") within `timeout_s`; LinkFailure if not."""
        self.address = address
        host, port = split_address(address)
        try:
            self._socket = socket.create_connection((host, port), timeout=timeout_s)
        except OSError as error:
            raise LinkFailure(_reason(error)) from None
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._timeout_s = timeout_s  # What the socket's timeout is set to.
        self._decoder = FrameDecoder()
        # recv_into one buffer kept for the link's life: recv(n) would allocate n bytes
        # per call, and at this size the allocator maps and unmaps pages every time
        # (measured: ~40 us per round trip).
        self._view = memoryview(bytearray(RECV_BYTES))

    def call(self, frame: bytes, request_id: int, timeout_s: float) -> ClientMessage:
        """Send `frame` and return the reply whose id is `request_id`, within `timeout_s`."""
        sock = self._socket
        deadline = time.monotonic() + timeout_s
        try:
            if timeout_s != self._timeout_s:
                sock.settimeout(timeout_s)
                self._timeout_s = timeout_s
            sock.sendall(frame)
            view = self._view
            while True:
                size = sock.recv_into(view)
                if not size:
                    raise LinkFailure("closed by the node")
                for mapping in self._decoder.feed(view[:size]):
                    if mapping.get("id") == request_id:
                        return protocol.decode(mapping)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LinkFailure("timed out")
                sock.settimeout(remaining)
                self._timeout_s = remaining
        except OSError as error:
            raise LinkFailure(_reason(error)) from None
        except RemoteProtocolError as error:
            raise LinkFailure(f"protocol error: {error}") from None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()


def _reason(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
        return "connection reset"
    if isinstance(error, socket.gaierror):
        return "unknown host"
    return error.strerror or type(error).__name__


class _Attempts:
    """What was tried for one logical request: address -> (last reason, count)."""

    __slots__ = ("tried", "last_operational")

    def __init__(self) -> None:
        self.tried: dict[str, tuple[str, int]] = {}
        self.last_operational: str | None = None

    def add(self, address: str, reason: str) -> None:
        count = self.tried.get(address, ("", 0))[1]
        self.tried[address] = (reason, count + 1)

    def describe(self) -> str:
        parts = []
        for address, (reason, count) in self.tried.items():
            times = f", {count} times" if count > 1 else ""
            parts.append(f"{address} ({reason}{times})")
        return ", ".join(parts) if parts else "nothing (no time left)"


FrameBuilder = Callable[[int], bytes]


class Cluster:
    """The nodes of one connection: cached links, preferred addresses, failover loop."""

    def __init__(self, addresses: tuple[str, ...], timeout_s: float) -> None:
        assert addresses, "a cluster needs at least one address"
        assert timeout_s > 0
        self.addresses = addresses
        self.timeout_s = timeout_s
        self._links: dict[str, Link] = {}
        self._request_id = 0
        self._preferred: str | None = None  # Answered last.
        self._master: str | None = None  # Named by a node as the master.
        # One attempt may wait this long, so that a hung node cannot eat the whole
        # timeout while another could answer (see ATTEMPT_TIMEOUT_S_MIN).
        self._attempt_timeout_s = min(
            timeout_s, max(ATTEMPT_TIMEOUT_S_MIN, timeout_s / len(addresses))
        )

    def close(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()

    def call(self, build: FrameBuilder, *, to_master: bool, is_write: bool) -> ClientMessage:
        """Send a request (framed by `build(request_id)`) until a node answers it.

        Returns the reply (an ExecuteReply without error, or a StatusReply). Raises the
        reply's error if it is a result, or Unavailable once `timeout_s` has passed.
        The first attempt is the hot path: one dict lookup for the link and one call.
        """
        deadline = time.monotonic() + self.timeout_s
        first = self._master if to_master and self._master is not None else self._preferred
        if first is None:
            first = self.addresses[0]
        attempts = _Attempts()
        reply, hint = self._attempt(first, build, self._attempt_timeout_s, attempts)
        if reply is not None:
            return reply
        return self._retry(build, deadline, attempts, first, hint, is_write)

    def _retry(
        self,
        build: FrameBuilder,
        deadline: float,
        attempts: _Attempts,
        first: str,
        hint: str | None,
        is_write: bool,
    ) -> ClientMessage:
        """Attempts after the first failed: the hint, else the other nodes in URL order
        and then `first` again, round and round, with backoff, until the deadline."""
        order = [a for a in self.addresses if a != first] + [first]
        backoff_s = BACKOFF_S_MIN
        turn = 0
        while True:
            if hint is None or hint in attempts.tried:
                # A hint to a node not yet tried is followed at once; anything else waits,
                # so that two nodes naming each other cannot make us spin.
                time.sleep(max(0.0, min(backoff_s, deadline - time.monotonic())))
                backoff_s = min(backoff_s * 2, BACKOFF_S_MAX)
            if hint is not None:
                address = hint
            else:
                address = order[turn % len(order)]
                turn += 1
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._gave_up(attempts, is_write)
            timeout_s = min(remaining, self._attempt_timeout_s)
            reply, hint = self._attempt(address, build, timeout_s, attempts)
            if reply is not None:
                return reply

    def _attempt(
        self, address: str, build: FrameBuilder, timeout_s: float, attempts: _Attempts
    ) -> tuple[ClientMessage | None, str | None]:
        """One try at one node: (reply, None) on success, (None, master hint) to retry."""
        self._request_id = self._request_id + 1 if self._request_id < REQUEST_ID_MAX else 1
        request_id = self._request_id
        try:
            link = self._link(address, timeout_s)
            reply = link.call(build(request_id), request_id, timeout_s)
        except LinkFailure as failure:
            self._drop(address)
            attempts.add(address, failure.reason)
            if self._master == address:
                self._master = None
            return None, None
        if isinstance(reply, ExecuteReply):
            if reply.master is not None:
                self._master = reply.master
            if reply.error is not None:
                hint = self._retry_or_raise(address, reply, attempts)
                return None, hint
        elif not isinstance(reply, protocol.StatusReply):
            self._drop(address)
            attempts.add(address, f"protocol error: unexpected {type(reply).__name__}")
            return None, None
        self._preferred = address
        return reply, None

    def _retry_or_raise(self, address: str, reply: ExecuteReply, attempts: _Attempts) -> str | None:
        """Record a retryable error and return the master hint to try next, or raise."""
        info = reply.error
        assert info is not None
        if info.class_name not in RETRY_CLASSES:
            raise reply_exception(info)
        if info.class_name == "OperationalError":
            if info.message == attempts.last_operational:
                raise reply_exception(info)  # The same answer twice: it is the result.
            attempts.last_operational = info.message
        attempts.add(address, f"{info.class_name}: {info.message}")
        if self._preferred == address:
            self._preferred = None
        hint = reply.master
        if hint is None or hint == address:
            return None
        if hint not in self.addresses:
            try:
                host, _ = split_address(hint)
            except errors.InterfaceError:
                return None  # A malformed hint is ignored, not fatal.
            if host in _UNSPECIFIED_HOSTS:
                return None  # A node listening on every interface names no reachable host.
        return hint

    def _link(self, address: str, timeout_s: float) -> Link:
        link = self._links.get(address)
        if link is None:
            link = Link(address, min(timeout_s, CONNECT_TIMEOUT_S_MAX))
            self._links[address] = link
        return link

    def _drop(self, address: str) -> None:
        link = self._links.pop(address, None)
        if link is not None:
            link.close()

    def _gave_up(self, attempts: _Attempts, is_write: bool) -> Unavailable:
        unknown = (
            "; the write may or may not have been applied (a retry with the same sequence "
            "number is never applied twice)"
            if is_write
            else ""
        )
        return Unavailable(
            f"no node answered: tried {attempts.describe()} within {float(self.timeout_s)} s"
            f"{unknown}; check that the nodes are running and reachable"
        )
