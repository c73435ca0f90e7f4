"""FileLogStore restart recovery: what was written is there; torn tails are cut; damage stops."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from storage_log_helpers import (
    all_entries,
    chosen,
    make_acceptor,
    make_entries,
    make_value,
    segment_files,
    snapshot,
)

from paxdb.errors import CorruptionError, StorageError, UsageError
from paxdb.paxos.effects import LogBaseRecord, Record
from paxdb.storage import file_log
from paxdb.storage.base import ChosenBounds
from paxdb.storage.file_log import FileLogStore
from paxdb.storage.memory import MemoryLogStore
from paxdb.storage.record_codec import SEGMENT_HEADER_BYTES

OpenLog = Callable[..., FileLogStore]
CUT_POINTS = 25  # Random cut points tried in the torn-tail test.


def test_everything_written_is_there_after_a_restart(open_file_log: OpenLog) -> None:
    store = open_file_log()
    entries = make_entries(0, 30, size=200)
    store.write_batch([*chosen("main", entries[:20]), ("main", make_acceptor(20))], sync=True)
    store.write_batch([("side", LogBaseRecord(40, 99)), *chosen("main", entries[20:])], True)
    store.write_batch([("side", make_acceptor(41, value=make_value(1, 300)))], sync=False)
    store.truncate_below("main", 5)
    before = snapshot(store, ["main", "side"])
    store.close()
    reopened = open_file_log()
    assert snapshot(reopened, ["main", "side"]) == before
    assert reopened.groups() == ["main", "side"]
    assert reopened.chosen_bounds("main") == ChosenBounds(5, 30, entries[4].chain)
    more = make_entries(30, 3, chain_before=entries[29].chain)
    reopened.write_batch(chosen("main", more), sync=True)
    assert all_entries(reopened, "main") == entries[5:] + more


def test_one_fdatasync_per_synced_batch(open_file_log: OpenLog) -> None:
    store = open_file_log()
    entries = make_entries(0, 3)
    store.write_batch([("a", make_acceptor(0)), *chosen("a", entries[:1])], sync=False)
    assert store.sync_count == 0
    store.write_batch([("b", make_acceptor(0)), *chosen("a", entries[1:])], sync=True)
    assert store.sync_count == 1
    assert store.records_written == 5


def test_a_second_process_is_kept_out(open_file_log: OpenLog) -> None:
    open_file_log()
    with pytest.raises(StorageError, match="in use"):
        open_file_log()


def test_a_closed_store_refuses_calls(open_file_log: OpenLog) -> None:
    store = open_file_log()
    store.close()
    store.close()
    with pytest.raises(UsageError, match="closed"):
        store.chosen_bounds("main")


def _build_single_record_log(directory: Path) -> tuple[list[int], list[dict[str, object]]]:
    """A log of one record per batch; returns the file size and state after each batch."""
    memory = MemoryLogStore()
    store = FileLogStore(directory)
    entries = make_entries(0, 12, size=300)
    records: list[tuple[str, Record]] = []
    for entry in entries:
        records.append(("g", make_acceptor(entry.instance, value=make_value(entry.instance, 50))))
        records.extend(chosen("g", [entry]))
    sizes = [os.path.getsize(segment_files(directory)[-1])]
    states = [snapshot(memory, ["g"])]
    for item in records:
        store.write_batch([item], sync=True)
        memory.write_batch([item], sync=True)
        sizes.append(os.path.getsize(segment_files(directory)[-1]))
        states.append(snapshot(memory, ["g"]))
    store.close()
    return sizes, states


def test_a_torn_tail_is_cut_back_to_the_last_good_record(tmp_path: Path) -> None:
    sizes, states = _build_single_record_log(tmp_path / "original")
    rng = random.Random(5)
    for trial in range(CUT_POINTS):
        directory = tmp_path / f"trial{trial}"
        shutil.copytree(tmp_path / "original", directory)
        segment = segment_files(directory)[-1]
        cut = rng.randrange(SEGMENT_HEADER_BYTES, sizes[-1])
        os.truncate(segment, cut)
        if trial % 2:
            with open(segment, "ab") as file:  # Garbage, or a rewrite of zeros.
                file.write(rng.randbytes(rng.randrange(1, 300)) if trial % 4 == 1 else bytes(99))
        survivors = max(i for i, size in enumerate(sizes) if size <= cut)
        store = FileLogStore(directory)
        assert snapshot(store, ["g"]) == states[survivors], f"cut at {cut}"
        assert os.path.getsize(segment) == sizes[survivors]
        _check_writing_continues(store, directory)


def _check_writing_continues(store: FileLogStore, directory: Path) -> None:
    bounds = store.chosen_bounds("g")
    chain = store.chosen_range("g", bounds.instance_next - 1, bounds.instance_next, 0)
    chain_before = chain[0].chain if chain else bounds.chain_before
    more = make_entries(bounds.instance_next, 2, chain_before=chain_before, seed=9)
    store.write_batch(chosen("g", more), sync=True)
    expected = snapshot(store, ["g"])
    store.close()
    with FileLogStore(directory) as reopened:
        assert snapshot(reopened, ["g"]) == expected
        assert reopened.torn_bytes_cut == 0


def test_garbage_after_the_last_record_is_cut(open_file_log: OpenLog, tmp_path: Path) -> None:
    store = open_file_log()
    entries = make_entries(0, 5)
    store.write_batch(chosen("main", entries), sync=True)
    store.close()
    segment = segment_files(tmp_path / "log")[-1]
    size = os.path.getsize(segment)
    with open(segment, "ab") as file:
        file.write(b"\xc3\x7e" + bytes(50))  # Looks like the start of a record.
    reopened = open_file_log()
    assert reopened.torn_bytes_cut == 52
    assert os.path.getsize(segment) == size
    assert all_entries(reopened, "main") == entries


def _flip_byte(path: Path, offset: int) -> None:
    with open(path, "r+b") as file:
        file.seek(offset)
        byte = file.read(1)
        file.seek(offset)
        file.write(bytes([byte[0] ^ 0x40]))


def test_a_flipped_byte_in_the_middle_is_corruption(open_file_log: OpenLog, tmp_path: Path) -> None:
    store = open_file_log()
    store.write_batch(chosen("main", make_entries(0, 1, size=100)), sync=True)
    second_record = os.path.getsize(segment_files(tmp_path / "log")[-1])
    store.write_batch(chosen("main", make_entries(1, 3, size=100)), sync=True)
    store.close()
    segment = segment_files(tmp_path / "log")[-1]
    _flip_byte(segment, second_record + 40)
    with pytest.raises(CorruptionError) as caught:
        open_file_log()
    message = str(caught.value)
    assert str(segment) in message
    assert f"at byte {second_record}" in message
    assert "restore this node from a peer" in message.lower()


def test_a_damaged_end_of_a_sealed_segment_is_corruption(
    open_file_log: OpenLog, tmp_path: Path
) -> None:
    store = open_file_log(segment_bytes_max=2048)
    store.write_batch(chosen("main", make_entries(0, 40, size=100)), sync=True)
    store.write_batch(chosen("main", make_entries(40, 40, size=100)), sync=True)
    store.close()
    first = segment_files(tmp_path / "log")[0]
    os.truncate(first, os.path.getsize(first) - 3)
    with pytest.raises(CorruptionError, match="sealed segment"):
        open_file_log(segment_bytes_max=2048)


def test_a_bad_segment_header_is_corruption(open_file_log: OpenLog, tmp_path: Path) -> None:
    open_file_log().close()
    _flip_byte(segment_files(tmp_path / "log")[0], 3)
    with pytest.raises(CorruptionError, match="at byte 0"):
        open_file_log()


def test_a_removed_segment_with_live_values_is_corruption(
    open_file_log: OpenLog, tmp_path: Path
) -> None:
    store = open_file_log(segment_bytes_max=2048)
    for start in range(0, 90, 10):
        store.write_batch(chosen("main", make_entries(start, 10, size=100)), sync=True)
    store.close()
    files = segment_files(tmp_path / "log")
    assert len(files) >= 3
    files[1].unlink()
    with pytest.raises(CorruptionError, match="missing"):
        open_file_log(segment_bytes_max=2048)


def test_a_corrupt_record_is_caught_on_read(open_file_log: OpenLog, tmp_path: Path) -> None:
    store = open_file_log()
    store.write_batch(chosen("main", make_entries(0, 3, size=100)), sync=True)
    store.close()
    store = open_file_log()  # A fresh store has no cached values.
    segment = segment_files(tmp_path / "log")[-1]
    _flip_byte(segment, SEGMENT_HEADER_BYTES + 60)
    with pytest.raises(CorruptionError, match="checksum on read"):
        store.chosen_range("main", 0, 3, 1 << 20)


def test_a_leftover_temporary_segment_is_removed(open_file_log: OpenLog, tmp_path: Path) -> None:
    open_file_log().close()
    leftover = tmp_path / "log" / "00000000000000000001.log.tmp"
    leftover.write_bytes(b"PAXDB")
    store = open_file_log()
    assert not leftover.exists()
    assert store.segment_ids() == [0]


def test_a_failed_fdatasync_halts_the_store(
    open_file_log: OpenLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a failed fsync the page cache may have dropped the data: never retry."""
    store = open_file_log()
    store.write_batch(chosen("main", make_entries(0, 2)), sync=True)

    def failing_fdatasync(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(file_log, "_fdatasync", failing_fdatasync)
    with pytest.raises(StorageError, match="Input/output error"):
        store.write_batch(chosen("main", make_entries(2, 1)), sync=True)
    monkeypatch.undo()
    with pytest.raises(StorageError, match="unknown state"):
        store.write_batch([], sync=True)
    with pytest.raises(StorageError):
        store.chosen_bounds("main")
    store.close()
    with open_file_log() as reopened:  # Recovery takes over from what is on disk.
        assert reopened.chosen_bounds("main").instance_next in (2, 3)
