"""The steady-state cost of FileLogStore, next to a raw fdatasync (run with PAXDB_BENCH=1).

    PAXDB_BENCH=1 python3 -m pytest -q -s tests/unit/storage/test_file_log_bench.py

prints microseconds per operation: a raw 4 KB os.write + fdatasync; the runtime's
steady-state write_batch (one AcceptorRecord with a 1 KB value and one ChosenRecord,
sync=True); the same batch without sync (the Python and write(2) overhead alone); and
catch-up reads of 8 values, cached and not.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from storage_log_helpers import chosen, make_acceptor, make_entries, make_value

from paxdb.ids import Ballot
from paxdb.paxos.effects import AcceptorRecord
from paxdb.storage.file_log import FileLogStore

ROUNDS = 9  # Alternating rounds of each measurement; the median is reported.
OPERATIONS = 100  # Operations timed per round.
VALUE_BYTES = 1023  # With its kind byte, a 1 KB value.
RAW_WRITE_BYTES = 4096

pytestmark = pytest.mark.skipif(
    os.environ.get("PAXDB_BENCH") != "1", reason="a benchmark; set PAXDB_BENCH=1"
)


def _medians_us(runs: list[Callable[[int], None]]) -> list[float]:
    """Median microseconds per operation of each run, measured in alternation so that
    the disk's moods (this is a shared VM) fall on all of them alike."""
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(ROUNDS):
        for run, times in zip(runs, samples, strict=True):
            started = time.perf_counter()
            run(OPERATIONS)
            times.append((time.perf_counter() - started) / OPERATIONS * 1e6)
    return [statistics.median(times) for times in samples]


def _raw_fdatasync(path: Path) -> Callable[[int], None]:
    def run(count: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        block = b"x" * RAW_WRITE_BYTES
        for _ in range(count):
            os.write(fd, block)
            os.fdatasync(fd)
        os.close(fd)

    return run


def _steady_state(store: FileLogStore, sync: bool) -> Callable[[int], None]:
    entries = make_entries(0, ROUNDS * OPERATIONS * 2 + 1, size=VALUE_BYTES)
    position = [store.chosen_bounds("main").instance_next]

    def run(count: int) -> None:
        for _ in range(count):
            entry = entries[position[0]]
            position[0] += 1
            ballot = Ballot(1, 1)
            vote = AcceptorRecord(ballot, entry.instance + 1, ballot, entry.value)
            store.write_batch([("main", vote), *chosen("main", [entry])], sync=sync)

    return run


def test_print_steady_state_costs(tmp_path: Path) -> None:
    with FileLogStore(tmp_path / "log") as store:
        store.write_batch([("main", make_acceptor(0, value=make_value(0, VALUE_BYTES)))], True)
        raw_us, synced_us, unsynced_us = _medians_us(
            [
                _raw_fdatasync(tmp_path / "raw.bin"),
                _steady_state(store, True),
                _steady_state(store, False),
            ]
        )
        next_ = store.chosen_bounds("main").instance_next

        def catch_up(start: int) -> Callable[[int], None]:
            def run(count: int) -> None:
                for _ in range(count):
                    assert len(store.chosen_range("main", start, start + 8, 1 << 20)) == 8

            return run

        # The newest values are cached; older ones are read with os.pread (page cache).
        read_us, pread_us = _medians_us([catch_up(next_ - 8), catch_up(next_ - 500)])
    print(
        f"\nraw {RAW_WRITE_BYTES} B write+fdatasync: {raw_us:.0f} us"
        f"\nwrite_batch(acceptor 1 KB + chosen 1 KB, sync=True): {synced_us:.0f} us"
        f"\nwrite_batch(same, sync=False): {unsynced_us:.1f} us"
        f"\nchosen_range of the last 8 values (cached): {read_us:.1f} us"
        f"\nchosen_range of 8 older values (os.pread): {pread_us:.1f} us"
    )
    assert synced_us > unsynced_us
