"""The in-memory index of one group in the file log: where each stored chosen value is.

A `GroupIndex` holds no chosen values, only their locations: for the instances
`instance_min .. instance_next - 1`, parallel arrays of record offset, record length and
chain (16 bytes per instance), plus "runs" saying which segment each stretch of
instances lives in. Chosen records of a group are appended in instance order to the
newest segment, so segment ids never decrease along the arrays and a run list stays
short (one run per segment the group wrote to).

It also holds the group's latest acceptor state and log base, each with the segment of
the record that last set it: those records are what a segment must keep (or carry
forward) to be deletable. A small deque caches the newest chosen entries, for the
common catch-up of a peer that is only a little behind.

Replay rules (used on recovery; file_log.py says why they are sound). Deleting a
segment removes only dead records, but dead records in kept segments stay behind, so a
replay may meet a chosen record that does not continue the log: `replay_chosen` then
restarts the log at that record, provisionally (`restarted_at`). A SNAPSHOT says which
values `[instance_min, instance_next)` were stored when it was written: values at or
above its `instance_next` are dead and dropped, and if the range is all there the log
is confirmed; if not, values may be missing and the group stays provisional until a
later LogBase, or a SNAPSHOT whose range is there, shows that they were dead. A group
still provisional at the end of recovery has lost live values: corruption.
"""

from __future__ import annotations

import bisect
from array import array
from collections import deque
from dataclasses import dataclass, field

from paxdb.paxos.chain import CHAIN_START
from paxdb.paxos.effects import AcceptorRecord
from paxdb.paxos.messages import LogEntry
from paxdb.storage.record_codec import GroupSnapshot

CACHE_VALUES_MAX = 64  # Newest chosen entries kept in memory per group.
CACHE_BYTES_MAX = 1024 * 1024  # Bytes of values in one group's cache.

assert array("I").itemsize >= 4
assert array("Q").itemsize >= 8


def _offsets() -> array[int]:
    return array("Q")


def _words() -> array[int]:
    return array("I")


