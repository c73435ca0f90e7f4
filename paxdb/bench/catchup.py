"""Measure how fast a replica catches up: from the log, or by a checkpoint transfer.

    python -m paxdb.bench.catchup --behind 100000          # from the peers' logs
    python -m paxdb.bench.catchup --behind 20000 --checkpoint

A three-node cluster on loopback; one follower is stopped, `--behind` instances are
chosen without it (one small insert each, from `--clients` writers), then it is started
again and timed until it has applied everything the master had. Reported: instances/s
and MB/s, where MB are the bytes the other node's Paxos log grew by while the follower
was away (values with their record framing), a fair measure of what had to travel.

Without `--checkpoint` the nodes keep their whole log (no truncation), so the follower
learns every instance in catch-up batches; with it, checkpoints are taken every 1000
instances and the log is cut, so the follower must receive a checkpoint first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paxdb
from paxdb.cli import fetch_status
from paxdb.demo import CLIENT_PORT_OFFSET, DemoCluster

POLL_S = 0.05


def _status(cluster: DemoCluster, node_id: int) -> dict[str, Any]:
    url = f"paxdb://127.0.0.1:{cluster.ports[node_id] + CLIENT_PORT_OFFSET}/main"
    group: dict[str, Any] = fetch_status(url)["groups"]["main"]
    return group


def _directory_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _writer(url: str, stop: threading.Event, counter: list[int], lock: threading.Lock) -> None:
    connection = paxdb.connect(url, timeout=30)
    cursor = connection.cursor()
    while not stop.is_set():
        cursor.execute("INSERT INTO catchup(v) VALUES (?)", ("x" * 100,))
        with lock:
            counter[0] += 1
    connection.close()


def measure(behind: int, clients: int, checkpoint: bool, directory: Path) -> dict[str, Any]:
    flags = (
        ("--checkpoint-every", "1000", "--log-keep", "200")
        if checkpoint
        else ("--checkpoint-every", str(10**9), "--log-keep", str(10**9))
    )
    cluster = DemoCluster(directory, 3, extra_args=flags)
    cluster.start()
    try:
        master = cluster.wait_for_master(lambda _: None)
        away = next(n for n in cluster.ports if n != master)
        url = cluster.url
        setup = paxdb.connect(url, timeout=30)
        setup.execute("CREATE TABLE IF NOT EXISTS catchup(id INTEGER PRIMARY KEY, v TEXT)")
        setup.close()
        cluster.processes[away].terminate()
        cluster.processes[away].wait(30)
        log_dir = directory / f"node{master}" / "log"
        log_before = _directory_bytes(log_dir)
        start_instance = _status(cluster, master)["chosen"]
        stop, counter, lock = threading.Event(), [0], threading.Lock()
        writers = [
            threading.Thread(target=_writer, args=(url, stop, counter, lock))
            for _ in range(clients)
        ]
        for thread in writers:
            thread.start()
        while _status(cluster, master)["chosen"] - start_instance < behind:
            time.sleep(0.5)
        stop.set()
        for thread in writers:
            thread.join()
        target = _status(cluster, master)["chosen"]
        log_bytes = _directory_bytes(log_dir) - log_before
        started = time.monotonic()
        cluster.start_node(away)
        applied = -1
        with contextlib.suppress(Exception):
            applied = _status(cluster, away)["applied"]
        while applied < target:
            time.sleep(POLL_S)
            with contextlib.suppress(Exception):
                applied = _status(cluster, away)["applied"]
        seconds = time.monotonic() - started
        group = _status(cluster, away)
        return {
            "behind_instances": target - start_instance,
            "writes": counter[0],
            "seconds": round(seconds, 2),
            "instances_per_second": round((target - start_instance) / seconds),
            "log_megabytes": round(log_bytes / 1e6, 1),
            "megabytes_per_second": round(log_bytes / 1e6 / seconds, 1),
            "by_checkpoint": group.get("checkpoints_installed", 0) > 0,
            "note": "seconds include the node's process start",
        }
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--behind", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--checkpoint", action="store_true")
    parser.add_argument("--dir", help="Keep the cluster's data here.")
    arguments = parser.parse_args()
    if arguments.dir:
        directory = Path(arguments.dir)
        directory.mkdir(parents=True, exist_ok=True)
        result = measure(arguments.behind, arguments.clients, arguments.checkpoint, directory)
    else:
        with tempfile.TemporaryDirectory(prefix="paxdb-catchup-") as name:
            result = measure(arguments.behind, arguments.clients, arguments.checkpoint, Path(name))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
