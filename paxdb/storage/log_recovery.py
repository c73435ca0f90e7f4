"""Recovery of the file log on open: scan every segment, cut a torn tail, rebuild indexes.

Rules (file_log.py explains why they are safe):
- Segments are replayed in id order, records in file order, into one `GroupIndex` per
  group (log_index.py has the replay rules for records left behind by deleted segments).
- In the newest segment, a record that fails its framing or CRC with no valid record
  anywhere after it is the torn tail of an interrupted write: the file is truncated to
  the last good record (and fsynced), and those bytes are counted.
- Anything else that does not read back is corruption. The `CorruptionError` names the
  file and byte offset and says how to restore the node; nothing is skipped silently.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from paxdb.errors import CorruptionError
from paxdb.paxos.effects import AcceptorRecord, LogBaseRecord
from paxdb.storage.log_index import GroupIndex
from paxdb.storage.record_codec import (
    CHOSEN_HEAD_BYTES,
    SEGMENT_HEADER_BYTES,
    GroupSnapshot,
    RawRecord,
    RecordFormatError,
    RecordType,
    check_segment_header,
    decode_body,
    decode_instance_chain,
    find_record,
    parse_record,
)

logger = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".log"
TEMP_SUFFIX = ".tmp"
_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
RESTORE_ADVICE = (
    "The Paxos log of this node is damaged and paxdb will not guess around it. Restore "
    "this node from a peer: stop it, move its data directory away, and start it again "
    "with an empty --data, so that it catches up from the other replicas."
)


def segment_name(segment_id: int) -> str:
    return f"{segment_id:020d}{SEGMENT_SUFFIX}"


def corruption(path: Path, offset: int, what: str) -> CorruptionError:
    return CorruptionError(f"{path}: {what} at byte {offset}. {RESTORE_ADVICE}")


@dataclass(slots=True)
class Recovered:
    """What recovery found: the indexes, the segments on disk, and what it repaired."""

    groups: dict[str, GroupIndex] = field(default_factory=dict)
    segments: list[int] = field(default_factory=list)
    torn_bytes_cut: int = 0


def recover(directory: Path) -> Recovered:
    """Scan the segments under `directory`. Raises CorruptionError; OSError passes up."""
    recovered = Recovered(segments=list_segments(directory))
    for position, segment in enumerate(recovered.segments):
        is_last = position == len(recovered.segments) - 1
        _replay_segment(directory / segment_name(segment), segment, is_last, recovered)
    for group in sorted(recovered.groups):
        restarted_at = recovered.groups[group].restarted_at
        if restarted_at is not None:
            raise CorruptionError(
                f"{directory}: chosen values of group {group!r} before instance "
                f"{restarted_at} are missing (was a segment file removed?). {RESTORE_ADVICE}"
            )
    return recovered


def list_segments(directory: Path) -> list[int]:
    """Segment ids on disk, ascending; leftovers of an interrupted roll are removed."""
    segments: list[int] = []
    for name in os.listdir(directory):
        if name.endswith(SEGMENT_SUFFIX + TEMP_SUFFIX):
            os.unlink(directory / name)
            continue
        match = _SEGMENT_NAME.match(name)
        if match:
            segments.append(int(match.group(1)))
    return sorted(segments)


def _replay_segment(path: Path, segment: int, is_last: bool, recovered: Recovered) -> None:
    data = path.read_bytes()
    problem = check_segment_header(data, segment)
    if problem is not None:
        raise corruption(path, 0, problem)
    records: list[RawRecord] = []
    offset = SEGMENT_HEADER_BYTES
    while offset < len(data):
        raw = parse_record(data, offset)
        if raw is None:
            recovered.torn_bytes_cut += _cut_torn_tail(path, data, offset, is_last)
            break
        records.append(raw)
        offset += raw.length
    for raw in records:
        index = recovered.groups.get(raw.group)
        if index is None:
            index = recovered.groups[raw.group] = GroupIndex()
        try:
            _replay_record(index, segment, raw)
        except RecordFormatError as error:
            raise corruption(path, raw.offset, str(error)) from error


def _cut_torn_tail(path: Path, data: bytes, offset: int, is_last: bool) -> int:
    """Truncate a torn last write at `offset` and return the bytes cut; raise if the
    bad record at `offset` is not a torn tail."""
    if not is_last:
        raise corruption(path, offset, "bad record in a sealed segment")
    later = find_record(data, offset + 1)
    if later is not None:
        raise corruption(path, offset, f"bad record followed by a valid one at byte {later}")
    cut = len(data) - offset
    logger.warning("%s: cutting a torn tail of %d bytes at byte %d", path, cut, offset)
    with open(path, "r+b") as file:
        file.truncate(offset)
        os.fsync(file.fileno())
    return cut


def _replay_record(index: GroupIndex, segment: int, raw: RawRecord) -> None:
    """Apply one record to its group's index. Raises RecordFormatError."""
    if raw.type is RecordType.CHOSEN:
        if len(raw.body) <= CHOSEN_HEAD_BYTES:
            raise RecordFormatError("chosen record without a value")
        instance, chain = decode_instance_chain(raw.body)
        index.replay_chosen(instance, chain, segment, raw.offset, raw.length)
        return
    record = decode_body(raw.type, raw.body)
    if isinstance(record, AcceptorRecord):
        index.set_acceptor(record, segment)
    elif isinstance(record, LogBaseRecord):
        index.reset(record.instance, record.chain, segment)
    else:
        assert isinstance(record, GroupSnapshot)
        index.set_acceptor(record.acceptor, segment)
        index.replay_snapshot(record, segment)
