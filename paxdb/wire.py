"""Framing and the message codec: pure functions over bytes and dicts (no sockets, no asyncio).

Theory of operation. A frame is a 4-byte big-endian body length followed by a body that
is one msgpack map. Every map carries `v` (the protocol version, an int) and `t` (a type
tag, a str). Paxos envelopes add `g` (group), `s` (source node id), `d` (target node id)
and the message's own fields under short keys:

    prep  Prepare         b, i
    prom  Promise         b, i, ab (ballot or nil), av (value or nil; nil iff ab is nil)
    acc   Accept          b, i, val, c (chain_previous), pb (previous_ballot or nil)
    accd  Accepted        b, i
    rej   Reject          b, i, p (promised)
    chos  Chosen          b, i, c (chain)
    creq  CatchupRequest  i, n (nonce; optional, 0 when absent)
    crep  CatchupReply    lo (instance_min), nx (instance_next), e (entries),
                          vi (vote_instance, -1..), pr (promised ballot), f (fenced),
                          n (nonce); vi, pr, f and n are optional (older peers omit them)

A ballot is [number, node_id], a value [kind, payload bytes], a log entry
[instance, kind, payload, chain]. The client protocol reuses `encode_frame` and
`FrameDecoder` with its own tags.

Two layers of checking, both against untrusted input:
1. `FrameDecoder.feed` checks the declared length against `frame_bytes_max` *before*
   buffering a body, so a peer can never make us hold more than one partial frame of at
   most `frame_bytes_max` bytes plus the chunk we were handed. It then checks that the
   body is one msgpack map with a supported `v` and a str `t`.
2. `decode_envelope` checks every field of a Paxos message: types, ranges and lengths.

Anything wrong raises `RemoteProtocolError` and nothing else (no TypeError, KeyError or
AssertionError escapes): the caller drops that connection and counts it. Encoding and
decoding are paired: `decode_envelope(decode(encode_envelope(e))) == e` for every
well-formed envelope (tests/unit/wire asserts it for every message type).

The codec is on the hot path (one Accept/Accepted pair per write batch), so it uses one
hand-written function per message type, looked up by type or tag in a dict; no
reflection per call.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from typing import Any

import msgpack  # type: ignore[import-untyped]

from paxdb.errors import RemoteProtocolError, UsageError
from paxdb.ids import BALLOT_ZERO, Ballot
from paxdb.limits import CATCHUP_VALUES_MAX, FRAME_BYTES_MAX, NODE_ID_MAX
from paxdb.paxos.effects import Envelope
from paxdb.paxos.fence import NONCE_MAX as FENCE_NONCE_MAX
from paxdb.paxos.messages import (
    Accept,
    Accepted,
    CatchupReply,
    CatchupRequest,
    Chosen,
    LogEntry,
    Message,
    Prepare,
    Promise,
    Reject,
)
from paxdb.paxos.values import Value, ValueKind

WIRE_VERSION = 1  # Bumped on any incompatible change to a frame's keys or meaning.
FRAME_HEADER_BYTES = 4
FRAME_LENGTH_LIMIT = 2**32 - 1  # The largest body length a 4-byte header can state.
TAG_CHARS_MAX = 32
GROUP_NAME_CHARS_MAX = 128
INSTANCE_MAX = 2**63 - 1  # Instances and ballot numbers fit a signed 64-bit SQLite integer.
BALLOT_NUMBER_MAX = 2**63 - 1
CHAIN_MAX = 2**32 - 1  # A chain value is a CRC32.
LOG_ENTRIES_MAX = CATCHUP_VALUES_MAX  # Entries in one CatchupReply.
NONCE_MAX = 2**63 - 1  # A fence probe's nonce (the core draws them below this).
assert FENCE_NONCE_MAX <= NONCE_MAX
_DESCRIBE_CHARS_MAX = 40  # How much of a bad field an error message quotes.

_HEADER = struct.Struct(">I")
assert _HEADER.size == FRAME_HEADER_BYTES
assert FRAME_BYTES_MAX <= FRAME_LENGTH_LIMIT


class FrameTooLargeError(UsageError):
    """We were asked to encode a frame larger than the receiver's `frame_bytes_max`."""


# Framing.

_local = threading.local()


def _packer() -> msgpack.Packer:
    """One reusable Packer per thread: reusing it saves about 1 us per frame over packb."""
    packer: msgpack.Packer | None = getattr(_local, "packer", None)
    if packer is None:
        packer = msgpack.Packer(use_bin_type=True)
        _local.packer = packer
    return packer


