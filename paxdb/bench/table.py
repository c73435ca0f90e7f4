"""Run the workloads of docs/performance.md and print its table (markdown).

    python -m paxdb.bench.table --nodes 3 --duration 10

Each row is one `paxdb bench --local N ... --json` run, in a fresh cluster, one after
the other (never two at once: they would share the cores). The command of every row is
printed with it, so each figure can be reproduced alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys

ROWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("insert, 1 client", ("--workload", "insert", "--clients", "1")),
    ("insert, 16 clients", ("--workload", "insert", "--clients", "16")),
    ("insert, 64 clients", ("--workload", "insert", "--clients", "64")),
    ("insert, embedded, 1 writer", ("--embedded", "--workload", "insert", "--clients", "1")),
    ("insert, embedded, 64 writers", ("--embedded", "--workload", "insert", "--clients", "64")),
    ("batch of 100 rows, 8 clients", ("--workload", "batch", "--batch", "100", "--clients", "8")),
    (
        "point-read local, 64 clients",
        ("--workload", "point-read", "--consistency", "local", "--clients", "64"),
    ),
    (
        "point-read master, 64 clients",
        ("--workload", "point-read", "--consistency", "master", "--clients", "64"),
    ),
    (
        "point-read linearizable, 64 clients",
        ("--workload", "point-read", "--consistency", "linearizable", "--clients", "64"),
    ),
    (
        "insert, 64 clients, 4 databases",
        ("--workload", "insert", "--clients", "64", "--databases", "4"),
    ),
)


def run_row(nodes: int, duration: float, arguments: tuple[str, ...]) -> dict[str, object]:
    command = [
        sys.executable,
        "-m",
        "paxdb",
        "bench",
        "--local",
        str(nodes),
        "--duration",
        str(duration),
        "--json",
        *arguments,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 180)
    if done.returncode != 0:
        raise SystemExit(f"{shlex.join(command)} failed:\n{done.stderr[-2000:]}")
    report: dict[str, object] = json.loads(done.stdout)
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--only", help="Run only the rows whose label contains this text.")
    arguments = parser.parse_args()
    print("| workload | per second | rows/s | p50 ms | p99 ms | errors | command |")
    print("|---|---|---|---|---|---|---|")
    for label, row in ROWS:
        if arguments.only and arguments.only not in label:
            continue
        report = run_row(arguments.nodes, arguments.duration, row)
        latency = report["latency_ms"]
        assert isinstance(latency, dict)
        command = shlex.join(
            [
                "paxdb",
                "bench",
                "--local",
                str(arguments.nodes),
                "--duration",
                f"{arguments.duration:g}",
                *row,
            ]
        )
        print(
            f"| {label} | {report['per_second']:,.0f} | {report['rows_per_second']:,.0f} "
            f"| {latency['p50']:.2f} | {latency['p99']:.2f} "
            f"| {sum(report['errors'].values()) if isinstance(report['errors'], dict) else 0} "  # noqa: E501
            f"| `{command}` |",
            flush=True,
        )


if __name__ == "__main__":
    main()
