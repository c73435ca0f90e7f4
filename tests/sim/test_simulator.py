"""The simulator in CI: a fixed list of seeds must pass, every mutant must be caught,
and a seed must replay exactly (same trace hash)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from paxdb.paxos.options import MUTANTS
from paxdb.sim.__main__ import report_failure, run_many
from paxdb.sim.cluster import run_seed

CI_SEEDS = range(0, 400)
JOBS = max(2, os.cpu_count() or 1)


def failure_report(results: list) -> str:  # type: ignore[type-arg]
    out = io.StringIO()
    for result in results:
        if not result.ok:
            report_failure(result, out)
    return out.getvalue()


@pytest.mark.timeout(600)
def test_ci_seeds_pass_every_invariant() -> None:
    results = run_many(CI_SEEDS, None, JOBS, stop_on_failure=False)
    assert len(results) == len(CI_SEEDS)
    assert all(result.ok for result in results), failure_report(results)
    assert sum(result.chosen for result in results) > 10_000
    assert sum(result.faults["crash"] for result in results) > 100
    assert sum(result.faults["partition"] for result in results) > 50
    # Checkpoints, truncation and transfers must really happen, or their coverage is gone.
    counts = {name: sum(r.checkpoints[name] for r in results) for name in results[0].checkpoints}
    assert counts["taken"] > 5_000, counts
    assert counts["truncations"] > 5_000, counts
    assert counts["needed"] > 1_000, counts
    assert counts["installs"] > 500, counts
    assert counts["install_crashes"] > 50, counts
    assert counts["fetch_failures"] > 10, counts
    assert sum(1 for r in results if r.checkpoints["installs"]) > 100, counts
    # So must wipes and rejoins (a wiped node lifting its fence).
    assert sum(r.faults["wipe"] for r in results) > 300
    assert sum(r.faults["rejoined"] for r in results) > 300
    # And membership: new nodes join as learners and learn, learners are promoted, the
    # master role is handed over and the former master removed, removed ids come back.
    members = {name: sum(r.membership[name] for r in results) for name in results[0].membership}
    assert members["changes"] > 300, members
    assert members["joins"] > 100, members
    assert members["learners_added"] > 150, members
    assert members["learner_applied"] > 5_000, members
    assert members["promoted"] > 40, members
    assert members["voters_removed"] > 80, members
    assert members["transfers"] > 300, members
    assert members["former_master_removed"] > 50, members
    assert members["learners_removed"] > 50, members
    assert members["readded"] > 50, members


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mutant", sorted(MUTANTS))
def test_every_mutant_is_caught_within_the_ci_seeds(mutant: str) -> None:
    results = run_many(CI_SEEDS, mutant, JOBS, stop_on_failure=True)
    caught = [result for result in results if not result.ok]
    assert caught, f"mutant {mutant!r} survived {len(results)} seeds"
    assert "liveness" not in caught[0].message, caught[0].message


@pytest.mark.parametrize("seed", [0, 7, 42])
def test_a_seed_replays_exactly(seed: int) -> None:
    first, second = run_seed(seed), run_seed(seed)
    assert first.ok and second.ok
    assert first.trace_hash == second.trace_hash
    assert first.chosen == second.chosen
    assert run_seed(seed + 1).trace_hash != first.trace_hash


def test_the_command_line_replays_a_seed_and_lists_mutants() -> None:
    run = [sys.executable, "-m", "paxdb.sim"]
    listing = subprocess.run([*run, "--list-mutants"], capture_output=True, text=True)
    assert listing.returncode == 0
    assert listing.stdout.split() == sorted(MUTANTS)
    replay = subprocess.run([*run, "--seed", "3"], capture_output=True, text=True)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "seed 3 ok" in replay.stdout
    assert run_seed(3).trace_hash in replay.stdout
    bad = subprocess.run([*run, "--seeds", "9-2"], capture_output=True, text=True)
    assert bad.returncode == 2
    assert "seed range" in bad.stderr


def test_a_caught_mutant_prints_the_seed_options_trace_and_replay_command() -> None:
    run = [sys.executable, "-m", "paxdb.sim", "--mutant", "proposer-ignores-accepted"]
    result = subprocess.run(
        [*run, "--seeds", "0-399", "--jobs", "1"], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "VIOLATION seed=" in result.stdout
    assert "options: nodes=" in result.stdout
    assert "replay: PAXDB_SEED=" in result.stdout
    assert "--mutant proposer-ignores-accepted" in result.stdout
