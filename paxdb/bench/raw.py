"""Write load over the raw client protocol (no driver), and a local APSW baseline.

    python -m paxdb.bench.raw --address 127.0.0.1:8101 --clients 64 --duration 5
    python -m paxdb.bench.raw --apsw /tmp/x.db --duration 5

Each client is one connection writing sequentially (one request in flight), so
`--clients` is the concurrency. The address should be the master's client port (a
follower relays, which costs a hop). Prints writes/s and latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid

from paxdb.client.protocol import ExecuteReply, ExecuteRequest, decode, encode
from paxdb.sql.requests import Statement
from paxdb.wire import FrameDecoder

VALUE = "x" * 100


async def _client(
    address: tuple[str, int], stop_at: float, latencies: list[float], table: str
) -> None:
    reader, writer = await asyncio.open_connection(*address)
    decoder = FrameDecoder()
    client_id = uuid.uuid4().hex
    seq = 0
    statement = (Statement(f"INSERT INTO {table}(v) VALUES (?)", (VALUE,)),)
    while time.perf_counter() < stop_at:
        seq += 1
        started = time.perf_counter()
        writer.write(
            encode(ExecuteRequest(seq, "main", statement, True, client_id=client_id, seq=seq))
        )
        reply = None
        while reply is None:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the node closed the connection")
            for mapping in decoder.feed(data):
                reply = decode(mapping)
        assert isinstance(reply, ExecuteReply)
        if reply.error is not None:
            raise RuntimeError(f"{reply.error.class_name}: {reply.error.message}")
        latencies.append(time.perf_counter() - started)
    writer.close()


async def _network(address: tuple[str, int], clients: int, duration: float) -> list[float]:
    table = f"bench_{uuid.uuid4().hex[:8]}"
    await _setup(address, table)
    latencies: list[float] = []
    stop_at = time.perf_counter() + duration
    await asyncio.gather(*(_client(address, stop_at, latencies, table) for _ in range(clients)))
    return latencies


async def _setup(address: tuple[str, int], table: str) -> None:
    reader, writer = await asyncio.open_connection(*address)
    create = (Statement(f"CREATE TABLE {table}(id INTEGER PRIMARY KEY, v TEXT)"),)
    writer.write(encode(ExecuteRequest(1, "main", create, True, client_id=uuid.uuid4().hex, seq=1)))
    decoder = FrameDecoder()
    while not (frames := decoder.feed(await reader.read(65536))):
        pass
    reply = decode(frames[0])
    assert isinstance(reply, ExecuteReply)
    if reply.error is not None:
        raise RuntimeError(f"{reply.error.class_name}: {reply.error.message}")
    writer.close()


def _apsw_baseline(path: str, duration: float) -> list[float]:
    import apsw

    if os.path.exists(path):
        os.remove(path)
    connection = apsw.Connection(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    latencies = []
    stop_at = time.perf_counter() + duration
    while time.perf_counter() < stop_at:
        started = time.perf_counter()
        connection.execute("INSERT INTO t(v) VALUES (?)", (VALUE,))
        latencies.append(time.perf_counter() - started)
    connection.close()
    return latencies


def report(label: str, latencies: list[float], duration: float) -> str:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return (
        f"{label}: {len(ordered) / duration:,.0f} writes/s, p50 {pct(0.50):.2f} ms, "
        f"p99 {pct(0.99):.2f} ms, mean {statistics.fmean(ordered) * 1000:.2f} ms "
        f"({len(ordered)} writes in {duration:.1f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--address", help="HOST:PORT of the master's client port")
    parser.add_argument("--apsw", help="run the local APSW baseline on this file instead")
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    if args.apsw:
        print(
            report("apsw synchronous=FULL", _apsw_baseline(args.apsw, args.duration), args.duration)
        )
        return
    host, _, port = args.address.rpartition(":")
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    latencies = asyncio.run(_network((host, int(port)), args.clients, args.duration))
    print(report(f"{args.clients} client(s)", latencies, args.duration))


if __name__ == "__main__":
    main()
