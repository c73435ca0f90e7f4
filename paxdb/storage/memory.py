"""An in-memory `LogStore` for unit tests and the simulator, with a crash model.

Writes first land in a pending list, as in an OS page cache; `write_batch(sync=True)`
makes them durable. `crash(keep)` throws away every pending write after the first
`keep`: a crash loses an arbitrary suffix of what was not synced, never a record in the
middle. Reads see pending writes, as reads of a real file do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from paxdb.errors import UsageError
from paxdb.paxos.chain import CHAIN_START
from paxdb.paxos.effects import AcceptorRecord, ChosenRecord, LogBaseRecord, Record
from paxdb.paxos.logview import ChosenBounds
from paxdb.paxos.messages import LogEntry


@dataclass(slots=True)
class _GroupLog:
    acceptor: AcceptorRecord | None = None
    instance_min: int = 0
    chain_before: int = CHAIN_START
    entries: list[LogEntry] = field(default_factory=list)

    @property
    def instance_next(self) -> int:
        return self.instance_min + len(self.entries)

    def apply(self, record: Record) -> None:
        if isinstance(record, AcceptorRecord):
            self.acceptor = record
        elif isinstance(record, ChosenRecord):
            self._append(record.entry)
        else:
            assert isinstance(record, LogBaseRecord)
            self.instance_min = record.instance
            self.chain_before = record.chain
            self.entries = []
            if self.acceptor is not None and self.acceptor.instance < record.instance:
                self.acceptor = None

    def _append(self, entry: LogEntry) -> None:
        if entry.instance < self.instance_next:
            if entry.instance >= self.instance_min:
                stored = self.entries[entry.instance - self.instance_min]
                assert stored == entry, f"two different values chosen at {entry.instance}"
            return
        if entry.instance != self.instance_next:
            raise UsageError(
                f"chosen value at {entry.instance} would leave a gap after {self.instance_next}"
            )
        self.entries.append(entry)

    def copy(self) -> _GroupLog:
        return _GroupLog(self.acceptor, self.instance_min, self.chain_before, list(self.entries))


class MemoryLogStore:
    """A `LogStore` held in memory; `crash` models losing unsynced writes."""

    def __init__(self) -> None:
        self._durable: dict[str, _GroupLog] = {}
        self._pending: list[tuple[str, Record]] = []
        self._view: dict[str, _GroupLog] = {}
        self.sync_count = 0
        self.records_written = 0

    # Reads see pending writes.

    def _group(self, group: str) -> _GroupLog:
        log = self._view.get(group)
        if log is None:
            log = self._view[group] = _GroupLog()
        return log

    def load_acceptor(self, group: str) -> AcceptorRecord | None:
        return self._group(group).acceptor

    def chosen_bounds(self, group: str) -> ChosenBounds:
        log = self._group(group)
        return ChosenBounds(log.instance_min, log.instance_next, log.chain_before)

    def chosen_range(self, group: str, low: int, high: int, bytes_max: int) -> list[LogEntry]:
        log = self._group(group)
        if not log.instance_min <= low < log.instance_next:
            return []
        result: list[LogEntry] = []
        size = 0
        for instance in range(low, min(high, log.instance_next)):
            entry = log.entries[instance - log.instance_min]
            if result and size + len(entry.value) > bytes_max:
                break
            result.append(entry)
            size += len(entry.value)
        return result

    def groups(self) -> list[str]:
        return sorted(self._view)

    # Writes.

    def write_batch(self, items: Sequence[tuple[str, Record]], sync: bool) -> None:
        for group, record in items:
            self._group(group).apply(record)
            self._pending.append((group, record))
            self.records_written += 1
        if sync:
            self.sync()

    def sync(self) -> None:
        for group, record in self._pending:
            durable = self._durable.get(group)
            if durable is None:
                durable = self._durable[group] = _GroupLog()
            durable.apply(record)
        self._pending.clear()
        self.sync_count += 1

    def truncate_below(self, group: str, instance: int) -> None:
        """Durable at once, like the file store's (which syncs before it cuts)."""
        self.sync()
        for log in (self._group(group), self._durable.get(group)):
            if log is None:
                continue
            assert instance <= log.instance_next
            drop = instance - log.instance_min
            if drop <= 0:
                continue
            log.chain_before = log.entries[drop - 1].chain
            log.entries = log.entries[drop:]
            log.instance_min = instance

    def crash(self, keep: int = 0) -> None:
        """Lose every unsynced write after the first `keep` of them."""
        assert keep >= 0
        survivors = self._pending[:keep]
        self._pending.clear()
        self._view = {group: log.copy() for group, log in self._durable.items()}
        self.write_batch(survivors, sync=False)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        self._pending.clear()
