"""The record format: round trips, and untrusted bytes never crash the parser."""

from __future__ import annotations

import contextlib

import hypothesis.strategies as st
import pytest
from hypothesis import given

from paxdb.ids import Ballot
from paxdb.paxos.effects import AcceptorRecord, ChosenRecord, LogBaseRecord
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.values import Value, ValueKind
from paxdb.storage.record_codec import (
    RECORD_HEADER_BYTES,
    GroupSnapshot,
    RecordFormatError,
    RecordType,
    StoredRecord,
    check_segment_header,
    decode_body,
    encode_record,
    encode_segment_header,
    find_record,
    parse_record,
)

U32 = st.integers(0, 0xFFFF_FFFF)
U64 = st.integers(0, 0xFFFF_FFFF_FFFF_FFFF)
values = st.builds(Value, st.sampled_from(list(ValueKind)), st.binary(max_size=200))
groups = st.text(max_size=30).filter(lambda name: len(name.encode("utf-8")) <= 255)


@st.composite
def acceptors(draw: st.DrawFn) -> AcceptorRecord:
    promised = Ballot(draw(U64), draw(U32))
    if draw(st.booleans()):
        return AcceptorRecord(promised, draw(U64), None, None)
    accepted = Ballot(draw(st.integers(0, promised.number)), draw(U32))
    if accepted > promised:
        accepted = promised
    return AcceptorRecord(promised, draw(U64), accepted, draw(values))


records = st.one_of(
    st.builds(lambda i, v, c: ChosenRecord(LogEntry(i, v, c)), U64, values, U32),
    acceptors(),
    st.builds(LogBaseRecord, U64, U32),
    st.builds(
        lambda low, span, chain, acceptor: GroupSnapshot(low, low + span, chain, acceptor),
        st.integers(0, 2**63),
        st.integers(0, 2**62),
        U32,
        st.none() | acceptors(),
    ),
)


@given(groups, records)
def test_every_record_round_trips(group: str, record: StoredRecord) -> None:
    data = b"junk" + encode_record(group, record) + b"more"
    raw = parse_record(data, 4)
    assert raw is not None
    assert raw.group == group
    assert raw.length == len(data) - 8
    assert decode_body(raw.type, raw.body) == record


@given(st.binary(max_size=300), st.integers(0, 300))
def test_garbage_never_crashes_the_parser(data: bytes, offset: int) -> None:
    raw = parse_record(data, offset)
    if raw is not None:
        with contextlib.suppress(RecordFormatError):
            decode_body(raw.type, raw.body)
    find_record(data, offset)


@given(groups, records, st.data())
def test_any_flipped_bit_is_detected(group: str, record: StoredRecord, data: st.DataObject) -> None:
    encoded = bytearray(encode_record(group, record))
    bit = data.draw(st.integers(0, len(encoded) * 8 - 1))
    encoded[bit // 8] ^= 1 << (bit % 8)
    assert parse_record(bytes(encoded), 0) is None


def test_a_record_cut_short_is_not_a_record() -> None:
    encoded = encode_record("main", LogBaseRecord(5, 6))
    for end in range(len(encoded)):
        assert parse_record(encoded[:end], 0) is None


def test_find_record_skips_to_the_next_valid_record() -> None:
    encoded = encode_record("main", LogBaseRecord(5, 6))
    data = b"\xc3\x7e garbage" + encoded
    assert find_record(data, 0) == len(data) - len(encoded)
    assert find_record(data, len(data) - len(encoded) + 1) is None


@pytest.mark.parametrize(
    ("body", "record_type"),
    [
        (b"", RecordType.CHOSEN),
        (bytes(12) + b"\xff", RecordType.CHOSEN),  # Unknown value kind.
        (bytes(13), RecordType.LOG_BASE),
        (bytes(21) + b"\x02", RecordType.ACCEPTOR),  # Vote flag not 0 or 1.
        (bytes(21) + b"\x01", RecordType.ACCEPTOR),  # Vote flag without a vote.
        (bytes(20) + b"\x00junk", RecordType.SNAPSHOT),
        (b"\x01" + bytes(20), RecordType.SNAPSHOT),  # instance_min above instance_next.
    ],
)
def test_malformed_bodies_are_rejected(body: bytes, record_type: RecordType) -> None:
    with pytest.raises(RecordFormatError):
        decode_body(record_type, memoryview(body))


def test_a_vote_above_the_promise_is_rejected() -> None:
    good = encode_record("g", AcceptorRecord(Ballot(1, 1), 0, Ballot(1, 1), Value(ValueKind.NOOP)))
    body = bytearray(good[RECORD_HEADER_BYTES + 1 :])
    body[21] = 2  # Accepted ballot number 2 > promised number 1.
    with pytest.raises(RecordFormatError, match="above promise"):
        decode_body(RecordType.ACCEPTOR, memoryview(bytes(body)))


def test_segment_header_checks() -> None:
    header = encode_segment_header(7)
    assert check_segment_header(header, 7) is None
    assert "file name says 8" in (check_segment_header(header, 8) or "")
    assert "bad magic" in (check_segment_header(b"X" + header[1:], 7) or "")
    assert "checksum" in (check_segment_header(header[:12] + b"\x09" + header[13:], 7) or "")
    assert "bytes" in (check_segment_header(header[:10], 7) or "")
