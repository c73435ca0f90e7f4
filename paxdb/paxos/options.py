"""Options of one replica: every timeout in ticks, every bound of the core.

Defaults come from `paxdb.limits`; tests and the simulator shrink them. `mutant` is a
test-only hook that switches on one deliberate flaw, so the simulator can prove it
catches that class of bug (see `MUTANTS`); it is never set outside tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb import limits

# Configuration changes remembered for `Replica.checkpoint_meta` (see history.py). A
# master renews its lease about once a second with the default limits, so this covers
# about a quarter of an hour of checkpoint lag.
CONFIG_HISTORY_MAX = 1024

MUTANTS: dict[str, str] = {
    "acceptor-forgets-promise": "an acceptor answers a Prepare without persisting its promise",
    "proposer-ignores-accepted": "a proposer ignores the highest accepted value in promises",
    "learner-counts-duplicates": "a duplicate Accepted from one acceptor is counted twice",
    "lease-from-learn-tick": "the holder counts its lease from the tick it learned the "
    "value instead of the tick it issued it",
    "restore-ignores-master-version": "a replica restored from a checkpoint keeps its own "
    "master version instead of the checkpoint's",
    "checkpoint-meta-off-by-one": "checkpoint metadata names the membership and master in "
    "force at the last applied instance instead of the next one",
    "rejoin-without-fence": "a node that lost its disk votes at once, as if it had never "
    "voted before (the rejoining flag is ignored)",
    "learner-votes-count": "a learner votes on Accepts and the master counts its Accepted "
    "toward the quorum",
    "transfer-keeps-lease": "an old master keeps its lease until it would have ended, "
    "though it handed the master role over",
}


@dataclass(frozen=True, slots=True)
class Options:
    lease_ticks: int = limits.LEASE_TICKS
    lease_renew_ticks: int = limits.LEASE_RENEW_TICKS
    drift_ppm: int = limits.CLOCK_DRIFT_PPM
    phase_timeout_ticks: int = limits.PHASE_TIMEOUT_TICKS
    election_jitter_ticks: int = limits.ELECTION_JITTER_TICKS
    catchup_probe_ticks: int = limits.CATCHUP_PROBE_TICKS
    catchup_timeout_ticks: int = limits.CATCHUP_TIMEOUT_TICKS
    batch_values_max: int = limits.BATCH_VALUES_MAX
    batch_bytes_max: int = limits.BATCH_BYTES_MAX
    proposals_queued_max: int = limits.PROPOSALS_QUEUED_MAX
    catchup_values_max: int = limits.CATCHUP_VALUES_MAX
    catchup_bytes_max: int = limits.CATCHUP_BYTES_MAX
    config_history_max: int = CONFIG_HISTORY_MAX
    mutant: str | None = None

    def __post_init__(self) -> None:
        assert 0 < self.lease_renew_ticks < self.lease_ticks
        assert 0 < self.phase_timeout_ticks < self.lease_renew_ticks
        assert self.election_jitter_ticks > 0
        assert 0 < self.catchup_timeout_ticks <= self.catchup_probe_ticks
        assert 0 < self.batch_values_max <= self.proposals_queued_max
        assert self.batch_bytes_max > 0
        assert self.catchup_values_max > 0
        assert self.catchup_bytes_max > 0
        assert self.config_history_max > 0
        assert self.mutant is None or self.mutant in MUTANTS, self.mutant