@dataclass(slots=True)
class GroupIndex:
    """Acceptor state, log base and chosen-value locations of one group.

    Invariants: the three arrays have one element per stored instance; `run_firsts`
    is strictly increasing and `run_segments` non-decreasing; every cached entry is
    stored, and the cache holds consecutive instances ending at `instance_next - 1`.
    """

    acceptor: AcceptorRecord | None = None
    acceptor_segment: int | None = None  # Segment of the record that set `acceptor`.
    instance_min: int = 0
    chain_before: int = CHAIN_START
    base_segment: int | None = None  # Segment of the record that set the log base.
    restarted_at: int | None = None  # Replay only: the log restarted here, unconfirmed.
    offsets: array[int] = field(default_factory=_offsets)
    lengths: array[int] = field(default_factory=_words)
    chains: array[int] = field(default_factory=_words)
    run_segments: list[int] = field(default_factory=list)
    run_firsts: list[int] = field(default_factory=list)
    cache: deque[LogEntry] = field(default_factory=deque)
    cache_bytes: int = 0

    @property
    def instance_next(self) -> int:
        return self.instance_min + len(self.offsets)

    # Reads.

    def location(self, instance: int) -> tuple[int, int, int]:
        """(segment, offset, length) of the chosen record at a stored `instance`."""
        assert self.instance_min <= instance < self.instance_next
        run = bisect.bisect_right(self.run_firsts, instance) - 1
        assert run >= 0
        index = instance - self.instance_min
        return self.run_segments[run], self.offsets[index], self.lengths[index]

    def chain_at(self, instance: int) -> int:
        """chain[instance], for instance_min - 1 <= instance < instance_next."""
        if instance == self.instance_min - 1:
            return self.chain_before
        assert self.instance_min <= instance < self.instance_next
        return self.chains[instance - self.instance_min]

    def cached(self, instance: int) -> LogEntry | None:
        if not self.cache or instance < self.cache[0].instance:
            return None
        position = instance - self.cache[0].instance
        if position >= len(self.cache):
            return None
        entry = self.cache[position]
        assert entry.instance == instance
        return entry

    def segments_of_entries(self) -> set[int]:
        return set(self.run_segments)

    def segments_of_state(self) -> set[int]:
        """Segments holding the records that set the acceptor state and the log base."""
        return {s for s in (self.acceptor_segment, self.base_segment) if s is not None}

    # Changes.

    def append(
        self,
        instance: int,
        chain: int,
        segment: int,
        offset: int,
        length: int,
        entry: LogEntry | None,
    ) -> None:
        """Index a chosen record at `instance_next`; cache `entry` if given."""
        assert instance == self.instance_next, f"append at {instance}, next {self.instance_next}"
        if self.run_segments:
            assert segment >= self.run_segments[-1]
        if not self.run_segments or self.run_segments[-1] != segment:
            self.run_segments.append(segment)
            self.run_firsts.append(instance)
        self.offsets.append(offset)
        self.lengths.append(length)
        self.chains.append(chain)
        if entry is None:
            self._cache_clear()
            return
        assert entry.instance == instance
        self.cache.append(entry)
        self.cache_bytes += len(entry.value)
        while self.cache and (
            len(self.cache) > CACHE_VALUES_MAX or self.cache_bytes > CACHE_BYTES_MAX
        ):
            self.cache_bytes -= len(self.cache.popleft().value)

    def set_acceptor(self, acceptor: AcceptorRecord | None, segment: int) -> None:
        self.acceptor = acceptor
        self.acceptor_segment = segment

    def reset(self, instance: int, chain: int, segment: int) -> None:
        """A LogBaseRecord: the log restarts empty at `instance`; older votes go."""
        self._clear_entries(instance)
        self.chain_before = chain
        self.base_segment = segment
        self.restarted_at = None
        if self.acceptor is not None and self.acceptor.instance < instance:
            self.set_acceptor(None, segment)

    def rebase(self, instance: int, chain: int, segment: int) -> None:
        """A truncation point: forget entries below `instance`; chain[instance - 1] = chain.

        At run time `instance_min <= instance <= instance_next` always holds. On replay
        `instance` may be past `instance_next` (the entries between were dead and their
        segment is gone), and then the log is empty from `instance`.
        """
        assert instance >= self.instance_min
        if instance >= self.instance_next:
            self._clear_entries(instance)
        else:
            self._drop_below(instance)
        self.chain_before = chain
        self.base_segment = segment
        self.restarted_at = None

    def replay_chosen(
        self, instance: int, chain: int, segment: int, offset: int, length: int
    ) -> None:
        """Index a chosen record met during recovery, restarting the log on a gap."""
        if instance != self.instance_next:
            self._clear_entries(instance)
            self.chain_before = CHAIN_START  # Unknown until a base record confirms.
            self.base_segment = None
            self.restarted_at = instance
        self.append(instance, chain, segment, offset, length, None)

    def replay_snapshot(self, snapshot: GroupSnapshot, segment: int) -> None:
        """A SNAPSHOT met during recovery (its acceptor is set apart); see the module doc."""
        low, high = snapshot.instance_min, snapshot.instance_next
        if self.instance_next > high:
            self._drop_from(high)
        if low == high or (self.instance_min <= low and self.instance_next == high):
            self.rebase(low, snapshot.chain_before, segment)
            return
        # Values in [low, high) are not all here; only a later base record can say why.
        if self.instance_next < high:
            self._clear_entries(high)
            self.restarted_at = high
        else:
            self.restarted_at = self.instance_min
        self.chain_before = CHAIN_START
        self.base_segment = None

    def _clear_entries(self, instance: int) -> None:
        self.instance_min = instance
        del self.offsets[:], self.lengths[:], self.chains[:]
        self.run_segments.clear()
        self.run_firsts.clear()
        self._cache_clear()

    def _drop_below(self, instance: int) -> None:
        drop = instance - self.instance_min
        assert 0 <= drop < len(self.offsets)
        del self.offsets[:drop], self.lengths[:drop], self.chains[:drop]
        self.instance_min = instance
        while len(self.run_firsts) > 1 and self.run_firsts[1] <= instance:
            del self.run_segments[0], self.run_firsts[0]
        while self.cache and self.cache[0].instance < instance:
            self.cache_bytes -= len(self.cache.popleft().value)

    def _drop_from(self, instance: int) -> None:
        """Forget entries at and above `instance` (replay only: they were dead)."""
        if instance <= self.instance_min:
            self._clear_entries(instance)
            return
        keep = instance - self.instance_min
        del self.offsets[keep:], self.lengths[keep:], self.chains[keep:]
        while self.run_firsts and self.run_firsts[-1] >= instance:
            del self.run_segments[-1], self.run_firsts[-1]
        while self.cache and self.cache[-1].instance >= instance:
            self.cache_bytes -= len(self.cache.pop().value)

    def _cache_clear(self) -> None:
        self.cache.clear()
        self.cache_bytes = 0
