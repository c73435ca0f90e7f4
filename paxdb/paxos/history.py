"""The configuration history: which membership and master were in force from where on.

Theory of operation. Membership and master are values in the log (membership.py,
master.py), so the configuration in force at instance i is a function of the values
below i. The replica keeps only the current one, but a checkpoint taken as a copy of
the state machine at an older applied instance needs the configuration of *that*
instance, exactly: `master_version` decides whether a later MASTER claim is stale, so
a checkpoint with a wrong version would make a node restored from it disagree with the
others on who holds the lease.

So the replica records one `ConfigEntry` each time a learned value changes the
configuration (a stale MASTER or MEMBERSHIP value changes nothing and records nothing),
including while it scans its stored log at start-up. Entry k holds from its
`instance_from` up to the next entry's; the last one holds up to the current
instance. The history starts where the replica's knowledge starts (instance 0, its
base checkpoint, or the checkpoint it restored), and keeps at most `entries_max`
entries, dropping the oldest: a master renews its lease with a MASTER value, so in
steady state there is about one entry per `lease_renew_ticks`.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """Membership (voters and learners) and master in force from `instance_from` on."""

    instance_from: int
    members: tuple[int, ...]
    members_version: int
    master: int | None
    master_version: int
    learners: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        assert self.instance_from >= 0
        assert self.members == tuple(sorted(set(self.members)))
        assert self.learners == tuple(sorted(set(self.learners)))
        assert -1 <= self.members_version < self.instance_from
        assert -1 <= self.master_version < self.instance_from


class ConfigHistory:
    """A bounded, ordered list of `ConfigEntry`, strictly increasing in `instance_from`."""

    __slots__ = ("entries_max", "_entries", "_starts")

    def __init__(self, entries_max: int) -> None:
        assert entries_max > 0
        self.entries_max = entries_max
        self._entries: list[ConfigEntry] = []
        self._starts: list[int] = []  # instance_from of each entry, for bisect.

    def reset(self, entry: ConfigEntry) -> None:
        """Forget everything: the replica's knowledge now starts at `entry`."""
        self._entries = [entry]
        self._starts = [entry.instance_from]

    def record(self, entry: ConfigEntry) -> None:
        """A learned value changed the configuration from `entry.instance_from` on."""
        assert self._entries, "reset() first"
        assert entry.instance_from > self._starts[-1], "the history only grows forward"
        self._entries.append(entry)
        self._starts.append(entry.instance_from)
        if len(self._entries) > self.entries_max:
            del self._entries[0]
            del self._starts[0]
        assert len(self._entries) == len(self._starts) <= self.entries_max

    @property
    def start(self) -> int:
        """The oldest instance this history can answer for."""
        assert self._entries
        return self._starts[0]

    def __len__(self) -> int:
        return len(self._entries)

    def at(self, instance: int) -> ConfigEntry | None:
        """The entry in force at `instance`, or None if the history starts after it."""
        index = bisect.bisect_right(self._starts, instance) - 1
        if index < 0:
            return None
        entry = self._entries[index]
        assert entry.instance_from <= instance
        return entry
