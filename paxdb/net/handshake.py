"""The peer handshake, sans I/O: two small state machines that turn frames into frames.

Theory of operation. The node that dials (D) and the node that listens (L) exchange four
frames before any envelope flows on a connection:

    D -> L  hello    {c: cluster id, s: D's id, d: L's id (as D believes), n: nonce_D}
    L -> D  welcome  {c: cluster id, s: L's id, d: D's id, n: nonce_L, m: mac_L}
    D -> L  proof    {m: mac_D}
    L -> D  ready    {}

    mac_X = HMAC-SHA256(secret, LABEL | role X | nonce_D | nonce_L | D's id | L's id | cluster id)

Each side proves that it knows the shared secret, bound to this connection by both fresh
nonces and to the direction by the role label, so a recorded proof cannot be replayed
and L's proof cannot be reflected back as D's. MACs are compared with
`hmac.compare_digest`. Either side refuses a wrong cluster id, an unexpected node id or a
bad MAC by raising `HandshakeRejected` (the listener also sends a `refuse` frame with the
reason, so the dialer's log says why). D sends envelopes only after `ready`, so the
listener never has to decode an envelope from an unauthenticated peer.

Without a secret (None) the MACs are empty and unchecked: the handshake still keeps out
nodes of another cluster and unknown node ids, but not an attacker. The transport warns
about that once at start.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Collection
from typing import Any

from paxdb.errors import RemoteProtocolError
from paxdb.limits import NODE_ID_MAX

NONCE_BYTES = 16
MAC_BYTES = 32  # SHA-256.
CLUSTER_ID_CHARS_MAX = 256
REASON_CHARS_MAX = 200  # How much of a peer's refusal reason we keep for the log.
HANDSHAKE_FRAME_BYTES_MAX = 4096  # An unauthenticated peer may not make us buffer more.
_LABEL = b"paxdb-peer-handshake-v1\x00"
_ROLE_DIALER = b"dialer\x00"
_ROLE_LISTENER = b"listener"
_ID_BYTES = 8

TAG_HELLO = "hello"
TAG_WELCOME = "welcome"
TAG_PROOF = "proof"
TAG_READY = "ready"
TAG_REFUSE = "refuse"


class HandshakeRejected(RemoteProtocolError):
    """The other side is not a member of this cluster, or could not prove it."""


def new_nonce() -> bytes:
    """A fresh unpredictable nonce (from the OS, never from a seeded PRNG)."""
    return secrets.token_bytes(NONCE_BYTES)


def compute_mac(
    secret: bytes | None,
    role: bytes,
    cluster_id: str,
    dialer_id: int,
    listener_id: int,
    nonce_dialer: bytes,
    nonce_listener: bytes,
) -> bytes:
    """The proof of `role`; b"" without a secret. Every input has a fixed width except the
    cluster id, which comes last, so no two different inputs share a message."""
    if secret is None:
        return b""
    message = b"".join(
        (
            _LABEL,
            role,
            nonce_dialer,
            nonce_listener,
            dialer_id.to_bytes(_ID_BYTES, "big"),
            listener_id.to_bytes(_ID_BYTES, "big"),
            cluster_id.encode(),
        )
    )
    return hmac.new(secret, message, hashlib.sha256).digest()


def _field(mapping: dict[str, Any], key: str, kind: type) -> Any:
    value = mapping.get(key)
    if type(value) is not kind:
        raise HandshakeRejected(f"handshake field {key!r} missing or not {kind.__name__}")
    return value


def _node_id(mapping: dict[str, Any], key: str) -> int:
    value = _field(mapping, key, int)
    if not 0 <= value <= NODE_ID_MAX:
        raise HandshakeRejected(f"handshake field {key!r} is not a node id")
    return int(value)


def _nonce(mapping: dict[str, Any]) -> bytes:
    nonce = _field(mapping, "n", bytes)
    if len(nonce) != NONCE_BYTES:
        raise HandshakeRejected(f"nonce must be {NONCE_BYTES} bytes")
    return bytes(nonce)


def _expect(mapping: dict[str, Any], tag: str) -> None:
    got = mapping.get("t")
    if got == TAG_REFUSE:
        reason = mapping.get("r")
        reason = reason[:REASON_CHARS_MAX] if type(reason) is str else "no reason given"
        raise HandshakeRejected(f"peer refused the handshake: {reason}")
    if got != tag:
        raise HandshakeRejected(f"expected a {tag!r} frame during the handshake")


def _check_mac(secret: bytes | None, expected: bytes, got: bytes) -> None:
    if secret is None:
        return
    if len(got) != MAC_BYTES or not hmac.compare_digest(expected, got):
        raise HandshakeRejected("bad proof of the cluster secret (are both nodes given the same?)")


def refuse_frame(reason: str) -> dict[str, Any]:
    return {"t": TAG_REFUSE, "r": reason[:REASON_CHARS_MAX]}


class DialerHandshake:
    """The dialing side: `hello()`, then `on_welcome(frame) -> proof`, then `on_ready(frame)`."""

    def __init__(self, cluster_id: str, node_id: int, peer_id: int, secret: bytes | None) -> None:
        assert 0 < len(cluster_id) <= CLUSTER_ID_CHARS_MAX
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.peer_id = peer_id
        self.secret = secret
        self.nonce = new_nonce()
        self.is_done = False

    def hello(self) -> dict[str, Any]:
        return {
            "t": TAG_HELLO,
            "c": self.cluster_id,
            "s": self.node_id,
            "d": self.peer_id,
            "n": self.nonce,
        }

    def on_welcome(self, mapping: dict[str, Any]) -> dict[str, Any]:
        _expect(mapping, TAG_WELCOME)
        if _field(mapping, "c", str) != self.cluster_id:
            raise HandshakeRejected("peer belongs to another cluster")
        if _node_id(mapping, "s") != self.peer_id or _node_id(mapping, "d") != self.node_id:
            raise HandshakeRejected(f"the node at this address is not node {self.peer_id}")
        nonce_listener = _nonce(mapping)
        args = (self.cluster_id, self.node_id, self.peer_id, self.nonce, nonce_listener)
        expected = compute_mac(self.secret, _ROLE_LISTENER, *args)
        _check_mac(self.secret, expected, _field(mapping, "m", bytes))
        return {"t": TAG_PROOF, "m": compute_mac(self.secret, _ROLE_DIALER, *args)}

    def on_ready(self, mapping: dict[str, Any]) -> None:
        _expect(mapping, TAG_READY)
        self.is_done = True


class ListenerHandshake:
    """The listening side: `on_hello(frame) -> welcome`, then `on_proof(frame) -> ready`.

    Invariant: `peer_id` is set only once the dialer has proved itself (`is_done`).
    """

    def __init__(
        self,
        cluster_id: str,
        node_id: int,
        known_ids: Collection[int],
        secret: bytes | None,
    ) -> None:
        self.cluster_id = cluster_id
        self.node_id = node_id
        self.known_ids = known_ids
        self.secret = secret
        self.nonce = new_nonce()
        self._claimed_id: int | None = None
        self._expected_mac = b""
        self.peer_id: int | None = None
        self.is_done = False

    def on_hello(self, mapping: dict[str, Any]) -> dict[str, Any]:
        _expect(mapping, TAG_HELLO)
        if _field(mapping, "c", str) != self.cluster_id:
            raise HandshakeRejected("wrong cluster id")
        claimed_id = _node_id(mapping, "s")
        if claimed_id not in self.known_ids or claimed_id == self.node_id:
            raise HandshakeRejected(f"node {claimed_id} is not a peer of node {self.node_id}")
        if _node_id(mapping, "d") != self.node_id:
            raise HandshakeRejected(f"this is node {self.node_id}, not the node you dialed")
        nonce_dialer = _nonce(mapping)
        args = (self.cluster_id, claimed_id, self.node_id, nonce_dialer, self.nonce)
        self._claimed_id = claimed_id
        self._expected_mac = compute_mac(self.secret, _ROLE_DIALER, *args)
        return {
            "t": TAG_WELCOME,
            "c": self.cluster_id,
            "s": self.node_id,
            "d": claimed_id,
            "n": self.nonce,
            "m": compute_mac(self.secret, _ROLE_LISTENER, *args),
        }

    def on_proof(self, mapping: dict[str, Any]) -> dict[str, Any]:
        assert self._claimed_id is not None, "on_proof before on_hello"
        _expect(mapping, TAG_PROOF)
        _check_mac(self.secret, self._expected_mac, _field(mapping, "m", bytes))
        self.peer_id = self._claimed_id
        self.is_done = True
        return {"t": TAG_READY}
