"""FrameDecoder: any chunking gives the same frames; garbage and oversized frames raise
RemoteProtocolError (and nothing else); the buffer never holds more than one partial frame.
"""

from __future__ import annotations

import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paxdb import wire
from paxdb.errors import RemoteProtocolError

FRAMES = [{"t": "a", "n": n, "blob": b"x" * n} for n in (0, 1, 100, 5000)]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False)]


def feed_all(decoder: wire.FrameDecoder, chunks: list[bytes]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
        assert decoder.buffered_bytes < wire.FRAME_HEADER_BYTES + decoder.frame_bytes_max
    return out


def test_frames_survive_byte_by_byte_delivery() -> None:
    stream = b"".join(wire.encode_frame(frame) for frame in FRAMES)
    decoder = wire.FrameDecoder()
    got = feed_all(decoder, [stream[n : n + 1] for n in range(len(stream))])
    assert got == [{**frame, "v": wire.WIRE_VERSION} for frame in FRAMES]
    assert decoder.buffered_bytes == 0


def test_many_frames_in_one_chunk() -> None:
    stream = b"".join(wire.encode_frame(frame) for frame in FRAMES) * 3
    assert len(wire.FrameDecoder().feed(stream)) == 3 * len(FRAMES)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=20_000), max_size=12))
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    stream = b"".join(wire.encode_frame(frame) for frame in FRAMES)
    got = feed_all(wire.FrameDecoder(), split(stream, cuts))
    assert got == [{**frame, "v": wire.WIRE_VERSION} for frame in FRAMES]


def test_oversized_length_is_refused_before_the_body_arrives() -> None:
    decoder = wire.FrameDecoder(frame_bytes_max=1024)
    with pytest.raises(RemoteProtocolError, match="exceeds frame_bytes_max"):
        decoder.feed(struct.pack(">I", 1025))  # Only the header: nothing buffered yet.
    assert decoder.buffered_bytes == 0
    assert decoder.is_dead


def test_decoder_is_dead_after_an_error() -> None:
    decoder = wire.FrameDecoder()
    with pytest.raises(RemoteProtocolError):
        decoder.feed(struct.pack(">I", 1) + b"\xc1")  # 0xc1 is never valid msgpack.
    with pytest.raises(RemoteProtocolError, match="already broken"):
        decoder.feed(wire.encode_frame({"t": "ok"}))


def body_frame(obj: Any) -> bytes:
    body = msgpack.packb(obj, use_bin_type=True)
    return struct.pack(">I", len(body)) + body


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">I", 0),
        body_frame([1, 2]),
        body_frame("text"),
        body_frame({"t": "x"}),  # No version.
        body_frame({"v": 2, "t": "x"}),  # Wrong version.
        body_frame({"v": True, "t": "x"}),
        body_frame({"v": 1}),  # No tag.
        body_frame({"v": 1, "t": ""}),
        body_frame({"v": 1, "t": b"x"}),
        body_frame({1: 1}),  # Int map key.
        struct.pack(">I", 2) + msgpack.packb(1) + msgpack.packb(2),  # Two objects.
        struct.pack(">I", 3) + b"\xa3\xff\xfe\xfd",  # Bad UTF-8 str.
        struct.pack(">I", 1) + b"\x81",  # Truncated map.
    ],
)
def test_garbage_is_a_remote_protocol_error(frame: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        wire.FrameDecoder().feed(frame)


@settings(max_examples=500, deadline=None)
@given(
    st.binary(max_size=2000),
    st.lists(st.integers(min_value=0, max_value=2000), max_size=8),
    st.integers(min_value=1, max_value=4096),
)
def test_random_bytes_only_ever_raise_remote_protocol_error(
    data: bytes, cuts: list[int], frame_bytes_max: int
) -> None:
    decoder = wire.FrameDecoder(frame_bytes_max=frame_bytes_max)
    try:
        for chunk in split(data, cuts):
            decoder.feed(chunk)
            assert decoder.buffered_bytes < wire.FRAME_HEADER_BYTES + frame_bytes_max
    except RemoteProtocolError:
        assert decoder.buffered_bytes == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=400), max_size=6))
def test_random_bodies_behind_valid_headers(body: bytes, cuts: list[int]) -> None:
    # Random bytes rarely form a plausible header; this aims the fuzz at the body decoder.
    stream = struct.pack(">I", len(body)) + body + wire.encode_frame({"t": "next"})
    decoder = wire.FrameDecoder()
    try:
        frames = []
        for chunk in split(stream, cuts):
            frames.extend(decoder.feed(chunk))
    except RemoteProtocolError:
        return
    assert frames[-1]["t"] == "next"
    for frame in frames:
        assert type(frame) is dict
        assert frame["v"] == wire.WIRE_VERSION
