"""`paxdb bench --embedded`: writers as coroutines inside the master's own process.

This measures the node without the client network hop and without a driver: node 1
runs in the bench process as a `paxdb.Node`, the other nodes are child processes with
their own fsync, and `--clients` coroutines on node 1's event loop hand requests
straight to its request handler, each waiting for its own reply (one in flight per
client, as over the network). Node 1 must be the master: if another node wins the
election, that node is restarted until node 1 holds the lease (bounded attempts).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from paxdb.bench.load import (
    PREFILL_ROWS,
    BenchOptions,
    BenchReport,
    database_url,
    prepare,
    report,
)
from paxdb.client.protocol import Consistency, ExecuteRequest
from paxdb.demo import DemoCluster
from paxdb.node.embedded import Node
from paxdb.sql.requests import Statement

MASTER_ATTEMPTS_MAX = 8
MASTER_WAIT_S = 15.0


def run_embedded(
    options: BenchOptions, nodes: int, directory: Path, progress: Callable[[str], None] | None
) -> BenchReport:
    # The other nodes wait up to ~10 s (at 10 ms ticks) before they campaign, so node 1
    # wins the first election; the restart loop below covers the rare exception.
    cluster = DemoCluster(
        directory, nodes, external=(1,), extra_args=("--election-jitter-ticks", "1000")
    )
    node = Node(
        id=1,
        data=directory / "node1",
        listen=f"127.0.0.1:{cluster.ports[1]}",
        peers=cluster.peers,
        secret_file=str(cluster.secret),
    )
    node.start(wait_master=False)
    try:
        cluster.start()
        _make_node_master(node, cluster)
        prepare(dataclasses.replace(options, url=node.url))
        latencies, errors, rows = node.run_in_loop(_load(node, options, progress))
    finally:
        cluster.stop()
        node.stop()
    return report(options, latencies, errors, rows)


def _make_node_master(node: Node, cluster: DemoCluster) -> None:
    for _ in range(MASTER_ATTEMPTS_MAX):
        deadline = time.monotonic() + MASTER_WAIT_S
        master = node.master()
        while master is None and time.monotonic() < deadline:
            time.sleep(0.05)
            master = node.master()
        if master == 1 and node.is_master():
            return
        if master is not None and master != 1:
            # A restarted node waits one lease before it campaigns: with every other node
            # restarted, node 1 is the only candidate once the master's lease runs out.
            for other in [n for n in cluster.ports if n != 1]:
                cluster.restart_node(other)
            time.sleep(0.5)
    raise BenchError(f"node 1 did not become master in {MASTER_ATTEMPTS_MAX} elections")


class BenchError(Exception):
    """The embedded bench could not set up its cluster; one line for the user."""


async def _load(
    node: Node, options: BenchOptions, progress: Callable[[str], None] | None
) -> tuple[list[float], Counter[str], int]:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    rows = [0]
    stop_at = time.monotonic() + options.duration
    clients = [
        _client(node, options, index, stop_at, latencies, errors, rows)
        for index in range(options.clients)
    ]
    reporter = asyncio.ensure_future(_progress(latencies, stop_at, progress))
    await asyncio.gather(*clients)
    reporter.cancel()
    return latencies, errors, rows[0]


async def _progress(
    latencies: list[float], stop_at: float, progress: Callable[[str], None] | None
) -> None:
    started = time.monotonic()
    while progress is not None and time.monotonic() < stop_at:
        await asyncio.sleep(1.0)
        progress(f"{time.monotonic() - started:5.1f} s  {len(latencies):>9,} operations")


async def _client(
    node: Node,
    options: BenchOptions,
    index: int,
    stop_at: float,
    latencies: list[float],
    errors: Counter[str],
    rows: list[int],
) -> None:
    rng = random.Random(index)
    value = "x" * options.value_size
    database = database_url("x/main", index % options.databases).rpartition("/")[2]
    client_id = f"bench-embedded-{index}-{random.getrandbits(32):08x}"
    seq = 0
    while time.monotonic() < stop_at:
        seq += 1
        request, count = _request(options, rng, value, database, client_id, seq)
        started = time.perf_counter()
        reply = await node.server.handle(request)
        error = getattr(reply, "error", None)
        if error is not None:
            errors[error.class_name] += 1
            continue
        latencies.append(time.perf_counter() - started)
        rows[0] += count


def _request(
    options: BenchOptions,
    rng: random.Random,
    value: str,
    database: str,
    client_id: str,
    seq: int,
) -> tuple[ExecuteRequest, int]:
    workload = options.workload
    if workload == "mixed":
        workload = "point-read" if rng.random() < options.read_ratio else "update"
    if workload == "point-read":
        statement = Statement(
            "SELECT v FROM bench_rows WHERE id = ?", (rng.randint(1, PREFILL_ROWS),)
        )
        return ExecuteRequest(
            seq, database, (statement,), False, Consistency(options.consistency)
        ), 1
    if workload == "update":
        statements: tuple[Statement, ...] = (
            Statement(
                "UPDATE bench_rows SET v = ? WHERE id = ?", (value, rng.randint(1, PREFILL_ROWS))
            ),
        )
    elif workload == "batch":
        statements = (Statement("INSERT INTO bench_log(v) VALUES (?)", (value,)),) * options.batch
    else:
        statements = (Statement("INSERT INTO bench_log(v) VALUES (?)", (value,)),)
    request = ExecuteRequest(seq, database, statements, True, Consistency.MASTER, client_id, seq)
    return request, len(statements)
