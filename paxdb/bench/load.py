"""`paxdb bench`: a load generator for users, like pgbench or etcd's benchmark.

Clients are DB-API connections on threads, spread over several processes so the load
generator is not the bottleneck of one GIL. Each client runs the workload in a loop
until the duration ends; every operation's latency is recorded, and errors are
counted by class (an error never stops the run). The parent prints a progress line
every second, then throughput, latency percentiles and errors (or `--json`).

Workloads (tables `bench_*`, created if missing):
    insert      one INSERT of a `--value-size` value per operation
    update      UPDATE of a random row among `PREFILL_ROWS`
    point-read  SELECT of a random row by primary key (with `--consistency`)
    mixed       reads and updates, `--read-ratio` of them reads
    batch       executemany of `--batch` rows per operation (rows/s is ops × batch)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import paxdb

PREFILL_ROWS = 1000
PROGRESS_INTERVAL_S = 1.0
START_DELAY_S = 3.0  # Time for the client processes to start and connect.
WORKLOADS = ("insert", "update", "point-read", "mixed", "batch")


@dataclass(frozen=True)
class BenchOptions:
    url: str
    workload: str = "insert"
    clients: int = 8
    duration: float = 10.0
    value_size: int = 100
    consistency: str = "master"
    databases: int = 1
    batch: int = 100
    read_ratio: float = 0.9
    processes: int = 0  # 0: one per core, at most one per client.

    def __post_init__(self) -> None:
        assert self.workload in WORKLOADS, self.workload
        assert self.clients > 0 and self.duration > 0 and self.databases > 0


@dataclass
class BenchReport:
    options: dict[str, Any]
    operations: int = 0
    rows: int = 0
    seconds: float = 0.0
    per_second: float = 0.0
    rows_per_second: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        lines = [
            f"{self.options['workload']}: {self.operations} operations in {self.seconds:.1f} s "
            f"= {self.per_second:,.0f}/s"
            + (f" ({self.rows_per_second:,.0f} rows/s)" if self.rows != self.operations else ""),
            "latency ms: " + ", ".join(f"{k} {v:.2f}" for k, v in self.latency_ms.items()),
            "errors: " + (", ".join(f"{k} {v}" for k, v in self.errors.items()) or "none"),
        ]
        return "\n".join(lines)

    def json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)


def database_url(url: str, index: int) -> str:
    """The URL of database `index` of the run: main, then main_1, main_2, ..."""
    base, _, query = url.partition("?")
    prefix, _, database = base.rpartition("/")
    name = database if index == 0 else f"{database}_{index}"
    return f"{prefix}/{name}" + (f"?{query}" if query else "")


def prepare(options: BenchOptions) -> None:
    """Create the tables and the rows the update and read workloads touch."""
    for index in range(options.databases):
        conn = paxdb.connect(database_url(options.url, index), timeout=30)
        conn.execute("CREATE TABLE IF NOT EXISTS bench_rows(id INTEGER PRIMARY KEY, v TEXT)")
        row = conn.execute("SELECT count(*) FROM bench_rows").fetchone()
        have = row[0] if row else 0
        if have < PREFILL_ROWS:
            value = "x" * options.value_size
            conn.executemany(
                "INSERT INTO bench_rows(v) VALUES (?)", [(value,)] * (PREFILL_ROWS - have)
            )
        conn.execute("CREATE TABLE IF NOT EXISTS bench_log(id INTEGER PRIMARY KEY, v TEXT)")
        conn.close()


def _operation(options: BenchOptions, cursor: Any, rng: random.Random, value: str) -> int:
    """One operation of the workload; returns the rows it wrote or read."""
    workload = options.workload
    if workload == "mixed":
        workload = "point-read" if rng.random() < options.read_ratio else "update"
    if workload == "insert":
        cursor.execute("INSERT INTO bench_log(v) VALUES (?)", (value,))
    elif workload == "update":
        cursor.execute(
            "UPDATE bench_rows SET v = ? WHERE id = ?", (value, rng.randint(1, PREFILL_ROWS))
        )
    elif workload == "point-read":
        cursor.execute(
            "SELECT v FROM bench_rows WHERE id = ?",
            (rng.randint(1, PREFILL_ROWS),),
            consistency=options.consistency,
        )
        cursor.fetchall()
    else:
        cursor.executemany("INSERT INTO bench_log(v) VALUES (?)", [(value,)] * options.batch)
        return options.batch
    return 1


def _client(
    options: BenchOptions, index: int, stop_at: float, results: dict[str, Any], lock: threading.Lock
) -> None:
    rng = random.Random(os.getpid() * 1000 + index)
    value = "x" * options.value_size
    url = database_url(options.url, index % options.databases)
    conn = paxdb.connect(url, timeout=30)
    cursor = conn.cursor()
    time.sleep(max(0.0, stop_at - options.duration - time.monotonic()))  # Start together.
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    rows = 0
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            rows += _operation(options, cursor, rng, value)
        except paxdb.Error as error:
            errors[type(error).__name__] += 1
            continue
        latencies.append(time.perf_counter() - started)
        if len(latencies) % 64 == 0:
            with lock:
                results["progress"] += 64
    conn.close()
    with lock:
        results["latencies"].extend(latencies)
        results["errors"].update(errors)
        results["rows"] += rows


def _process(options: BenchOptions, first: int, count: int, stop_at: float, queue: Any) -> None:
    results: dict[str, Any] = {"latencies": [], "errors": Counter(), "rows": 0, "progress": 0}
    lock = threading.Lock()
    threads = [
        threading.Thread(target=_client, args=(options, first + i, stop_at, results, lock))
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    reported = 0
    while any(thread.is_alive() for thread in threads):
        time.sleep(PROGRESS_INTERVAL_S / 2)
        with lock:
            done = results["progress"]
        queue.put(("progress", done - reported))
        reported = done
    for thread in threads:
        thread.join()
    queue.put(("done", results["latencies"], dict(results["errors"]), results["rows"]))


def run(options: BenchOptions, progress: Any = None) -> BenchReport:
    prepare(options)
    processes = options.processes or min(options.clients, max(2, os.cpu_count() or 2))
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    # Every client starts at the same instant, once the processes are up, and stops
    # `duration` later, so operations / duration is the real rate.
    stop_at = time.monotonic() + START_DELAY_S + options.duration
    shares = [
        options.clients // processes + (1 if i < options.clients % processes else 0)
        for i in range(processes)
    ]
    workers, first = [], 0
    for share in shares:
        if share:
            workers.append(
                context.Process(target=_process, args=(options, first, share, stop_at, queue))
            )
            first += share
    for worker in workers:
        worker.start()
    return _collect(options, workers, queue, progress)


def _collect(options: BenchOptions, workers: list[Any], queue: Any, progress: Any) -> BenchReport:
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    rows = done = seen = 0
    started = time.monotonic()
    last = started
    while done < len(workers):
        message = queue.get()
        if message[0] == "progress":
            seen += message[1]
            now = time.monotonic()
            if progress is not None and now - last >= PROGRESS_INTERVAL_S:
                progress(f"{now - started:5.1f} s  {seen:>9,} operations")
                last = now
            continue
        _, worker_latencies, worker_errors, worker_rows = message
        latencies.extend(worker_latencies)
        errors.update(worker_errors)
        rows += worker_rows
        done += 1
    for worker in workers:
        worker.join()
    return report(options, latencies, errors, rows)


def report(
    options: BenchOptions, latencies: list[float], errors: Counter[str], rows: int
) -> BenchReport:
    latencies.sort()
    seconds = options.duration

    def percentile(p: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return BenchReport(
        options=asdict(options),
        operations=len(latencies),
        rows=rows,
        seconds=seconds,
        per_second=len(latencies) / seconds,
        rows_per_second=rows / seconds,
        latency_ms={
            "p50": percentile(0.50),
            "p95": percentile(0.95),
            "p99": percentile(0.99),
            "max": percentile(1.0),
        },
        errors=dict(sorted(errors.items())),
    )
