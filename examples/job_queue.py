"""A replicated job queue, embedded: three paxdb nodes inside this one process.

Producers enqueue jobs through one node; workers on every node claim jobs with one
atomic UPDATE ... RETURNING, so each job is claimed exactly once cluster-wide even when
workers race, and every node's SQLite file ends up with the same rows.

    python examples/job_queue.py --jobs 50 --workers 3
    python examples/job_queue.py --dir /tmp/jobs     # keep the data

In a real deployment each node runs in its own process on its own machine (give each
`paxdb.Node` its own `listen` and the same `peers`); the code that uses the queue is
the same DB-API code.
"""

from __future__ import annotations

import argparse
import socket
import tempfile
import threading
from pathlib import Path

import paxdb

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs(
    id INTEGER PRIMARY KEY,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'running', 'done')),
    worker TEXT,
    enqueued_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
)
"""

# One statement, one atomic replicated request: the oldest queued job becomes ours.
CLAIM = """
UPDATE jobs SET state = 'running', worker = ?
WHERE id = (SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1)
RETURNING id, payload
"""


def free_port_pair() -> int:
    """A peer port P with P + 1000 free too (the default client port)."""
    while True:
        with socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            if port + 1000 > 65535:
                continue
            try:
                b.bind(("127.0.0.1", port + 1000))
            except OSError:
                continue
            return int(port)


def start_cluster(directory: Path, size: int) -> list[paxdb.Node]:
    ports = []
    while len(ports) < size:
        port = free_port_pair()
        if port not in ports:
            ports.append(port)
    peers = ",".join(f"{i}=127.0.0.1:{p}" for i, p in enumerate(ports, start=1))
    nodes = [
        paxdb.Node(id=i, data=directory / f"node{i}", listen=f"127.0.0.1:{p}", peers=peers)
        for i, p in enumerate(ports, start=1)
    ]
    for node in nodes:
        node.start(wait_master=False)
    nodes[0].wait_for_master()
    return nodes


def worker(node: paxdb.Node, name: str, done: list[tuple[int, str]]) -> None:
    conn = paxdb.connect(node=node, database="main")
    while True:
        row = conn.execute(CLAIM, (name,)).fetchone()
        if row is None:
            return  # The queue is empty.
        job_id, payload = row
        result = payload.upper()  # The "work".
        conn.execute("UPDATE jobs SET state = 'done' WHERE id = ?", (job_id,))
        done.append((job_id, name))
        print(f"{name} did job {job_id}: {result}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--dir", help="data directory (default: a temporary one)")
    args = parser.parse_args()
    directory = Path(args.dir or tempfile.mkdtemp(prefix="paxdb-jobs-"))
    nodes = start_cluster(directory, 3)
    try:
        producer = paxdb.connect(node=nodes[0], database="main")
        producer.execute(SCHEMA)
        producer.executemany(
            "INSERT INTO jobs(payload) VALUES (?)", [(f"job {n}",) for n in range(args.jobs)]
        )
        done: list[tuple[int, str]] = []
        threads = [
            threading.Thread(target=worker, args=(nodes[i % len(nodes)], f"worker-{i}", done))
            for i in range(args.workers)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ids = sorted(job_id for job_id, _ in done)
        assert ids == list(range(1, args.jobs + 1)), "every job exactly once"
        states = producer.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()
        print(f"{len(ids)} jobs done exactly once by {args.workers} workers; states: {states}")
    finally:
        for node in nodes:
            node.stop()


if __name__ == "__main__":
    main()
