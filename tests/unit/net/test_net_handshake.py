"""The handshake state machines, without sockets: who gets in and who is refused."""

from __future__ import annotations

from typing import Any

import pytest

from paxdb.net.handshake import (
    DialerHandshake,
    HandshakeRejected,
    ListenerHandshake,
    refuse_frame,
)

CLUSTER = "c1"
SECRET = b"k" * 32


def run(
    dialer: DialerHandshake, listener: ListenerHandshake
) -> tuple[DialerHandshake, ListenerHandshake]:
    welcome = listener.on_hello(dialer.hello())
    ready = listener.on_proof(dialer.on_welcome(welcome))
    dialer.on_ready(ready)
    return dialer, listener


def pair(
    dialer_secret: bytes | None = SECRET,
    listener_secret: bytes | None = SECRET,
    dialer_cluster: str = CLUSTER,
    dialer_id: int = 1,
    dialed_id: int = 2,
    known: frozenset[int] = frozenset({1, 3}),
) -> tuple[DialerHandshake, ListenerHandshake]:
    return (
        DialerHandshake(dialer_cluster, dialer_id, dialed_id, dialer_secret),
        ListenerHandshake(CLUSTER, 2, known, listener_secret),
    )


@pytest.mark.parametrize("secret", [SECRET, None])
def test_members_get_in(secret: bytes | None) -> None:
    dialer, listener = run(*pair(secret, secret))
    assert dialer.is_done
    assert listener.is_done
    assert listener.peer_id == 1


def test_the_dialer_refuses_a_listener_with_another_secret() -> None:
    dialer, listener = pair(SECRET, b"other")
    welcome = listener.on_hello(dialer.hello())
    with pytest.raises(HandshakeRejected, match="bad proof"):
        dialer.on_welcome(welcome)


def test_the_listener_refuses_a_dialer_with_another_secret() -> None:
    dialer, listener = pair(b"other", SECRET)
    welcome = listener.on_hello(dialer.hello())
    # The dialer cannot check the listener's proof against its own secret...
    with pytest.raises(HandshakeRejected):
        dialer.on_welcome(welcome)
    # ...and a dialer that skipped the check still cannot prove itself.
    with pytest.raises(HandshakeRejected, match="bad proof"):
        listener.on_proof({"t": "proof", "m": b"\x00" * 32})
    assert listener.peer_id is None


def test_a_secretless_dialer_is_refused_by_a_listener_with_a_secret() -> None:
    dialer, listener = pair(None, SECRET)
    listener.on_hello(dialer.hello())
    with pytest.raises(HandshakeRejected):
        listener.on_proof({"t": "proof", "m": b""})


def test_a_proof_from_another_session_does_not_replay() -> None:
    dialer, listener = pair()
    run(dialer, listener)
    old_proof = dialer.on_welcome(listener.on_hello(dialer.hello()))
    _, fresh_listener = pair()
    fresh_listener.on_hello(dialer.hello())  # Same dialer nonce, new listener nonce.
    with pytest.raises(HandshakeRejected):
        fresh_listener.on_proof(old_proof)


def test_the_listener_proof_cannot_be_reflected_as_the_dialer_proof() -> None:
    dialer, listener = pair()
    welcome = listener.on_hello(dialer.hello())
    with pytest.raises(HandshakeRejected):
        listener.on_proof({"t": "proof", "m": welcome["m"]})


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"dialer_cluster": "c2"}, "wrong cluster"),
        ({"dialer_id": 9}, "not a peer"),
        ({"dialer_id": 2}, "not a peer"),
        ({"dialed_id": 5}, "not the node you dialed"),
    ],
)
def test_the_listener_refuses_strangers(kwargs: dict[str, Any], reason: str) -> None:
    dialer, listener = pair(**kwargs)
    with pytest.raises(HandshakeRejected, match=reason):
        listener.on_hello(dialer.hello())


@pytest.mark.parametrize(
    "hello",
    [
        {"t": "proof"},
        {"t": "hello", "c": "c1", "s": 1, "d": 2},
        {"t": "hello", "c": "c1", "s": 1, "d": 2, "n": b"short"},
        {"t": "hello", "c": "c1", "s": "1", "d": 2, "n": b"n" * 16},
        {"t": "hello", "c": "c1", "s": -1, "d": 2, "n": b"n" * 16},
        {"t": "hello", "c": 5, "s": 1, "d": 2, "n": b"n" * 16},
    ],
)
def test_malformed_hellos_are_refused(hello: dict[str, Any]) -> None:
    with pytest.raises(HandshakeRejected):
        ListenerHandshake(CLUSTER, 2, {1}, SECRET).on_hello(hello)


def test_the_dialer_refuses_the_wrong_node_and_reports_refusals() -> None:
    dialer, listener = pair(dialed_id=2)
    welcome = listener.on_hello(dialer.hello())
    with pytest.raises(HandshakeRejected, match="not node 2"):
        dialer.on_welcome({**welcome, "s": 3})
    with pytest.raises(HandshakeRejected, match="peer refused the handshake: go away"):
        dialer.on_welcome(refuse_frame("go away"))
