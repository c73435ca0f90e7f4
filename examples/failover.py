"""A DB-API client that keeps writing while nodes fail: paxdb fails over by itself.

    python examples/failover.py paxdb://127.0.0.1:8001,127.0.0.1:8002,127.0.0.1:8003/main

Kill the master (`kill -9 PID`) while it runs: the driver follows the new master,
retries the write in flight with the same sequence number (so it is applied once),
and the script ends with every counter value present exactly once.
"""

from __future__ import annotations

import argparse
import time

import paxdb


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--pause", type=float, default=0.01, help="seconds between writes")
    args = parser.parse_args()
    conn = paxdb.connect(args.url, timeout=30)
    conn.execute("CREATE TABLE IF NOT EXISTS ticks(n INTEGER NOT NULL, at TEXT)")
    start = conn.execute("SELECT coalesce(max(n), 0) FROM ticks").fetchone()[0]
    slowest = 0.0
    for n in range(start + 1, start + args.writes + 1):
        began = time.monotonic()
        conn.execute("INSERT INTO ticks(n, at) VALUES (?, datetime('now'))", (n,))
        slowest = max(slowest, time.monotonic() - began)
        if n % 50 == 0:
            print(f"wrote {n}", flush=True)
        time.sleep(args.pause)
    duplicates = conn.execute(
        "SELECT count(*) FROM (SELECT n FROM ticks GROUP BY n HAVING count(*) > 1)"
    ).fetchone()[0]
    total = conn.execute("SELECT count(*) FROM ticks").fetchone()[0]
    print(f"{total} rows, {duplicates} duplicated; slowest write took {slowest:.2f} s")
    if duplicates:
        raise SystemExit("a write was applied twice")


if __name__ == "__main__":
    main()
