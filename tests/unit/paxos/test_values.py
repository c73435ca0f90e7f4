"""Values, batches and the CRC chain: canonical bytes and strict decoding."""

from __future__ import annotations

import zlib

import pytest

from paxdb.paxos.chain import CHAIN_START, chain_next
from paxdb.paxos.values import Value, ValueKind, decode_batch, encode_batch


@pytest.mark.parametrize(
    "items", [[b""], [b"a"], [b"x" * 1000, b"", b"yz"], [bytes(range(256))] * 3]
)
def test_batch_round_trips(items: list[bytes]) -> None:
    assert decode_batch(encode_batch(items)) == items


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"", "too short"),
        (b"\x00\x00\x00\x00", "out of range"),
        (b"\x00\x00\x00\x01\x00\x00", "truncated in a length"),
        (b"\x00\x00\x00\x01\x00\x00\x00\x05abc", "truncated in an item"),
        (b"\x00\x00\x00\x01\x00\x00\x00\x01abc", "trailing bytes"),
    ],
)
def test_malformed_batches_are_refused(payload: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        decode_batch(payload)


def test_value_encoding_is_kind_then_payload() -> None:
    value = Value(ValueKind.SQL_BATCH, b"abc")
    assert value.encode() == b"\x01abc"
    assert Value.decode(value.encode()) == value
    with pytest.raises(ValueError):
        Value.decode(b"\x09")
    with pytest.raises(ValueError):
        Value.decode(b"")


def test_chain_is_crc32_over_value_bytes_seeded_by_the_previous_link() -> None:
    first = Value(ValueKind.SQL_BATCH, b"one")
    second = Value(ValueKind.MASTER, b"two")
    link0 = chain_next(CHAIN_START, first)
    link1 = chain_next(link0, second)
    assert link0 == zlib.crc32(b"\x01one", 0)
    assert link1 == zlib.crc32(b"\x02two", link0)
    assert chain_next(CHAIN_START, second) != link1