def _frame(mapping: dict[str, Any], frame_bytes_max: int) -> bytes:
    body: bytes = _packer().pack(mapping)
    if len(body) > frame_bytes_max:
        raise FrameTooLargeError(
            f"frame {mapping.get('t')!r} of {len(body)} bytes exceeds frame_bytes_max "
            f"({frame_bytes_max}); split the payload"
        )
    return _HEADER.pack(len(body)) + body


def encode_frame(mapping: dict[str, Any], frame_bytes_max: int = FRAME_BYTES_MAX) -> bytes:
    """One whole frame (header + msgpack body) for `mapping`, which must have a str `t`.

    `v` is set to WIRE_VERSION (the caller's mapping is not modified). Values must be
    msgpack types (None, bool, int, float, str, bytes, list, tuple, dict); bytes travel
    as msgpack bin and str as msgpack str, so they decode back to the same Python types.
    """
    tag = mapping.get("t")
    if type(tag) is not str or not 0 < len(tag) <= TAG_CHARS_MAX:
        raise UsageError(f"a frame needs a str tag 't' of 1..{TAG_CHARS_MAX} chars")
    if mapping.get("v") != WIRE_VERSION:
        mapping = {**mapping, "v": WIRE_VERSION}
    try:
        return _frame(mapping, frame_bytes_max)
    except (TypeError, ValueError, OverflowError) as error:
        raise UsageError(f"frame {tag!r} holds a value msgpack cannot encode: {error}") from None


def _describe(value: object) -> str:
    """A short, cheap description of an untrusted value for an error message."""
    if isinstance(value, int | str) and not isinstance(value, bool):
        text = repr(value)
        if len(text) <= _DESCRIBE_CHARS_MAX:
            return text
    return type(value).__name__


def _unpack_body(body: memoryview) -> dict[str, Any]:
    """Decode one frame body and check that it is a map with a supported `v` and a str `t`."""
    try:
        # msgpack >= 1.0 defaults are what we need (raw=False: str stays str, bin stays
        # bytes; strict_map_key=True: map keys are str or bytes; use_list=True; lengths
        # bounded by the body's size). Passing them as keywords would cost 0.5 us a frame.
        mapping = msgpack.unpackb(body)
    except (ValueError, TypeError, msgpack.UnpackException) as error:
        reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        raise RemoteProtocolError(f"frame body is not one msgpack object ({reason})") from None
    if type(mapping) is not dict:
        raise RemoteProtocolError(f"frame body is a {_describe(mapping)}, not a map")
    _check_header(mapping)
    return mapping


def _check_header(mapping: dict[str, Any]) -> None:
    version = mapping.get("v")
    if type(version) is not int:
        raise RemoteProtocolError(f"frame has no int protocol version 'v': {_describe(version)}")
    if version != WIRE_VERSION:
        raise RemoteProtocolError(
            f"peer speaks protocol version {_describe(version)}, this node speaks "
            f"{WIRE_VERSION}; upgrade the older node"
        )
    tag = mapping.get("t")
    if type(tag) is not str or not 0 < len(tag) <= TAG_CHARS_MAX:
        raise RemoteProtocolError(f"frame has no valid type tag 't': {_describe(tag)}")


