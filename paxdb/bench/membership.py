"""Measure membership changes: how long a node takes to join, and how long writes pause
when the master is removed (it hands over first) against when it is killed.

    python -m paxdb.bench.membership --rows 200000

A three-node cluster on loopback. `--rows` rows of 100 bytes are inserted in batches;
then one writer inserts one row at a time, without pause, for the rest of the run, and:
1. node 4 is started with an empty directory and `--join`: timed until it is a voter
   (it receives `main`'s newest checkpoint, catches up, and is promoted);
2. `paxdb members remove <master>`: the longest gap between two acknowledged writes
   around it is the write pause of a planned removal (hand-over, then removal);
3. the new master is killed (kill -9): the longest gap is the pause of an unplanned
   failure (its lease must run out before another node may take over).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paxdb
from paxdb.bench.catchup import _status
from paxdb.client.admin import request_change
from paxdb.demo import CLIENT_PORT_OFFSET, DemoCluster, pick_ports

POLL_S = 0.05
SETTLE_S = 2.0  # Writes before and after each event, so its pause lies inside the window.


class Writer:
    """One connection inserting rows one at a time; keeps the time of every ack."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.acks: list[float] = []
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        connection = paxdb.connect(self.url, timeout=30)
        while not self.stop.is_set():
            try:
                connection.execute("INSERT INTO bench(v) VALUES (?)", ("x" * 100,))
                self.acks.append(time.monotonic())
            except paxdb.Error:
                self.errors += 1
        connection.close()

    def longest_gap(self, since: float) -> float:
        times = [t for t in self.acks if t >= since]
        return max((b - a for a, b in zip(times, times[1:], strict=False)), default=0.0)


def measure(rows: int, directory: Path) -> dict[str, Any]:
    # Checkpoints every 8 MB with a short log, so the joiner starts from a checkpoint.
    cluster = DemoCluster(directory, 3, extra_args=("--checkpoint-log-mb", "8", "--log-keep", "10"))
    cluster.start()
    try:
        master = cluster.wait_for_master(lambda _: None)
        setup = paxdb.connect(cluster.url, timeout=60)
        setup.execute("CREATE TABLE bench(id INTEGER PRIMARY KEY, v TEXT)")
        for start in range(0, rows, 4_000):
            count = min(4_000, rows - start)
            setup.executemany("INSERT INTO bench(v) VALUES (?)", [("x" * 100,)] * count)
        setup.close()
        writer = Writer(cluster.url)
        writer.thread.start()
        time.sleep(SETTLE_S)

        (port,) = pick_ports(1, avoid=cluster.ports.values())
        cluster.ports[4] = port
        log = open(directory / "node4.log", "ab")  # noqa: SIM115
        started = time.monotonic()
        joiner = subprocess.Popen(
            [
                sys.executable,
                *("-m", "paxdb", "serve", "--id", "4", "--data", str(directory / "node4")),
                *("--listen", f"127.0.0.1:{port}", "--secret-file", str(cluster.secret)),
                *("--join", cluster.url, "--checkpoint-log-mb", "8", "--log-keep", "10"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        cluster.processes[4] = joiner
        while not _is_voter(cluster, 4):
            if joiner.poll() is not None:
                raise SystemExit(f"node 4 exited; see {directory / 'node4.log'}")
            time.sleep(POLL_S)
        join_s = time.monotonic() - started
        join_gap = writer.longest_gap(started)

        time.sleep(SETTLE_S)
        master = _master(cluster)
        started = time.monotonic()
        outcome = request_change(cluster.url, "remove", master)
        remove_s = time.monotonic() - started
        time.sleep(SETTLE_S)
        planned_gap = writer.longest_gap(started - 0.5)
        removed = cluster.processes.pop(master)  # Removed: stop it.
        removed.send_signal(signal.SIGTERM)
        removed.wait(30)

        time.sleep(SETTLE_S)
        victim = _master(cluster)
        started = time.monotonic()
        killed = cluster.processes.pop(victim)
        killed.send_signal(signal.SIGKILL)
        killed.wait(30)
        time.sleep(SETTLE_S + 3)
        unplanned_gap = writer.longest_gap(started - 0.5)
        writer.stop.set()
        writer.thread.join(60)
        return {
            "rows_before_join": rows,
            "join_seconds_until_voter": round(join_s, 2),
            "longest_write_gap_during_join_ms": round(join_gap * 1000, 1),
            "remove_master_command_seconds": round(remove_s, 2),
            "remove_master_outcome": outcome,
            "longest_write_gap_remove_master_ms": round(planned_gap * 1000, 1),
            "longest_write_gap_kill_master_ms": round(unplanned_gap * 1000, 1),
            "writes_acknowledged": len(writer.acks),
            "write_errors": writer.errors,
        }
    finally:
        cluster.stop()


def _client_url(cluster: DemoCluster, node_id: int) -> str:
    return f"paxdb://127.0.0.1:{cluster.ports[node_id] + CLIENT_PORT_OFFSET}/main"


def _is_voter(cluster: DemoCluster, node_id: int) -> bool:
    try:
        group = _status(cluster, node_id)
    except Exception:  # noqa: BLE001 - not serving yet
        return False
    return node_id in group["members"] and group["role"] in ("follower", "master")


def _master(cluster: DemoCluster) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for node_id, process in cluster.processes.items():
            if process.poll() is None:
                try:
                    group = _status(cluster, node_id)
                except Exception:  # noqa: BLE001 - a node restarting: ask another
                    continue
                if group["role"] == "master":
                    return node_id
        time.sleep(POLL_S)
    raise SystemExit("no master within 30 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--dir", help="Keep the cluster's data here.")
    arguments = parser.parse_args()
    if arguments.dir:
        directory = Path(arguments.dir)
        directory.mkdir(parents=True, exist_ok=True)
        result = measure(arguments.rows, directory)
    else:
        with tempfile.TemporaryDirectory(prefix="paxdb-membership-") as name:
            result = measure(arguments.rows, Path(name))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
