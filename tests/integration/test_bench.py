"""`paxdb bench` runs and reports (its speed is measured by people, not by tests)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cluster import ProcessCluster


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "paxdb", "bench", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.timeout(150)
def test_bench_reports_throughput_latency_and_errors(cluster: ProcessCluster) -> None:
    cluster.master()
    result = bench(
        cluster.url,
        "--workload",
        "batch",
        "--batch",
        "10",
        "--clients",
        "2",
        "--duration",
        "1",
        "--json",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["operations"] > 0
    assert report["rows"] == 10 * report["operations"]
    assert report["errors"] == {}
    latency = report["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
    assert report["options"]["workload"] == "batch"

    text = bench(
        cluster.url,
        "--workload",
        "point-read",
        "--consistency",
        "local",
        "--clients",
        "2",
        "--duration",
        "1",
    )
    assert text.returncode == 0, text.stderr
    assert "point-read:" in text.stdout and "errors: none" in text.stdout
    assert "operations" in text.stderr  # The progress lines.


@pytest.mark.timeout(150)
def test_embedded_bench_runs_its_writers_inside_the_master() -> None:
    result = bench("--local", "3", "--embedded", "--clients", "4", "--duration", "1", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["operations"] > 0
    assert report["rows"] == report["operations"]
    assert report["errors"] == {}
    assert report["options"]["clients"] == 4


def test_embedded_bench_needs_a_local_cluster_and_one_database() -> None:
    result = bench("paxdb://127.0.0.1:1/main", "--embedded", "--duration", "1")
    assert result.returncode == 2
    assert "--embedded needs --local N" in result.stderr
    result = bench("--local", "3", "--embedded", "--databases", "2", "--duration", "1")
    assert result.returncode == 2
    assert "--embedded runs one database" in result.stderr


def test_bench_needs_a_url_or_a_local_cluster() -> None:
    result = bench("--duration", "1")
    assert result.returncode == 2
    assert "give a URL, or --local N" in result.stderr


@pytest.mark.timeout(180)
def test_membership_bench_shows_a_hand_over_pauses_writes_far_less_than_a_failure() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paxdb.bench.membership", "--rows", "5000"],
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["rows_before_join"] == 5000
    assert 0 < report["join_seconds_until_voter"] < 60
    assert report["remove_master_outcome"].startswith("node ")
    assert "removed, from instance" in report["remove_master_outcome"]
    assert report["write_errors"] == 0
    # A killed master's lease (2 s) must run out first; a hand-over waits for no lease.
    assert report["longest_write_gap_kill_master_ms"] > 2000
    assert report["longest_write_gap_remove_master_ms"] < 1000
