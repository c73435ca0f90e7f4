"""The on-disk format of the file log: segment headers and records (see file_log.py).

Everything here is pure: bytes in, bytes or records out, no I/O. Bytes read back from a
file are untrusted: `parse_record` never raises on garbage (it answers None), and the
body decoders raise `RecordFormatError` instead of tripping an assertion.

Segment file = one header, then records back to back:

    segment header (24 bytes, little-endian)
      0  8  magic b"PAXDBLOG"
      8  4  format version (FORMAT_VERSION)
     12  8  segment id (must equal the number in the file name)
     20  4  CRC32 of bytes 0..19

    record (12-byte header + group name + body, little-endian)
      0  2  magic RECORD_MAGIC (lets recovery find record starts in a damaged tail)
      2  4  CRC32 of bytes 6..end: body length, type, group length, group, body
      6  4  body length B (<= RECORD_BODY_BYTES_MAX)
     10  1  record type (RecordType)
     11  1  group name length G (<= GROUP_NAME_BYTES_MAX)
     12  G  group name, UTF-8
   12+G  B  body, by type:
            CHOSEN    instance u64, chain u32, Value.encode() bytes
            ACCEPTOR  promised (number u64, node u32), instance u64, has_vote u8,
                      [accepted ballot (number u64, node u32), Value.encode() bytes]
            LOG_BASE  instance u64, chain u32
            SNAPSHOT  instance_min u64, instance_next u64, chain_before u32,
                      has_acceptor u8, [ACCEPTOR body]

SNAPSHOT is internal to the file log: it records a truncation point, and it carries a
group's acceptor state and log base forward out of a segment about to be deleted.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum

from paxdb.ids import Ballot
from paxdb.limits import FRAME_BYTES_MAX
from paxdb.paxos.effects import AcceptorRecord, ChosenRecord, LogBaseRecord, Record
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.values import Value

FORMAT_VERSION = 1
SEGMENT_MAGIC = b"PAXDBLOG"
RECORD_MAGIC = b"\xc3\x7e"
GROUP_NAME_BYTES_MAX = 255  # The group length is one byte.
# A record holds at most one value, and a value always fits in one network frame.
RECORD_BODY_BYTES_MAX = FRAME_BYTES_MAX
U32_MAX = 0xFFFF_FFFF
U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

_SEGMENT_HEADER = struct.Struct("<8sIQI")
_RECORD_HEADER = struct.Struct("<2sIIBB")
_RECORD_TAIL = struct.Struct("<IBB")  # The CRC-covered part of the record header.
_INSTANCE_CHAIN = struct.Struct("<QI")
_BALLOT = struct.Struct("<QI")
_ACCEPTOR_HEAD = struct.Struct("<QIQB")
_SNAPSHOT_HEAD = struct.Struct("<QQIB")

SEGMENT_HEADER_BYTES = _SEGMENT_HEADER.size
RECORD_HEADER_BYTES = _RECORD_HEADER.size
CHOSEN_HEAD_BYTES = _INSTANCE_CHAIN.size  # A CHOSEN body is this head, then the value.
RECORD_BYTES_MAX = RECORD_HEADER_BYTES + GROUP_NAME_BYTES_MAX + RECORD_BODY_BYTES_MAX

assert SEGMENT_HEADER_BYTES == 24
assert RECORD_HEADER_BYTES == 12
assert RECORD_BYTES_MAX <= U32_MAX  # The index keeps record lengths in 32 bits.


class RecordType(IntEnum):
    CHOSEN = 1
    ACCEPTOR = 2
    LOG_BASE = 3
    SNAPSHOT = 4


class RecordFormatError(ValueError):
    """A record passed its CRC but its body does not decode: a bug or a foreign file."""


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """A group's state but its values: written at truncation and at carry-forward.

    On replay it sets the acceptor state (even to None) and the log base, and says
    that exactly the values `instance_min .. instance_next - 1` were stored when it was
    written, so replay can drop dead values and notice missing ones (log_index.py).
    """

    instance_min: int
    instance_next: int
    chain_before: int
    acceptor: AcceptorRecord | None

    def __post_init__(self) -> None:
        assert 0 <= self.instance_min <= self.instance_next


StoredRecord = Record | GroupSnapshot


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A framed record whose CRC matched; `body` is a view into the scanned buffer."""

    offset: int
    length: int
    type: RecordType
    group: str
    body: memoryview


