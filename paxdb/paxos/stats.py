"""Per-branch counters (PhxPaxos breakpoints, TigerBeetle marks).

The core logs nothing; it counts. Rare branches bump a named counter, and a test that
means to cover a branch asserts its counter moved.
"""

from __future__ import annotations


class Stats:
    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def bump(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def __getitem__(self, name: str) -> int:
        return self.counts.get(name, 0)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
