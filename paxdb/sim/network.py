"""The simulated network: delay, loss, duplication, reordering and partitions.

Every decision comes from the simulator's seeded `random.Random`, so a seed replays
the same deliveries. Time is in simulator units (`UNITS_PER_TICK` per nominal tick).
Partitions are sets of blocked *directed* links, so one-way partitions are natural.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from paxdb.paxos.effects import Envelope

UNITS_PER_TICK = 1000


@dataclass(slots=True)
class NetworkFaults:
    loss: float = 0.0  # Probability that a message is dropped.
    duplicate: float = 0.0  # Probability that a message is delivered twice.
    delay_min: int = 200  # Units.
    delay_max: int = 2000
    long_delay: float = 0.0  # Probability of a delay up to `long_delay_max` (reordering).
    long_delay_max: int = 20_000


@dataclass(slots=True)
class Network:
    rng: random.Random
    faults: NetworkFaults
    blocked: set[tuple[int, int]] = field(default_factory=set)
    sent: int = 0
    dropped: int = 0
    duplicated: int = 0

    def is_blocked(self, source: int, target: int) -> bool:
        return (source, target) in self.blocked

    def plan(self, envelope: Envelope) -> list[int]:
        """Delays (in units) of the copies of `envelope` that will arrive; [] if lost."""
        self.sent += 1
        if self.is_blocked(envelope.source, envelope.target):
            self.dropped += 1
            return []
        if self.rng.random() < self.faults.loss:
            self.dropped += 1
            return []
        copies = 1
        if self.rng.random() < self.faults.duplicate:
            copies = 2
            self.duplicated += 1
        return [self._delay() for _ in range(copies)]

    def _delay(self) -> int:
        if self.rng.random() < self.faults.long_delay:
            return self.rng.randint(self.faults.delay_min, self.faults.long_delay_max)
        return self.rng.randint(self.faults.delay_min, self.faults.delay_max)

    def partition(self, side: list[int], others: list[int], one_way: bool) -> None:
        for a in side:
            for b in others:
                self.blocked.add((a, b))
                if not one_way:
                    self.blocked.add((b, a))

    def heal(self, nodes: list[int] | None = None) -> None:
        if nodes is None:
            self.blocked.clear()
            return
        keep = {(a, b) for (a, b) in self.blocked if a not in nodes or b not in nodes}
        self.blocked = keep
