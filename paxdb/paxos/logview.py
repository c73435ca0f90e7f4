"""How the core reads the durable log: the read half of the storage interface.

The core never writes; it hands records to its runtime in `Effects.persist`. It reads
through `LogReader` at start-up and to answer catch-up requests. Implementations live
in `paxdb.storage` (memory for tests and the simulator, files for real nodes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from paxdb.paxos.effects import AcceptorRecord
from paxdb.paxos.messages import LogEntry


@dataclass(frozen=True, slots=True)
class ChosenBounds:
    """Where the stored chosen values of a group start and end.

    `chain_before` is chain[instance_min - 1] (the chain start for an empty log).
    """

    instance_min: int
    instance_next: int
    chain_before: int

    def __post_init__(self) -> None:
        assert 0 <= self.instance_min <= self.instance_next


class LogReader(Protocol):
    def load_acceptor(self, group: str) -> AcceptorRecord | None: ...

    def chosen_bounds(self, group: str) -> ChosenBounds: ...

    def chosen_range(self, group: str, low: int, high: int, bytes_max: int) -> list[LogEntry]:
        """Consecutive entries from `low` (inclusive) to `high` (exclusive).

        Stops early after `bytes_max` bytes of values, but always returns at least one
        entry when `low` is stored. Returns [] when `low` is not stored.
        """
        ...
