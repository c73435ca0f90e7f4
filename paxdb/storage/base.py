"""The durable Paxos log of one node, for all of its groups: the `LogStore` protocol.

The core reads through `LogReader` (at start-up and to serve catch-up); only the runtime
writes, through `write_batch`, once per turn of its loop, with one fsync for everything
in the batch when `sync` is true.

Invariants every implementation keeps:
- Chosen values of a group are contiguous: from `instance_min` to `instance_next - 1`
  with no gap. A `ChosenRecord` is only ever appended at `instance_next`; the same
  record written again (a replay) is ignored; any other instance is a `UsageError`.
- `write_batch(..., sync=True)` returns only once every record in it, and every
  earlier one, is durable. Records of an unsynced batch may be lost on a crash, but
  only as a suffix: a record never survives while an earlier one is lost.
- The latest `AcceptorRecord` of a group replaces the previous one.
- `truncate_below(group, i)` forgets chosen values below i (never at or above
  `instance_next`); `chain_before` then reports chain[i - 1].
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from paxdb.paxos.effects import Record
from paxdb.paxos.logview import ChosenBounds, LogReader

__all__ = ["ChosenBounds", "LogReader", "LogStore"]


class LogStore(LogReader, Protocol):
    def write_batch(self, items: Sequence[tuple[str, Record]], sync: bool) -> None: ...

    def truncate_below(self, group: str, instance: int) -> None: ...

    def groups(self) -> list[str]: ...

    def close(self) -> None: ...
