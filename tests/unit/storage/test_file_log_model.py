"""FileLogStore against the MemoryLogStore model over random operations, with restarts.

Tiny segments make nearly every step roll a segment, so collection, carry-forward and
recovery with deleted segments run all the time. A restart is a clean close and reopen:
the model keeps every write (memory.sync()), as a process restart keeps the page cache.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from storage_log_helpers import all_entries, make_acceptor, make_value, snapshot

from paxdb.errors import UsageError
from paxdb.paxos.chain import chain_next
from paxdb.paxos.effects import ChosenRecord, LogBaseRecord, Record
from paxdb.paxos.messages import LogEntry
from paxdb.storage.base import ChosenBounds
from paxdb.storage.file_log import FileLogStore
from paxdb.storage.memory import MemoryLogStore

GROUPS = ["a", "b", "c"]
SEGMENT_BYTES = 1024
VALUE_BYTES_MAX = 400
OPERATIONS_MAX = 6  # Records in one random batch.
# PAXDB_STORAGE_EXAMPLES=2000 turns this into a soak test.
EXAMPLES = int(os.environ.get("PAXDB_STORAGE_EXAMPLES", "40"))
KINDS = ["chosen", "chosen", "chosen", "acceptor", "replay", "base"]

operation = st.tuples(
    st.sampled_from(KINDS),
    st.sampled_from(GROUPS),
    st.integers(1, VALUE_BYTES_MAX),
    st.integers(-3, 5),
)


class FileLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="paxdb-log-model-")) / "log"
        self.file = FileLogStore(self.directory, segment_bytes_max=SEGMENT_BYTES)
        self.memory = MemoryLogStore()
        self.seed = 0

    def teardown(self) -> None:
        self.file.close()
        shutil.rmtree(self.directory.parent)

    def _build(self, operations: list[tuple[str, str, int, int]]) -> list[tuple[str, Record]]:
        """A batch from `operations`; replays repeat entries stored or earlier in it."""
        stored = {group: all_entries(self.memory, group) for group in GROUPS}
        bases = {group: self.memory.chosen_bounds(group) for group in GROUPS}
        items: list[tuple[str, Record]] = []
        for kind, group, size, shift in operations:
            self.seed += 1
            entries = stored[group]
            next_ = entries[-1].instance + 1 if entries else bases[group].instance_next
            chain = entries[-1].chain if entries else bases[group].chain_before
            if kind == "chosen":
                value = make_value(self.seed, size)
                entries.append(LogEntry(next_, value, chain_next(chain, value)))
                items.append((group, ChosenRecord(entries[-1])))
            elif kind == "acceptor":
                value = make_value(self.seed, size) if shift % 2 else None
                items.append((group, make_acceptor(max(0, next_ + shift), shift + 4, 1, value)))
            elif kind == "base":
                base = LogBaseRecord(max(0, next_ + shift), self.seed)
                items.append((group, base))
                stored[group] = []
                bases[group] = ChosenBounds(base.instance, base.instance, base.chain)
            else:
                replayed = entries[-(size % 7) - 1 :]
                items.extend((group, ChosenRecord(entry)) for entry in replayed)
        return items

    @rule(operations=st.lists(operation, max_size=OPERATIONS_MAX), sync=st.booleans())
    def write_batch(self, operations: list[tuple[str, str, int, int]], sync: bool) -> None:
        items = self._build(operations)
        self.memory.write_batch(items, sync)
        self.file.write_batch(items, sync)

    @rule(group=st.sampled_from(GROUPS), size=st.integers(1, 50))
    def write_a_gap(self, group: str, size: int) -> None:
        next_ = self.memory.chosen_bounds(group).instance_next
        value = make_value(size, size)
        items: list[tuple[str, Record]] = [(group, ChosenRecord(LogEntry(next_ + 1, value, 0)))]
        for store in (self.memory, self.file):
            with pytest.raises(UsageError):
                store.write_batch(items, sync=True)

    @rule(group=st.sampled_from(GROUPS), fraction=st.floats(0, 1))
    def truncate_below(self, group: str, fraction: float) -> None:
        bounds = self.memory.chosen_bounds(group)
        instance = int(bounds.instance_next * fraction)
        # FileLogStore's truncation syncs everything before it; the model must sync too,
        # or MemoryLogStore asserts when `instance` is past its durable values.
        self.memory.sync()
        self.memory.truncate_below(group, instance)
        self.file.truncate_below(group, instance)

    @rule()
    def restart(self) -> None:
        self.file.close()
        self.memory.sync()
        self.file = FileLogStore(self.directory, segment_bytes_max=SEGMENT_BYTES)

    @rule(
        group=st.sampled_from(GROUPS),
        low=st.integers(0, 40),
        span=st.integers(0, 10),
        bytes_max=st.integers(0, 2000),
    )
    def read_range(self, group: str, low: int, span: int, bytes_max: int) -> None:
        expected = self.memory.chosen_range(group, low, low + span, bytes_max)
        assert self.file.chosen_range(group, low, low + span, bytes_max) == expected

    @invariant()
    def same_as_the_model(self) -> None:
        assert snapshot(self.file, GROUPS) == snapshot(self.memory, GROUPS)
        assert set(self.file.groups()) <= set(GROUPS)


FileLogMachine.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_file_log_matches_the_model = FileLogMachine.TestCase
