"""The Paxos message codec: every message type round-trips, and bad maps are refused.

Pair assertion: `decode_envelope(decode(encode_envelope(e))) == e` for every type in
MESSAGE_TYPES, and no malformed map gets past `decode_envelope` with anything but
RemoteProtocolError.
"""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxdb import wire
from paxdb.errors import RemoteProtocolError, UsageError
from paxdb.ids import Ballot
from paxdb.limits import NODE_ID_MAX
from paxdb.paxos.effects import Envelope
from paxdb.paxos.messages import (
    MESSAGE_TYPES,
    Accept,
    Accepted,
    CatchupReply,
    CatchupRequest,
    Chosen,
    LogEntry,
    Prepare,
    Promise,
    Reject,
)
from paxdb.paxos.values import Value, ValueKind

B = Ballot(7, 2)
VALUE = Value(ValueKind.SQL_BATCH, b"\x00\x01payload" * 50)

SAMPLES = [
    Prepare(B, 0),
    Prepare(Ballot(0, 0), 2**63 - 1),
    Promise(B, 5, None, None),
    Promise(B, 5, Ballot(3, 1), VALUE),
    Promise(B, 5, Ballot(3, 1), Value(ValueKind.NOOP)),
    Accept(B, 9, VALUE, 0),
    Accept(B, 9, Value(ValueKind.MASTER, b"m"), 2**32 - 1),
    Accept(B, 10, VALUE, 5, Ballot(6, 3)),
    Accepted(B, 9),
    Reject(B, 9, Ballot(8, 3)),
    Chosen(B, 9, 12345),
    CatchupRequest(0),
    CatchupRequest(4, 2**62),
    CatchupReply(0, 0, ()),
    CatchupReply(0, 9, (), vote_instance=8, promised=Ballot(12, 3), fenced=True, nonce=77),
    CatchupReply(
        3,
        6,
        (
            LogEntry(3, VALUE, 1),
            LogEntry(4, Value(ValueKind.MEMBERSHIP, b"\x01\x02"), 2),
            LogEntry(5, Value(ValueKind.NOOP), 3),
        ),
    ),
]


def roundtrip(envelope: Envelope) -> Envelope:
    frame = wire.encode_envelope(envelope)
    decoder = wire.FrameDecoder()
    (mapping,) = decoder.feed(frame)
    assert decoder.buffered_bytes == 0
    return wire.decode_envelope(mapping)


def test_samples_cover_every_message_type() -> None:
    assert {type(message) for message in SAMPLES} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(message: Any) -> None:
    envelope = Envelope("main", 1, NODE_ID_MAX, message)
    assert roundtrip(envelope) == envelope
    assert wire.decode_envelope_frame(wire.encode_envelope(envelope)) == envelope


def test_frame_layout_uses_short_keys() -> None:
    frame = wire.encode_envelope(Envelope("g1", 1, 2, Accept(B, 9, VALUE, 77, B)))
    assert int.from_bytes(frame[:4], "big") == len(frame) - 4
    body = msgpack.unpackb(frame[4:])
    assert body == {
        "v": wire.WIRE_VERSION,
        "t": "acc",
        "g": "g1",
        "s": 1,
        "d": 2,
        "b": [7, 2],
        "i": 9,
        "val": [int(ValueKind.SQL_BATCH), VALUE.payload],
        "c": 77,
        "pb": [7, 2],
    }


def test_encode_refuses_a_frame_over_the_limit() -> None:
    envelope = Envelope("main", 1, 2, Accept(B, 1, Value(ValueKind.SQL_BATCH, b"x" * 2000), 0))
    with pytest.raises(wire.FrameTooLargeError):
        wire.encode_envelope(envelope, frame_bytes_max=1000)


def test_generic_frames_round_trip_and_get_a_version() -> None:
    mapping = {"t": "query", "sql": "SELECT ?", "params": [1, "a", b"b", None, 2.5]}
    frame = wire.encode_frame(mapping)
    assert "v" not in mapping  # The caller's map is not modified.
    assert wire.FrameDecoder().feed(frame) == [{**mapping, "v": wire.WIRE_VERSION}]


@pytest.mark.parametrize("mapping", [{}, {"t": ""}, {"t": 5}, {"t": "x", "o": object()}])
def test_encode_frame_refuses_local_misuse(mapping: dict[str, Any]) -> None:
    with pytest.raises(UsageError):
        wire.encode_frame(mapping)


def good_mapping() -> dict[str, Any]:
    return msgpack.unpackb(wire.encode_envelope(Envelope("main", 1, 2, Accept(B, 9, VALUE, 3)))[4:])


BAD_FIELDS: list[tuple[str, Any]] = [
    ("v", 2),
    ("v", "1"),
    ("t", "nope"),
    ("t", ["acc"]),
    ("g", ""),
    ("g", b"main"),
    ("g", "x" * (wire.GROUP_NAME_CHARS_MAX + 1)),
    ("s", -1),
    ("s", True),
    ("d", NODE_ID_MAX + 1),
    ("b", [1]),
    ("b", [1, 2, 3]),
    ("b", [-1, 2]),
    ("b", [1, -2]),
    ("b", [1.0, 2]),
    ("b", {"n": 1}),
    ("b", None),
    ("i", -1),
    ("i", 2**64 - 1),
    ("i", 1.5),
    ("val", [99, b""]),
    ("val", [True, b""]),
    ("val", [1, "text"]),
    ("val", [1]),
    ("val", None),
    ("c", 2**32),
    ("c", None),
]


