"""Every program in examples/ runs, as a user would run it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cluster import ProcessCluster, free_peer_ports

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.timeout(120)
def test_the_embedded_job_queue_runs_every_job_exactly_once(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLES / "job_queue.py"),
            "--jobs",
            "25",
            "--workers",
            "3",
            "--dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "25 jobs done exactly once by 3 workers; states: [('done', 25)]" in result.stdout
    assert result.stderr == ""  # An embedded node logs nothing unless asked to.


@pytest.mark.timeout(150)
def test_the_failover_script_survives_a_master_kill(cluster: ProcessCluster) -> None:
    cluster.master()
    script = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "failover.py"), cluster.url, "--writes", "150"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert script.stdout is not None
        assert script.stdout.readline().startswith("wrote 50")
        cluster.kill(cluster.master())
        output = script.stdout.read()
        assert script.wait(120) == 0, output
    finally:
        if script.poll() is None:
            script.kill()
    assert "150 rows, 0 duplicated" in output


@pytest.mark.timeout(90)
def test_the_three_node_configs_start_a_cluster(tmp_path: Path) -> None:
    ports = free_peer_ports(3)
    (tmp_path / "secret").write_text("an example secret, long enough")
    processes = []
    try:
        for node_id in (1, 2, 3):
            text = (EXAMPLES / "three-node" / f"node{node_id}.toml").read_text()
            for old, new in zip((7001, 7002, 7003), ports, strict=True):
                text = text.replace(f"127.0.0.1:{old}", f"127.0.0.1:{new}")
            config = tmp_path / f"node{node_id}.toml"
            config.write_text(text)
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "paxdb", "serve", "--config", config.name],
                    cwd=tmp_path,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
        url = "paxdb://" + ",".join(f"127.0.0.1:{p + 1000}" for p in ports) + "/main"
        deadline = time.monotonic() + 30
        status = ""
        while time.monotonic() < deadline:
            status = subprocess.run(
                [sys.executable, "-m", "paxdb", "status", url], capture_output=True, text=True
            ).stdout
            if re.search(r"main\s+\w+\s+[123]\s", status):
                break
            time.sleep(0.3)
        assert re.search(r"main\s+\w+\s+[123]\s", status), status
        assert (tmp_path / "paxdb-data" / "node1" / "groups" / "main" / "db.sqlite").exists()
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(15) == 0