# Segment header.


def encode_segment_header(segment_id: int) -> bytes:
    assert 0 <= segment_id <= U64_MAX
    head = _SEGMENT_HEADER.pack(SEGMENT_MAGIC, FORMAT_VERSION, segment_id, 0)[:-4]
    return head + zlib.crc32(head).to_bytes(4, "little")


def check_segment_header(data: bytes, segment_id: int) -> str | None:
    """None if `data` starts with a good header for `segment_id`, else what is wrong."""
    if len(data) < SEGMENT_HEADER_BYTES:
        return f"segment header is {len(data)} bytes, expected {SEGMENT_HEADER_BYTES}"
    magic, version, stored_id, crc = _SEGMENT_HEADER.unpack_from(data, 0)
    if magic != SEGMENT_MAGIC:
        return "not a paxdb log segment (bad magic)"
    if crc != zlib.crc32(data[: SEGMENT_HEADER_BYTES - 4]):
        return "segment header checksum mismatch"
    if version != FORMAT_VERSION:
        return f"segment format version {version}, this paxdb reads {FORMAT_VERSION}"
    if stored_id != segment_id:
        return f"segment header says id {stored_id}, the file name says {segment_id}"
    return None


# Records: encoding.


def encode_record(group: str, record: StoredRecord) -> bytes:
    """The framed bytes of `record` for `group` (inverse: parse_record + decode_body)."""
    group_bytes = group.encode("utf-8")
    assert len(group_bytes) <= GROUP_NAME_BYTES_MAX, f"group name too long: {group!r}"
    record_type, body = _encode_body(record)
    assert len(body) <= RECORD_BODY_BYTES_MAX
    tail = _RECORD_TAIL.pack(len(body), record_type, len(group_bytes))
    crc = zlib.crc32(body, zlib.crc32(group_bytes, zlib.crc32(tail)))
    return b"".join((RECORD_MAGIC, crc.to_bytes(4, "little"), tail, group_bytes, body))


def _encode_body(record: StoredRecord) -> tuple[RecordType, bytes]:
    if isinstance(record, ChosenRecord):
        entry = record.entry
        head = _pack_instance_chain(entry.instance, entry.chain)
        return RecordType.CHOSEN, head + entry.value.encode()
    if isinstance(record, AcceptorRecord):
        return RecordType.ACCEPTOR, _encode_acceptor(record)
    if isinstance(record, LogBaseRecord):
        return RecordType.LOG_BASE, _pack_instance_chain(record.instance, record.chain)
    assert isinstance(record, GroupSnapshot), f"not a record: {record!r}"
    _check_instance_chain(record.instance_min, record.chain_before)
    assert record.instance_next <= U64_MAX
    has_acceptor = record.acceptor is not None
    head = _SNAPSHOT_HEAD.pack(
        record.instance_min, record.instance_next, record.chain_before, has_acceptor
    )
    if record.acceptor is None:
        return RecordType.SNAPSHOT, head
    return RecordType.SNAPSHOT, head + _encode_acceptor(record.acceptor)


def _check_instance_chain(instance: int, chain: int) -> None:
    assert 0 <= instance <= U64_MAX
    assert 0 <= chain <= U32_MAX


def _pack_instance_chain(instance: int, chain: int) -> bytes:
    _check_instance_chain(instance, chain)
    return _INSTANCE_CHAIN.pack(instance, chain)


def _pack_ballot(ballot: Ballot) -> tuple[int, int]:
    assert 0 <= ballot.number <= U64_MAX
    assert 0 <= ballot.node_id <= U32_MAX
    return ballot.number, ballot.node_id


def _encode_acceptor(record: AcceptorRecord) -> bytes:
    assert 0 <= record.instance <= U64_MAX
    has_vote = record.accepted_ballot is not None
    head = _ACCEPTOR_HEAD.pack(*_pack_ballot(record.promised), record.instance, has_vote)
    if record.accepted_ballot is None or record.accepted_value is None:
        return head
    vote = _BALLOT.pack(*_pack_ballot(record.accepted_ballot))
    return b"".join((head, vote, record.accepted_value.encode()))


# Records: framing and decoding of untrusted bytes.