@pytest.mark.parametrize(("key", "bad"), BAD_FIELDS, ids=lambda x: repr(x)[:20])
def test_a_bad_field_is_a_remote_protocol_error(key: str, bad: Any) -> None:
    mapping = good_mapping()
    mapping[key] = bad
    with pytest.raises(RemoteProtocolError):
        wire.decode_envelope(mapping)


@pytest.mark.parametrize("key", ["g", "s", "d", "b", "i", "val", "c", "v", "t"])
def test_a_missing_field_is_a_remote_protocol_error(key: str) -> None:
    mapping = good_mapping()
    del mapping[key]
    with pytest.raises(RemoteProtocolError):
        wire.decode_envelope(mapping)


def test_promise_vote_must_be_whole() -> None:
    mapping = msgpack.unpackb(
        wire.encode_envelope(Envelope("main", 1, 2, Promise(B, 1, Ballot(1, 1), VALUE)))[4:]
    )
    mapping["av"] = None
    with pytest.raises(RemoteProtocolError, match="accepted ballot"):
        wire.decode_envelope(mapping)


def test_catchup_reply_entries_are_bounded_and_checked() -> None:
    entry = [1, 1, b"x", 5]
    base = {"v": 1, "t": "crep", "g": "main", "s": 1, "d": 2, "lo": 0, "nx": 9}
    assert wire.decode_envelope({**base, "e": [entry]}).message.entries[0].chain == 5
    too_many = {**base, "e": [entry] * (wire.LOG_ENTRIES_MAX + 1)}
    for bad in (
        too_many,
        {**base, "e": [[1, 1, b"x"]]},
        {**base, "e": [[1, 9, b"x", 5]]},
        {**base, "e": "entries"},
        {**base, "e": [[1, 1, b"x", -5]]},
    ):
        with pytest.raises(RemoteProtocolError):
            wire.decode_envelope(bad)


def test_catchup_fence_fields_are_optional_bounded_and_checked() -> None:
    """A rejoining replica's fence reads vote_instance, promised, fenced and the nonce
    (paxos/fence.py): an older peer omits them (defaults: never voted, not fresh),
    and anything out of range is refused."""
    base = {"v": 1, "t": "crep", "g": "main", "s": 1, "d": 2, "lo": 0, "nx": 9, "e": []}
    old = wire.decode_envelope(base).message
    assert (old.vote_instance, old.promised, old.fenced, old.nonce) == (-1, Ballot(0, 0), False, 0)
    full = {**base, "vi": 8, "pr": [12, 3], "f": True, "n": 77}
    message = wire.decode_envelope(full).message
    assert (message.vote_instance, message.promised, message.fenced, message.nonce) == (
        8,
        Ballot(12, 3),
        True,
        77,
    )
    for key, bad in [
        ("vi", -2),
        ("vi", 2**63),
        ("vi", "7"),
        ("vi", None),
        ("pr", [1]),
        ("pr", [-1, 2]),
        ("f", 1),
        ("f", None),
        ("n", -1),
        ("n", 2**63),
        ("n", 1.0),
    ]:
        with pytest.raises(RemoteProtocolError, match=key):
            wire.decode_envelope({**full, key: bad})
    request = {"v": 1, "t": "creq", "g": "main", "s": 1, "d": 2, "i": 3}
    assert wire.decode_envelope(request).message == CatchupRequest(3)
    assert wire.decode_envelope({**request, "n": 5}).message == CatchupRequest(3, 5)
    with pytest.raises(RemoteProtocolError, match="n"):
        wire.decode_envelope({**request, "n": -5})
    # A request without a nonce keeps its old frame: no "n" key at all.
    frame = wire.encode_envelope(Envelope("main", 1, 2, CatchupRequest(3)))
    assert "n" not in msgpack.unpackb(frame[4:])


def test_non_map_is_refused() -> None:
    for bad in (None, [], "acc", 5, b"\x80"):
        with pytest.raises(RemoteProtocolError):
            wire.decode_envelope(bad)  # type: ignore[arg-type]


# Hypothesis: random msgpack-able maps, and mutations of good maps, never escape as
# anything but RemoteProtocolError.

msgpack_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8)
)
msgpack_values = st.recursive(
    msgpack_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=8,
)
KEYS = ["v", "t", "g", "s", "d", "b", "i", "val", "c", "p", "ab", "av", "lo", "nx", "e"]
KEYS += ["vi", "pr", "f", "n"]
TAGS = sorted(wire.ENVELOPE_TAGS)


def check_decode_is_total(mapping: dict[str, Any]) -> None:
    # Go through msgpack so the map holds exactly what a peer could send.
    decoded = msgpack.unpackb(msgpack.packb(mapping, use_bin_type=True))
    try:
        envelope = wire.decode_envelope(decoded)
    except RemoteProtocolError:
        return
    # Whatever decodes must re-encode to an equal envelope (pair assertion).
    assert roundtrip(envelope) == envelope


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), msgpack_values, max_size=10))
def test_random_maps_are_refused_cleanly(mapping: dict[str, Any]) -> None:
    check_decode_is_total(mapping)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(SAMPLES),
    st.sampled_from(TAGS),
    st.dictionaries(st.sampled_from(KEYS[2:]), msgpack_values, max_size=3),
)
def test_mutated_good_maps_are_refused_cleanly(
    message: Any, tag: str, overrides: dict[str, Any]
) -> None:
    mapping = msgpack.unpackb(wire.encode_envelope(Envelope("main", 1, 2, message))[4:])
    mapping["t"] = tag
    mapping.update(overrides)
    check_decode_is_total(mapping)