class FrameDecoder:
    """Turns a byte stream into frame maps, h11 style: `feed(data) -> [map, ...]`.

    Invariants:
    - After `feed` returns, at most one partial frame is buffered, and it is shorter than
      FRAME_HEADER_BYTES + frame_bytes_max (`buffered_bytes` says how much).
    - A declared length over `frame_bytes_max` is refused as soon as its header arrives,
      before any of its body is kept.
    - After the first RemoteProtocolError the decoder is dead: its buffer is released and
      every later `feed` raises again, because the stream has lost its frame boundaries.
    """

    __slots__ = ("frame_bytes_max", "_buffer", "_error")

    def __init__(self, frame_bytes_max: int = FRAME_BYTES_MAX) -> None:
        assert 0 < frame_bytes_max <= FRAME_LENGTH_LIMIT
        # Public and writable: a transport raises it once a peer has authenticated.
        self.frame_bytes_max = frame_bytes_max
        self._buffer = bytearray()
        self._error: RemoteProtocolError | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    @property
    def is_dead(self) -> bool:
        return self._error is not None

    def feed(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        """Add `data` and return every frame it completes, in order."""
        if self._error is not None:
            raise RemoteProtocolError(f"stream already broken: {self._error}")
        try:
            return self._feed(data)
        except RemoteProtocolError as error:
            self._error = error
            self._buffer = bytearray()
            raise

    def _feed(self, data: bytes | bytearray | memoryview) -> list[dict[str, Any]]:
        buffer = self._buffer
        if not buffer:
            # Common case: nothing pending, so frames are cut straight out of `data` and
            # only an incomplete tail is copied into the buffer.
            frames, offset = self._split(data)
            if offset < len(data):
                self._buffer = bytearray(memoryview(data)[offset:])
            return frames
        buffer += data
        frames, offset = self._split(buffer)
        if offset:
            del buffer[:offset]
        return frames

    def _split(self, data: bytes | bytearray | memoryview) -> tuple[list[dict[str, Any]], int]:
        """The whole frames at the start of `data`, and the offset just past the last one."""
        frames: list[dict[str, Any]] = []
        frame_bytes_max = self.frame_bytes_max
        offset = 0
        with memoryview(data) as view:
            size = len(view)
            while size - offset >= FRAME_HEADER_BYTES:
                (length,) = _HEADER.unpack_from(view, offset)
                if length > frame_bytes_max:
                    raise RemoteProtocolError(
                        f"frame of {length} bytes exceeds frame_bytes_max ({frame_bytes_max})"
                    )
                start = offset + FRAME_HEADER_BYTES
                end = start + length
                if end > size:
                    break
                frames.append(_unpack_body(view[start:end]))
                offset = end
        return frames, offset


# Field checks for untrusted input. Each raises RemoteProtocolError naming the field.


def _fail(field: str, value: object, expected: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"field {field!r} must be {expected}, got {_describe(value)}")


def _uint(value: object, maximum: int, field: str) -> int:
    if type(value) is not int or not 0 <= value <= maximum:
        raise _fail(field, value, f"an int in [0, {maximum}]")
    return value


_BALLOT_CACHE_MAX = 64  # Recently decoded ballots kept for reuse; cleared when full.
_ballot_cache: dict[tuple[int, int], Ballot] = {}


def _ballot(value: object, field: str) -> Ballot:
    """A checked ballot. Ballots repeat in steady state (the master keeps its ballot), and
    they are immutable, so recent ones are shared instead of rebuilt (saves ~0.8 us)."""
    if type(value) is not list or len(value) != 2:
        raise _fail(field, value, "a ballot [number, node_id]")
    number, node_id = value
    if type(number) is int and type(node_id) is int:
        ballot = _ballot_cache.get((number, node_id))
        if ballot is not None:
            return ballot
    if type(number) is not int or not 0 <= number <= BALLOT_NUMBER_MAX:
        raise _fail(field + ".number", number, f"an int in [0, {BALLOT_NUMBER_MAX}]")
    if type(node_id) is not int or not 0 <= node_id <= NODE_ID_MAX:
        raise _fail(field + ".node_id", node_id, f"an int in [0, {NODE_ID_MAX}]")
    if len(_ballot_cache) >= _BALLOT_CACHE_MAX:
        _ballot_cache.clear()
    ballot = _ballot_cache[(number, node_id)] = Ballot(number, node_id)
    return ballot


def _ballot_or_none(value: object, field: str) -> Ballot | None:
    return None if value is None else _ballot(value, field)


_VALUE_KINDS: dict[int, ValueKind] = {int(kind): kind for kind in ValueKind}


def _kind(value: object, field: str) -> ValueKind:
    kind = _VALUE_KINDS.get(value) if type(value) is int else None
    if kind is None:
        raise _fail(field, value, f"a value kind in {sorted(_VALUE_KINDS)}")
    return kind


def _value(value: object, field: str) -> Value:
    if type(value) is not list or len(value) != 2:
        raise _fail(field, value, "a value [kind, payload]")
    kind, payload = value
    if type(payload) is not bytes:
        raise _fail(field + ".payload", payload, "bytes")
    return Value(_kind(kind, field + ".kind"), payload)


def _value_or_none(value: object, field: str) -> Value | None:
    return None if value is None else _value(value, field)


def _log_entry(value: object, field: str) -> LogEntry:
    if type(value) is not list or len(value) != 4:
        raise _fail(field, value, "a log entry [instance, kind, payload, chain]")
    instance, kind, payload, chain = value
    if type(payload) is not bytes:
        raise _fail(field + ".payload", payload, "bytes")
    return LogEntry(
        _uint(instance, INSTANCE_MAX, field + ".instance"),
        Value(_kind(kind, field + ".kind"), payload),
        _uint(chain, CHAIN_MAX, field + ".chain"),
    )


# Per-message encoders (message -> dict of fields) and decoders (dict -> message).
# Keys: b ballot, i instance, val value, c chain, p promised, ab/av accepted ballot/value,
# lo instance_min, nx instance_next, e entries. A ballot is [number, node_id]; a value
# is [kind, payload]; a log entry is [instance, kind, payload, chain].


def _encode_value(value: Value | None) -> list[Any] | None:
    return None if value is None else [int(value.kind), value.payload]


def _encode_ballot(ballot: Ballot | None) -> list[int] | None:
    return None if ballot is None else [ballot.number, ballot.node_id]


def _encode_prepare(m: Prepare, out: dict[str, Any]) -> None:
    out["b"] = [m.ballot.number, m.ballot.node_id]
    out["i"] = m.instance


def _encode_promise(m: Promise, out: dict[str, Any]) -> None:
    out["b"] = [m.ballot.number, m.ballot.node_id]
    out["i"] = m.instance
    out["ab"] = _encode_ballot(m.accepted_ballot)
    out["av"] = _encode_value(m.accepted_value)


def _encode_accept(m: Accept, out: dict[str, Any]) -> None:
    out["b"] = [m.ballot.number, m.ballot.node_id]
    out["i"] = m.instance
    out["val"] = [int(m.value.kind), m.value.payload]
    out["c"] = m.chain_previous
    out["pb"] = _encode_ballot(m.previous_ballot)


def _encode_accepted(m: Accepted, out: dict[str, Any]) -> None:
    out["b"] = [m.ballot.number, m.ballot.node_id]
    out["i"] = m.instance


def _encode_reject(m: Reject, out: dict[str, Any]) -> None:
    out["b"] = [m.ballot.number, m.ballot.node_id]
    out["i"] = m.instance
    out["p"] = [m.promised.number, m.promised.node_id]


def _encode_chosen(m: Chosen, out: dict[str, Any]) -> None:
    out["b"] = [m.ballot.number, m.ballot.node_id]
    out["i"] = m.instance
    out["c"] = m.chain


def _encode_catchup_request(m: CatchupRequest, out: dict[str, Any]) -> None:
    out["i"] = m.instance
    if m.nonce:
        out["n"] = m.nonce


def _encode_catchup_reply(m: CatchupReply, out: dict[str, Any]) -> None:
    assert len(m.entries) <= LOG_ENTRIES_MAX
    out["lo"] = m.instance_min
    out["nx"] = m.instance_next
    out["e"] = [[e.instance, int(e.value.kind), e.value.payload, e.chain] for e in m.entries]
    out["vi"] = m.vote_instance
    out["pr"] = [m.promised.number, m.promised.node_id]
    out["f"] = m.fenced
    out["n"] = m.nonce


def _decode_prepare(f: dict[str, Any]) -> Prepare:
    return Prepare(_ballot(f["b"], "b"), _uint(f["i"], INSTANCE_MAX, "i"))


def _decode_promise(f: dict[str, Any]) -> Promise:
    accepted_ballot = _ballot_or_none(f["ab"], "ab")
    accepted_value = _value_or_none(f["av"], "av")
    if (accepted_ballot is None) != (accepted_value is None):
        raise RemoteProtocolError("promise has an accepted ballot without a value or vice versa")
    return Promise(
        _ballot(f["b"], "b"), _uint(f["i"], INSTANCE_MAX, "i"), accepted_ballot, accepted_value
    )


def _decode_accept(f: dict[str, Any]) -> Accept:
    return Accept(
        _ballot(f["b"], "b"),
        _uint(f["i"], INSTANCE_MAX, "i"),
        _value(f["val"], "val"),
        _uint(f["c"], CHAIN_MAX, "c"),
        _ballot_or_none(f["pb"], "pb"),
    )


def _decode_accepted(f: dict[str, Any]) -> Accepted:
    return Accepted(_ballot(f["b"], "b"), _uint(f["i"], INSTANCE_MAX, "i"))


def _decode_reject(f: dict[str, Any]) -> Reject:
    return Reject(_ballot(f["b"], "b"), _uint(f["i"], INSTANCE_MAX, "i"), _ballot(f["p"], "p"))


def _decode_chosen(f: dict[str, Any]) -> Chosen:
    return Chosen(
        _ballot(f["b"], "b"), _uint(f["i"], INSTANCE_MAX, "i"), _uint(f["c"], CHAIN_MAX, "c")
    )


def _decode_catchup_request(f: dict[str, Any]) -> CatchupRequest:
    return CatchupRequest(_uint(f["i"], INSTANCE_MAX, "i"), _uint(f.get("n", 0), NONCE_MAX, "n"))


def _decode_catchup_reply(f: dict[str, Any]) -> CatchupReply:
    entries = f["e"]
    if type(entries) is not list or len(entries) > LOG_ENTRIES_MAX:
        raise _fail("e", entries, f"a list of at most {LOG_ENTRIES_MAX} log entries")
    vote_instance = f.get("vi", -1)
    if type(vote_instance) is not int or not -1 <= vote_instance <= INSTANCE_MAX:
        raise _fail("vi", vote_instance, f"an int in [-1, {INSTANCE_MAX}]")
    fenced = f.get("f", False)
    if type(fenced) is not bool:
        raise _fail("f", fenced, "a bool")
    promised = f.get("pr")
    return CatchupReply(
        _uint(f["lo"], INSTANCE_MAX, "lo"),
        _uint(f["nx"], INSTANCE_MAX, "nx"),
        tuple(_log_entry(entry, f"e[{n}]") for n, entry in enumerate(entries)),
        vote_instance,
        BALLOT_ZERO if promised is None else _ballot(promised, "pr"),
        fenced,
        _uint(f.get("n", 0), NONCE_MAX, "n"),
    )


_Encoder = Callable[[Any, dict[str, Any]], None]
_Decoder = Callable[[dict[str, Any]], Message]

# type -> (tag, encoder); tag -> decoder. Tags are short and never reused for another meaning.
_ENCODERS: dict[type, tuple[str, _Encoder]] = {
    Prepare: ("prep", _encode_prepare),
    Promise: ("prom", _encode_promise),
    Accept: ("acc", _encode_accept),
    Accepted: ("accd", _encode_accepted),
    Reject: ("rej", _encode_reject),
    Chosen: ("chos", _encode_chosen),
    CatchupRequest: ("creq", _encode_catchup_request),
    CatchupReply: ("crep", _encode_catchup_reply),
}
_DECODERS: dict[str, _Decoder] = {
    "prep": _decode_prepare,
    "prom": _decode_promise,
    "acc": _decode_accept,
    "accd": _decode_accepted,
    "rej": _decode_reject,
    "chos": _decode_chosen,
    "creq": _decode_catchup_request,
    "crep": _decode_catchup_reply,
}
ENVELOPE_TAGS: frozenset[str] = frozenset(_DECODERS)
assert {tag for tag, _ in _ENCODERS.values()} == ENVELOPE_TAGS


def encode_envelope(envelope: Envelope, frame_bytes_max: int = FRAME_BYTES_MAX) -> bytes:
    """One whole frame carrying `envelope`. Raises FrameTooLargeError past frame_bytes_max."""
    message = envelope.message
    tag, encoder = _ENCODERS[type(message)]
    out: dict[str, Any] = {
        "v": WIRE_VERSION,
        "t": tag,
        "g": envelope.group,
        "s": envelope.source,
        "d": envelope.target,
    }
    encoder(message, out)
    return _frame(out, frame_bytes_max)


def decode_envelope(mapping: dict[str, Any]) -> Envelope:
    """The envelope in a decoded frame map; RemoteProtocolError if any field is wrong.

    Keys other than the ones a message uses are ignored, so a later minor version may
    add optional fields without breaking older readers.
    """
    if type(mapping) is not dict:
        raise RemoteProtocolError(f"envelope is a {_describe(mapping)}, not a map")
    _check_header(mapping)
    tag = mapping["t"]
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise RemoteProtocolError(f"unknown message type {_describe(tag)}")
    try:
        group = mapping["g"]
        source = _uint(mapping["s"], NODE_ID_MAX, "s")
        target = _uint(mapping["d"], NODE_ID_MAX, "d")
        message = decoder(mapping)
    except KeyError as error:
        raise RemoteProtocolError(f"{tag!r} frame lacks field {error}") from None
    if type(group) is not str or not 0 < len(group) <= GROUP_NAME_CHARS_MAX:
        raise _fail("g", group, f"a group name of 1..{GROUP_NAME_CHARS_MAX} chars")
    return Envelope(group, source, target, message)


def decode_envelope_frame(frame: bytes) -> Envelope:
    """Decode one whole frame holding exactly one envelope (for tests and tools)."""
    decoder = FrameDecoder()
    mappings = decoder.feed(frame)
    if len(mappings) != 1 or decoder.buffered_bytes:
        raise RemoteProtocolError("expected exactly one whole frame")
    return decode_envelope(mappings[0])