def parse_record(data: bytes | memoryview, offset: int) -> RawRecord | None:
    """The record framed at `offset` if its magic, bounds and CRC are good, else None."""
    end_header = offset + RECORD_HEADER_BYTES
    if offset < 0 or end_header > len(data):
        return None
    magic, crc, body_length, type_byte, group_length = _RECORD_HEADER.unpack_from(data, offset)
    if magic != RECORD_MAGIC or body_length > RECORD_BODY_BYTES_MAX:
        return None
    if type_byte not in _RECORD_TYPE_VALUES:
        return None
    end = end_header + group_length + body_length
    if end > len(data):
        return None
    view = memoryview(data)
    if zlib.crc32(view[offset + 6 : end]) != crc:
        return None
    try:
        group = str(view[end_header : end_header + group_length], "utf-8")
    except UnicodeDecodeError:
        return None
    body = view[end_header + group_length : end]
    return RawRecord(offset, end - offset, RecordType(type_byte), group, body)


_RECORD_TYPE_VALUES = frozenset(int(member) for member in RecordType)


def find_record(data: bytes, start: int) -> int | None:
    """The offset of the first valid record at or after `start`, or None."""
    position = data.find(RECORD_MAGIC, max(start, 0))
    while position >= 0:
        if parse_record(data, position) is not None:
            return position
        position = data.find(RECORD_MAGIC, position + 1)
    return None


def decode_instance_chain(body: memoryview) -> tuple[int, int]:
    """The (instance, chain) head of a CHOSEN or LOG_BASE body."""
    if len(body) < _INSTANCE_CHAIN.size:
        raise RecordFormatError(f"body of {len(body)} bytes is too short")
    instance, chain = _INSTANCE_CHAIN.unpack_from(body, 0)
    return int(instance), int(chain)


def decode_body(record_type: RecordType, body: memoryview) -> StoredRecord:
    """The record a body holds. Raises RecordFormatError on anything malformed."""
    if record_type is RecordType.CHOSEN:
        instance, chain = decode_instance_chain(body)
        value = _decode_value(body[_INSTANCE_CHAIN.size :])
        return ChosenRecord(LogEntry(instance, value, chain))
    if record_type is RecordType.ACCEPTOR:
        return _decode_acceptor(body)
    if record_type is RecordType.LOG_BASE:
        if len(body) != _INSTANCE_CHAIN.size:
            raise RecordFormatError(f"log base body of {len(body)} bytes")
        return LogBaseRecord(*decode_instance_chain(body))
    assert record_type is RecordType.SNAPSHOT
    if len(body) < _SNAPSHOT_HEAD.size:
        raise RecordFormatError(f"snapshot body of {len(body)} bytes")
    instance_min, instance_next, chain_before, has_acceptor = _SNAPSHOT_HEAD.unpack_from(body, 0)
    if instance_min > instance_next:
        raise RecordFormatError(f"snapshot from {instance_min} to {instance_next}")
    rest = body[_SNAPSHOT_HEAD.size :]
    if has_acceptor not in (0, 1) or (has_acceptor == 0 and len(rest) != 0):
        raise RecordFormatError("malformed snapshot acceptor flag")
    acceptor = _decode_acceptor(rest) if has_acceptor else None
    return GroupSnapshot(instance_min, instance_next, chain_before, acceptor)


def _decode_value(data: memoryview) -> Value:
    try:
        return Value.decode(bytes(data))
    except ValueError as error:
        raise RecordFormatError(f"bad value: {error}") from error


def _decode_acceptor(body: memoryview) -> AcceptorRecord:
    if len(body) < _ACCEPTOR_HEAD.size:
        raise RecordFormatError(f"acceptor body of {len(body)} bytes")
    number, node_id, instance, has_vote = _ACCEPTOR_HEAD.unpack_from(body, 0)
    promised = Ballot(number, node_id)
    rest = body[_ACCEPTOR_HEAD.size :]
    if has_vote == 0 and len(rest) == 0:
        return AcceptorRecord(promised, instance, None, None)
    if has_vote != 1 or len(rest) < _BALLOT.size:
        raise RecordFormatError("malformed acceptor vote")
    accepted = Ballot(*_BALLOT.unpack_from(rest, 0))
    if accepted > promised:
        raise RecordFormatError(f"accepted ballot {accepted} above promise {promised}")
    value = _decode_value(rest[_BALLOT.size :])
    return AcceptorRecord(promised, instance, accepted, value)
