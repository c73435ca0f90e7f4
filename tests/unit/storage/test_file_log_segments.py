"""FileLogStore segments: rolling, deletion after truncation, carry-forward of small records."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from storage_log_helpers import (
    all_entries,
    chosen,
    disk_bytes,
    make_acceptor,
    make_entries,
    make_value,
    segment_files,
    snapshot,
)

from paxdb.paxos.effects import LogBaseRecord
from paxdb.storage.file_log import FileLogStore

OpenLog = Callable[..., FileLogStore]
SEGMENT_BYTES = 4096
VALUE_BYTES = 200  # About 230 bytes per chosen record: ~17 records per segment.


def _write_values(store: FileLogStore, group: str, start: int, count: int, chain: int) -> int:
    """Write `count` values one batch each (with an acceptor record); returns the chain."""
    for entry in make_entries(start, count, chain_before=chain, size=VALUE_BYTES):
        store.write_batch(
            [(group, make_acceptor(entry.instance + 1)), *chosen(group, [entry])], sync=True
        )
        chain = entry.chain
    return chain


def test_segments_roll_and_read_back_after_restart(open_file_log: OpenLog) -> None:
    store = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    entries = make_entries(0, 100, size=VALUE_BYTES)
    for start in range(0, 100, 5):
        store.write_batch(chosen("main", entries[start : start + 5]), sync=True)
    assert len(store.segment_ids()) >= 5
    store.close()
    reopened = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    assert all_entries(reopened, "main") == entries


def test_truncation_deletes_old_segments_and_disk_usage_shrinks(
    open_file_log: OpenLog, tmp_path: Path
) -> None:
    directory = tmp_path / "log"
    store = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    chain = _write_values(store, "main", 0, 200, 0)
    full = disk_bytes(directory)
    segments = len(segment_files(directory))
    store.truncate_below("main", 190)
    assert disk_bytes(directory) < full / 5
    assert len(segment_files(directory)) < segments / 5
    assert store.segments_deleted > 0
    expected = snapshot(store, ["main"])
    store.close()
    reopened = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    assert snapshot(reopened, ["main"]) == expected
    _write_values(reopened, "main", 200, 5, chain)
    assert reopened.chosen_bounds("main").instance_next == 205


def test_an_idle_group_does_not_pin_old_segments(open_file_log: OpenLog, tmp_path: Path) -> None:
    directory = tmp_path / "log"
    store = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    idle_vote = make_acceptor(3, number=7, value=make_value(3, 100))
    store.write_batch([("idle", LogBaseRecord(3, 42)), ("idle", idle_vote)], sync=True)
    first_segment = store.segment_ids()[0]
    _write_values(store, "main", 0, 150, 0)
    store.truncate_below("main", 150)
    assert first_segment not in store.segment_ids()
    assert len(segment_files(directory)) <= 2
    store.close()
    reopened = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    assert reopened.load_acceptor("idle") == idle_vote
    assert reopened.chosen_bounds("idle").instance_min == 3
    assert reopened.chosen_bounds("idle").chain_before == 42


def test_live_values_of_another_group_keep_their_segment(open_file_log: OpenLog) -> None:
    store = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    quiet = make_entries(0, 3, seed=5)
    store.write_batch(chosen("quiet", quiet), sync=True)
    first_segment = store.segment_ids()[0]
    _write_values(store, "main", 0, 150, 0)
    store.truncate_below("main", 150)
    assert first_segment in store.segment_ids()
    assert len(store.segment_ids()) <= 3  # The segments in between went.
    store.close()
    reopened = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    assert all_entries(reopened, "quiet") == quiet
    assert reopened.chosen_bounds("main").instance_min == 150


def test_dead_values_left_in_a_kept_segment_replay_correctly(open_file_log: OpenLog) -> None:
    """Kept segments hold dead records of a group whose later segments were deleted."""
    store = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    store.write_batch(chosen("quiet", make_entries(0, 2, seed=5)), sync=True)
    chain = _write_values(store, "main", 0, 60, 0)
    store.truncate_below("main", 20)
    chain = _write_values(store, "main", 60, 60, chain)
    store.truncate_below("main", 100)
    store.write_batch([("main", LogBaseRecord(500, 77))], sync=True)
    _write_values(store, "main", 500, 40, 77)
    store.truncate_below("main", 530)
    expected = snapshot(store, ["main", "quiet"])
    store.close()
    reopened = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    assert snapshot(reopened, ["main", "quiet"]) == expected


def test_a_log_base_frees_segments_at_the_next_roll(open_file_log: OpenLog) -> None:
    store = open_file_log(segment_bytes_max=SEGMENT_BYTES)
    _write_values(store, "main", 0, 100, 0)
    before = store.segment_ids()
    store.write_batch([("main", LogBaseRecord(1000, 5))], sync=True)
    _write_values(store, "main", 1000, 30, 5)
    assert before[0] not in store.segment_ids()
    expected = snapshot(store, ["main"])
    store.close()
    assert snapshot(open_file_log(segment_bytes_max=SEGMENT_BYTES), ["main"]) == expected


def test_dead_values_above_a_carried_log_base_stay_dead(open_file_log: OpenLog) -> None:
    """Found by the model test: values 0..3 of "a" die at LogBase(2); 0..2 stay on disk
    (a live value of "b" keeps their segment) while the LogBase's own segment goes."""
    store = open_file_log(segment_bytes_max=1024)
    store.write_batch(
        [*chosen("a", make_entries(0, 3, size=200)), *chosen("b", make_entries(0, 1, seed=2))],
        sync=True,
    )
    first = store.segment_ids()[0]
    store.write_batch(
        [*chosen("a", make_entries(3, 1, size=300, seed=3)), ("a", LogBaseRecord(2, 5))], sync=True
    )
    log_base_segment = store.segment_ids()[-1]
    assert log_base_segment != first
    store.write_batch([("b", make_acceptor(1, value=make_value(4, 900)))], sync=True)
    assert store.segment_ids() == [first, log_base_segment + 1]  # Carried forward.
    expected = snapshot(store, ["a", "b"])
    store.close()
    reopened = open_file_log(segment_bytes_max=1024)
    assert snapshot(reopened, ["a", "b"]) == expected
    assert reopened.chosen_bounds("a").instance_next == 2
