"""The options of one simulator run, drawn from its seed (swarm testing).

Each seed draws its own cluster size, fault rates, lease length, batch limit and
checkpoint cadence, so a range of seeds covers many configurations. A new option is
drawn after the existing ones, so adding one leaves the others of every seed as they
were.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, replace

from paxdb.paxos.options import Options
from paxdb.sim.network import UNITS_PER_TICK


@dataclass(frozen=True, slots=True)
class SimOptions:
    """Everything a run depends on besides the seed; drawn from the seed (swarm testing)."""

    nodes: int
    fault_ticks: int
    liveness_ticks_max: int
    loss: float
    duplicate: float
    delay_max: int
    long_delay: float
    crash_rate: float  # Per tick, across the cluster.
    restart_ticks_max: int
    partition_rate: float
    heal_rate: float  # Chance per tick that every partition heals.
    crash_after_reply: float  # Chance to crash a node right after it sends an Accepted.
    crash_after_promise: float  # Chance to crash a node right after it sends a Promise.
    crash_before_persist: float  # Chance to crash between the early sends and the fsync.
    power_loss: float  # Share of crashes that lose unsynced writes (the rest are kill -9).
    request_rate: float  # Client requests per tick, across the cluster.
    drift_ppm_used: int  # Clock rates differ by at most this (within the core's bound).
    lease_ticks: int
    election_jitter_ticks: int  # Small values make candidates collide (duelling proposers).
    batch_values_max: int
    checkpoint_every: int = 0  # Applied instances between checkpoints; 0: never.
    log_hold: int = 0  # Instances kept in the log below the newest checkpoint.
    crash_during_install: float = 0.0  # Chance to crash between swap and `restore`.
    config_history_max: int = 1024  # The core's bound; small values make it say None.
    wipe_rate: float = 0.0  # Per tick, across the cluster: a node loses its whole disk.
    wipe_after_reply: float = 0.0  # Chance to wipe a node right after it sends an Accepted.
    start_rejoining: bool = False  # Every node starts with rejoining=True (bootstrap).
    spare_nodes: int = 0  # Node ids beyond the initial cluster that may join.
    membership_every: int = 0  # Ticks between the operator's steps; 0: no changes.
    mutant: str | None = None  # Last, so a report's options line ends with it.

    @staticmethod
    def draw(seed: int, mutant: str | None = None) -> SimOptions:
        rng = random.Random(f"options-{seed}")
        lease = rng.choice((30, 40, 60))
        return (
            SimOptions(
                nodes=rng.choice((3, 3, 5)),
                fault_ticks=rng.choice((600, 900, 1200)),
                liveness_ticks_max=lease * 12,
                loss=rng.choice((0.0, 0.02, 0.1, 0.25)),
                duplicate=rng.choice((0.0, 0.05, 0.2)),
                delay_max=rng.choice((400, 1500, 4000)),
                long_delay=rng.choice((0.0, 0.01, 0.05)),
                crash_rate=rng.choice((0.0, 0.005, 0.02, 0.05)),
                restart_ticks_max=rng.choice((0, 5, 40, 150)),
                partition_rate=rng.choice((0.0, 0.003, 0.01, 0.03)),
                heal_rate=rng.choice((0.003, 0.02, 0.1)),
                crash_after_reply=rng.choice((0.0, 0.0, 0.01, 0.05)),
                crash_after_promise=rng.choice((0.0, 0.1, 0.3)),
                crash_before_persist=rng.choice((0.0, 0.0, 0.002, 0.01)),
                power_loss=rng.choice((0.0, 0.5, 1.0)),
                request_rate=0.0,
                drift_ppm_used=rng.choice((0, 20_000, 45_000)),
                lease_ticks=lease,
                election_jitter_ticks=rng.choice((lease // 2, lease // 2, 3, 1)),
                batch_values_max=rng.choice((1, 4, 64)),
                mutant=mutant,
            )
            .with_request_rate(rng)
            .with_checkpoints(rng)
            .with_wipes(rng)
            .with_membership(rng)
        )

    def with_request_rate(self, rng: random.Random) -> SimOptions:
        """A request rate below the cluster's capacity, so queues stay bounded."""
        capacity = self.batch_values_max * UNITS_PER_TICK / (2 * self.delay_max)
        rate = round(rng.choice((0.1, 0.3, 0.6)) * capacity, 3)
        return replace(self, request_rate=max(0.05, min(rate, 3.0)))

    def with_checkpoints(self, rng: random.Random) -> SimOptions:
        """Small checkpoint intervals, so logs are cut and lagging nodes need transfers."""
        return replace(
            self,
            checkpoint_every=rng.choice((0, 3, 6, 12, 24)),
            log_hold=rng.choice((0, 0, 2, 8)),
            crash_during_install=rng.choice((0.0, 0.1, 0.3)),
            config_history_max=rng.choice((1024, 1024, 3)),
        )

    def with_wipes(self, rng: random.Random) -> SimOptions:
        """Wipes (one rejoining node at a time), some right after a vote that decided."""
        return replace(
            self,
            wipe_rate=rng.choice((0.0, 0.0, 0.005, 0.02)),
            wipe_after_reply=rng.choice((0.0, 0.0, 0.0, 0.01)),
            start_rejoining=rng.random() < 0.25,
        )

    def with_membership(self, rng: random.Random) -> SimOptions:
        """Membership changes and hand-overs in most runs (paxdb/sim/membership.py)."""
        return replace(
            self,
            spare_nodes=rng.choice((1, 2)),
            membership_every=rng.choice((0, 30, 60, 120)),
        )

    def core_options(self) -> Options:
        return Options(
            lease_ticks=self.lease_ticks,
            lease_renew_ticks=self.lease_ticks // 2,
            drift_ppm=50_000,
            phase_timeout_ticks=max(4, self.lease_ticks // 6),
            election_jitter_ticks=self.election_jitter_ticks,
            catchup_probe_ticks=self.lease_ticks // 2,
            catchup_timeout_ticks=self.lease_ticks // 4,
            batch_values_max=self.batch_values_max,
            catchup_values_max=16,
            config_history_max=self.config_history_max,
            mutant=self.mutant,
        )


def describe_options(options: SimOptions) -> str:
    return " ".join(f"{k}={v}" for k, v in asdict(options).items())
