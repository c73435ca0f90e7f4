"""The durable Paxos log of a node: append-only segment files shared by all its groups.

Theory of operation. A node has one `FileLogStore` (one directory, e.g. DIR/log/) for
every group it runs, so the runtime's one `write_batch(records, sync=True)` per loop
turn costs one `os.write` of the whole encoded batch and one `fdatasync` for every
group's records together (group commit). `sync=False` only writes; the next sync
covers it, because fdatasync flushes everything written to the file before it.

Files. Records go to the newest segment, `<id:020d>.log`, opened O_APPEND. When a
batch would take it past `segment_bytes_max` the segment is sealed (fdatasynced) and a
new one is created (header written to a .tmp file, fsynced, renamed, directory fsynced),
so only the newest segment can ever have a torn tail. The byte layout is in
record_codec.py: every record is framed by a magic, its length and a CRC32 of its
header and body, and names its group; values are stored as `Value.encode()` bytes.
A `LOCK` file (flock) keeps a second process out.

Memory. Recovery scans every segment and rebuilds a `GroupIndex` per group: the latest
acceptor state, the log base, and for each stored chosen instance the record's offset,
length and chain (16 bytes per instance), never the values. Reads `os.pread` the
record and check its CRC again; a bounded cache keeps each group's newest values.

Recovery. A record that fails its framing or CRC in the newest segment, with no valid
record anywhere after it, is a torn tail of the last write: the file is truncated to
the last good record and writing continues. A bad record in a sealed segment, or one
followed by a valid record, is corruption: `CorruptionError` names the file and byte
offset, and nothing is skipped. (A power loss that persists a later page of an
unsynced write but not an earlier one also lands here: safe, but it needs a restore.)

Truncation and space. `truncate_below` writes a SNAPSHOT record (the new log base,
the end of the stored values and the acceptor state) and fdatasyncs it, so the
truncation point survives a restart. A segment is deleted once no group needs it: no
stored chosen value, and no record that set a group's current acceptor state or log
base. Such small records are first "carried forward" (rewritten as a SNAPSHOT into the
newest segment) so an idle group does not pin an old segment forever; everything is
fdatasynced before any unlink, and the newest segment is never deleted. Collection
runs after each truncation and after each segment roll.

Why replay stays right after deletions. A deleted segment held only dead records, but
dead records in kept segments stay behind, and replay sees them. The acceptor state
and the log base are last-writer-wins, and their last writers are never deleted.
Chosen values of a group are written in instance order after its last LogBase, so the
live ones are replayed last and in order; when dead values left a gap or an overlap
before one, replay restarts the group's log at that value, provisionally. The
record that set the final log base (LogBase, or SNAPSHOT naming its exact range of
stored values) comes after every live value written before it, so it drops the dead
values and confirms the log (log_index.py). A group still provisional at the end has
lost live values: `CorruptionError`. A segment deleted by hand is caught this way when
it held live chosen values; a lost acceptor record is not detectable without a
manifest.

Measured (tests/unit/storage/test_file_log_bench.py, medians of alternating rounds, on
the 2-core development VM, Python 3.11, ext4 on a shared virtio disk whose fsync
latency swings from 0.3 to 7 ms with other load):
- raw 4 KB os.write + fdatasync: 320-640 us;
- write_batch([AcceptorRecord with a 1 KB value, ChosenRecord with a 1 KB value],
  sync=True): 380-530 us, the same as a raw fdatasync within the noise;
- the same batch with sync=False: 40-45 us (encoding, one os.write, indexing), which is
  all this layer adds to the fdatasync;
- chosen_range of 8 values: 6-11 us from the cache, 120-225 us through os.pread.

Thread-safety: none. The runtime uses a store from its event-loop thread only.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from paxdb.errors import StorageError, UsageError
from paxdb.paxos.chain import CHAIN_START
from paxdb.paxos.effects import AcceptorRecord, ChosenRecord, LogBaseRecord, Record
from paxdb.paxos.messages import LogEntry
from paxdb.storage.base import ChosenBounds
from paxdb.storage.log_index import GroupIndex
from paxdb.storage.log_recovery import TEMP_SUFFIX, corruption, recover, segment_name
from paxdb.storage.record_codec import (
    CHOSEN_HEAD_BYTES,
    RECORD_HEADER_BYTES,
    SEGMENT_HEADER_BYTES,
    GroupSnapshot,
    RecordFormatError,
    StoredRecord,
    decode_body,
    encode_record,
    encode_segment_header,
    parse_record,
)

SEGMENT_BYTES_MAX_DEFAULT = 64 * 1024 * 1024  # A segment is sealed once it would pass this.
SEGMENT_BYTES_MIN = 1024  # Smallest bound accepted (tests use small segments).
LOCK_NAME = "LOCK"

_fdatasync = getattr(os, "fdatasync", os.fsync)  # macOS has no fdatasync.


class FileLogStore:
    """A `LogStore` in append-only segment files under `directory` (created if missing).

    Invariants: `write_batch(..., sync=True)` returns only once the batch and everything
    before it is on disk; an unsynced write can only be lost as a suffix; a batch that
    raises `UsageError` wrote nothing. After an `OSError` the store refuses all further
    calls with `StorageError` (a failed fsync is never retried).
    """

    def __init__(
        self, directory: str | Path, segment_bytes_max: int = SEGMENT_BYTES_MAX_DEFAULT
    ) -> None:
        assert segment_bytes_max >= SEGMENT_BYTES_MIN
        self._directory = Path(directory)
        self._segment_bytes_max = segment_bytes_max
        self._groups: dict[str, GroupIndex] = {}
        self._segments: list[int] = []  # Ids of the segment files on disk, ascending.
        self._read_fds: dict[int, int] = {}  # Sealed segments opened for reading.
        self._fd = -1  # The newest segment, O_RDWR | O_APPEND.
        self._segment_id = -1
        self._segment_size = 0
        self._is_unsynced = False
        self._is_collect_due = False
        self._is_closed = False
        self._broken: str | None = None
        self.sync_count = 0
        self.records_written = 0
        self.torn_bytes_cut = 0
        self.segments_deleted = 0
        self._directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = self._lock()
        try:
            self._recover()
        except BaseException:
            self._close_files()
            raise

    # Reads.

    def load_acceptor(self, group: str) -> AcceptorRecord | None:
        self._check_usable()
        index = self._groups.get(group)
        return index.acceptor if index is not None else None

    def chosen_bounds(self, group: str) -> ChosenBounds:
        self._check_usable()
        index = self._groups.get(group)
        if index is None:
            return ChosenBounds(0, 0, CHAIN_START)
        return ChosenBounds(index.instance_min, index.instance_next, index.chain_before)

    def chosen_range(self, group: str, low: int, high: int, bytes_max: int) -> list[LogEntry]:
        """Consecutive entries from `low` to `high` (exclusive), at most `bytes_max` of
        values except that the first stored entry is always returned."""
        self._check_usable()
        index = self._groups.get(group)
        if index is None or not index.instance_min <= low < index.instance_next:
            return []
        overhead = RECORD_HEADER_BYTES + len(group.encode("utf-8")) + CHOSEN_HEAD_BYTES
        result: list[LogEntry] = []
        size = 0
        for instance in range(low, min(high, index.instance_next)):
            value_bytes = index.lengths[instance - index.instance_min] - overhead
            if result and size + value_bytes > bytes_max:
                break
            entry = self._read_entry(group, index, instance)
            assert len(entry.value) == value_bytes
            result.append(entry)
            size += value_bytes
        return result

    def groups(self) -> list[str]:
        """Every group with a record in the log, sorted."""
        self._check_usable()
        return sorted(self._groups)

    def segment_ids(self) -> list[int]:
        """Ids of the segment files on disk, oldest first (for tests and operators)."""
        return list(self._segments)

    @property
    def directory(self) -> Path:
        return self._directory

    # Writes.

    def write_batch(self, items: Sequence[tuple[str, Record]], sync: bool) -> None:
        """Append `items` in one os.write; with `sync`, fdatasync once for all of them.

        A ChosenRecord already stored is a replay and is not written again (it must
        equal what is stored); one that would leave a gap raises UsageError before
        anything of the batch is written.
        """
        self._check_usable()
        planned = self._plan(items)
        if planned:
            self._append(planned)
        if sync:
            self._sync()
        if self._is_collect_due:
            self._collect_segments([])

    def truncate_below(self, group: str, instance: int) -> None:
        """Forget chosen values below `instance`, durably; then reclaim dead segments."""
        self._check_usable()
        index = self._groups.get(group)
        assert instance <= (index.instance_next if index is not None else 0)
        if index is None or instance <= index.instance_min:
            return
        snapshot = GroupSnapshot(
            instance, index.instance_next, index.chain_at(instance - 1), index.acceptor
        )
        self._collect_segments([(group, snapshot)])

    def close(self) -> None:
        """Make every write durable and release the directory. Idempotent."""
        if self._is_closed:
            return
        try:
            if self._broken is None:
                self._sync()
        finally:
            self._is_closed = True
            self._close_files()

    def __enter__(self) -> FileLogStore:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # Planning a batch: every check happens before the first byte is written.

    def _plan(self, items: Sequence[tuple[str, Record]]) -> list[tuple[str, StoredRecord]]:
        bounds: dict[str, tuple[int, int]] = {}  # Group -> (instance_min, instance_next).
        staged: dict[str, dict[int, LogEntry]] = {}  # Entries earlier in this batch.
        planned: list[tuple[str, StoredRecord]] = []
        for group, record in items:
            assert isinstance(group, str)
            if isinstance(record, ChosenRecord):
                if not self._plan_chosen(group, record.entry, bounds, staged):
                    continue
            elif isinstance(record, LogBaseRecord):
                bounds[group] = (record.instance, record.instance)
                staged[group] = {}
            else:
                assert isinstance(record, AcceptorRecord), f"not a record: {record!r}"
            planned.append((group, record))
        return planned

    def _plan_chosen(
        self,
        group: str,
        entry: LogEntry,
        bounds: dict[str, tuple[int, int]],
        staged: dict[str, dict[int, LogEntry]],
    ) -> bool:
        """True if `entry` is new; False for a replay; UsageError if it leaves a gap."""
        assert entry.instance >= 0
        index = self._groups.get(group)
        if group in bounds:
            low, next_ = bounds[group]
        elif index is not None:
            low, next_ = index.instance_min, index.instance_next
        else:
            low, next_ = 0, 0
        if entry.instance < next_:
            if entry.instance >= low:
                stored = staged.get(group, {}).get(entry.instance)
                if stored is None:
                    assert index is not None
                    stored = self._read_entry(group, index, entry.instance)
                assert stored == entry, f"two different values chosen at {entry.instance}"
            return False
        if entry.instance != next_:
            raise UsageError(
                f"chosen value at {entry.instance} would leave a gap after {next_}"
                f" in group {group!r}"
            )
        bounds[group] = (low, next_ + 1)
        staged.setdefault(group, {})[entry.instance] = entry
        return True

    # Appending.

    def _append(self, records: Sequence[tuple[str, StoredRecord]]) -> None:
        """Encode `records`, roll the segment if they do not fit, write them, index them."""
        parts: list[bytes] = []
        layout: list[tuple[str, StoredRecord, int, int]] = []
        size = 0
        for group, record in records:
            encoded = encode_record(group, record)
            layout.append((group, record, size, len(encoded)))
            parts.append(encoded)
            size += len(encoded)
        has_records = self._segment_size > SEGMENT_HEADER_BYTES
        if has_records and self._segment_size + size > self._segment_bytes_max:
            self._roll()
        start = self._segment_size
        self._write(b"".join(parts))
        for group, record, relative, length in layout:
            self._index_record(group, record, start + relative, length)
        self.records_written += len(layout)

    def _index_record(self, group: str, record: StoredRecord, offset: int, length: int) -> None:
        index = self._groups.get(group)
        if index is None:
            index = self._groups[group] = GroupIndex()
        segment = self._segment_id
        if isinstance(record, ChosenRecord):
            entry = record.entry
            index.append(entry.instance, entry.chain, segment, offset, length, entry)
        elif isinstance(record, AcceptorRecord):
            index.set_acceptor(record, segment)
        elif isinstance(record, LogBaseRecord):
            index.reset(record.instance, record.chain, segment)
        else:
            assert record.instance_next == index.instance_next
            index.set_acceptor(record.acceptor, segment)
            index.rebase(record.instance_min, record.chain_before, segment)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as error:
            raise self._fail(f"writing {self._path(self._segment_id)}", error) from error
        self._segment_size += len(data)
        self._is_unsynced = True

    def _sync(self) -> None:
        """fdatasync the newest segment if anything was written since the last sync."""
        if not self._is_unsynced:
            return
        try:
            _fdatasync(self._fd)
        except OSError as error:
            raise self._fail(f"syncing {self._path(self._segment_id)}", error) from error
        self._is_unsynced = False
        self.sync_count += 1

    def _roll(self) -> None:
        """Seal the newest segment (durable, so only the newest can be torn); start one."""
        self._sync()
        self._read_fds[self._segment_id] = self._fd
        self._fd = -1
        self._create_segment(self._segment_id + 1)
        self._is_collect_due = True

    def _create_segment(self, segment_id: int) -> None:
        path = self._path(segment_id)
        temp = path.with_name(path.name + TEMP_SUFFIX)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                os.write(fd, encode_segment_header(segment_id))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
            self._sync_directory()
            self._fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except OSError as error:
            raise self._fail(f"creating {path}", error) from error
        self._segment_id = segment_id
        self._segment_size = SEGMENT_HEADER_BYTES
        self._segments.append(segment_id)

    # Truncation and space reclamation.

    def _collect_segments(self, extra: list[tuple[str, StoredRecord]]) -> None:
        """Write `extra` and carry-forward snapshots, sync, then delete dead segments."""
        self._is_collect_due = False
        if extra:
            self._append(extra)
        carried = self._plan_carry_forward()
        if carried:
            self._append(carried)
        self._sync()
        needed = {self._segment_id}
        for index in self._groups.values():
            needed |= index.segments_of_entries() | index.segments_of_state()
        dead = [segment for segment in self._segments if segment not in needed]
        if dead:
            self._delete_segments(dead)

    def _plan_carry_forward(self) -> list[tuple[str, StoredRecord]]:
        """Snapshots for groups whose state records alone keep an old segment alive."""
        kept = {self._segment_id}
        for index in self._groups.values():
            kept |= index.segments_of_entries()
        carried: list[tuple[str, StoredRecord]] = []
        for group in sorted(self._groups):
            index = self._groups[group]
            if index.segments_of_state() - kept:
                snapshot = GroupSnapshot(
                    index.instance_min, index.instance_next, index.chain_before, index.acceptor
                )
                carried.append((group, snapshot))
        return carried

    def _delete_segments(self, dead: list[int]) -> None:
        assert not self._is_unsynced  # What made them dead must be durable first.
        assert self._segment_id not in dead
        for segment in dead:
            fd = self._read_fds.pop(segment, None)
            try:
                if fd is not None:
                    os.close(fd)
                os.unlink(self._path(segment))
            except OSError as error:
                raise self._fail(f"deleting {self._path(segment)}", error) from error
            self._segments.remove(segment)
        self._sync_directory()
        self.segments_deleted += len(dead)

    # Reading one stored entry.

    def _read_entry(self, group: str, index: GroupIndex, instance: int) -> LogEntry:
        entry = index.cached(instance)
        if entry is not None:
            return entry
        segment, offset, length = index.location(instance)
        path = self._path(segment)
        try:
            data = os.pread(self._fd_for(segment), length, offset)
        except OSError as error:
            raise StorageError(f"reading {path} at byte {offset}: {error}") from error
        raw = parse_record(data, 0)
        if raw is None or raw.length != length:
            raise corruption(path, offset, "a chosen record fails its checksum on read")
        try:
            record = decode_body(raw.type, raw.body)
        except RecordFormatError as error:
            raise corruption(path, offset, str(error)) from error
        if not (
            isinstance(record, ChosenRecord)
            and raw.group == group
            and record.entry.instance == instance
        ):
            raise corruption(path, offset, f"no chosen record of {group!r} {instance}")
        return record.entry

    def _fd_for(self, segment: int) -> int:
        if segment == self._segment_id:
            return self._fd
        fd = self._read_fds.get(segment)
        if fd is None:
            fd = self._read_fds[segment] = os.open(self._path(segment), os.O_RDONLY | os.O_CLOEXEC)
        return fd

    # Recovery.

    def _recover(self) -> None:
        try:
            recovered = recover(self._directory)
        except OSError as error:
            raise self._fail(f"recovering {self._directory}", error) from error
        self._groups = recovered.groups
        self._segments = recovered.segments
        self.torn_bytes_cut = recovered.torn_bytes_cut
        if not self._segments:
            self._create_segment(0)
            return
        self._segment_id = self._segments[-1]
        try:
            self._fd = os.open(self._path(self._segment_id), os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
            self._segment_size = os.fstat(self._fd).st_size
        except OSError as error:
            raise self._fail(f"opening {self._path(self._segment_id)}", error) from error

    # Files, locks and failure.

    def _path(self, segment: int) -> Path:
        return self._directory / segment_name(segment)

    def _lock(self) -> int:
        path = self._directory / LOCK_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            raise StorageError(
                f"{self._directory} is in use by another paxdb process (lock {path} held); "
                "stop that process first"
            ) from error
        return fd

    def _sync_directory(self) -> None:
        fd = os.open(self._directory, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _close_files(self) -> None:
        fds: Iterable[int] = [*self._read_fds.values(), self._fd, self._lock_fd]
        self._read_fds.clear()
        self._fd = -1
        self._lock_fd = -1
        for fd in fds:
            if fd >= 0:
                os.close(fd)

    def _check_usable(self) -> None:
        if self._is_closed:
            raise UsageError(f"the log store at {self._directory} is closed")
        if self._broken is not None:
            raise StorageError(self._broken)

    def _fail(self, what: str, error: OSError) -> StorageError:
        """Refuse every later call: after a failed write or fsync the disk state is unknown."""
        self._broken = (
            f"{what} failed: {error}. The log is in an unknown state; restart the node "
            "once the disk is healthy (recovery cuts any torn tail)"
        )
        return StorageError(self._broken)
