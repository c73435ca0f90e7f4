"""The DB-API driver against a real three-node cluster."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
import time

import pytest
from cluster import ProcessCluster

import paxdb


def url_for(cluster: ProcessCluster, nodes: list[int], **query: str) -> str:
    addresses = ",".join("{}:{}".format(*cluster.client_address(n)) for n in nodes)
    options = "&".join(f"{k}={v}" for k, v in query.items())
    return f"paxdb://{addresses}/main" + (f"?{options}" if options else "")


@pytest.fixture
def ready(cluster: ProcessCluster) -> ProcessCluster:
    cluster.master()
    return cluster


@pytest.mark.timeout(90)
def test_pep249_surface_with_real_sqlite_errors(ready: ProcessCluster) -> None:
    conn = paxdb.connect(ready.url)
    assert (paxdb.apilevel, paxdb.threadsafety, paxdb.paramstyle) == ("2.0", 1, "qmark")
    assert conn.IntegrityError is paxdb.IntegrityError
    cur = conn.cursor()
    cur.execute("CREATE TABLE p(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, n REAL)")
    cur.execute("INSERT INTO p(name, n) VALUES (?, ?)", ("a", 1.5))
    assert (cur.rowcount, cur.lastrowid) == (1, 1)
    cur.execute(
        "INSERT INTO p(name, n) VALUES (:name, :n) RETURNING id, name", {"name": "b", "n": 2}
    )
    assert cur.fetchall() == [(2, "b")]
    cur.executemany("INSERT INTO p(name) VALUES (?)", [("c",), ("d",)])
    assert cur.rowcount == 2
    cur.execute("UPDATE p SET n = 0 WHERE id > 1")
    assert cur.rowcount == 3
    cur.execute("SELECT id, name FROM p WHERE id > ? ORDER BY id", (1,))
    assert [d[0] for d in cur.description] == ["id", "name"]
    assert cur.fetchone() == (2, "b")
    assert cur.fetchmany(1) == [(3, "c")]
    assert list(cur) == [(4, "d")]
    with pytest.raises(paxdb.IntegrityError, match="UNIQUE"):
        cur.execute("INSERT INTO p(name) VALUES ('a')")
    with pytest.raises(paxdb.IntegrityError, match="NOT NULL"):
        cur.execute("INSERT INTO p(n) VALUES (1)")
    with pytest.raises(paxdb.ProgrammingError, match="no such table"):
        cur.execute("SELECT * FROM missing")
    with pytest.raises(paxdb.ProgrammingError):
        cur.execute("INSERT INTO p VALUES (")
    with pytest.raises(paxdb.NondeterministicStatement):
        cur.execute("INSERT INTO p(name) VALUES (sqlite_version())")
    # executemany is one atomic request: a failure leaves none of its rows.
    with pytest.raises(paxdb.IntegrityError):
        cur.executemany("INSERT INTO p(name) VALUES (?)", [("e",), ("a",)])
    cur.execute("SELECT count(*) FROM p WHERE name = 'e'")
    assert cur.fetchone() == (0,)
    cur.close()
    with pytest.raises(paxdb.ProgrammingError):
        cur.execute("SELECT 1")
    conn.close()
    with pytest.raises(paxdb.ProgrammingError):
        conn.cursor()


@pytest.mark.timeout(90)
def test_a_failed_transaction_leaves_nothing_and_a_committed_one_is_everywhere(
    ready: ProcessCluster,
) -> None:
    conn = paxdb.connect(ready.url)
    conn.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER CHECK (balance >= 0))")
    conn.execute("INSERT INTO acct VALUES (1, 100), (2, 0)")
    with pytest.raises(paxdb.IntegrityError, match="CHECK"), conn:
        conn.execute("UPDATE acct SET balance = balance + 50 WHERE id = 2")
        conn.execute("INSERT INTO acct VALUES (3, 7)")
        conn.execute("UPDATE acct SET balance = balance - 500 WHERE id = 1")
    with conn:
        conn.execute("UPDATE acct SET balance = balance - 30 WHERE id = 1")
        conn.execute("UPDATE acct SET balance = balance + 30 WHERE id = 2")
    wait_for_rows(ready, "SELECT * FROM acct ORDER BY id", [(1, 70), (2, 30)])


def wait_for_rows(cluster: ProcessCluster, sql: str, expected: list[tuple[object, ...]]) -> None:
    """Until every replica's file shows `expected` (a lagging one may lack the table)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.OperationalError):
            if all(cluster.rows(n, sql) == expected for n in cluster.ports):
                return
        time.sleep(0.05)
    raise AssertionError([cluster.rows(n, sql) for n in cluster.ports])


@pytest.mark.timeout(90)
def test_read_your_writes_through_another_node(ready: ProcessCluster) -> None:
    master = ready.master()
    follower = next(n for n in ready.ports if n != master)
    conn = paxdb.connect(url_for(ready, [follower, master], consistency="local"))
    conn.execute("CREATE TABLE ryw(v INTEGER)")
    for value in range(30):
        conn.execute("INSERT INTO ryw VALUES (?)", (value,))
        rows = conn.execute("SELECT max(v) FROM ryw").fetchall()
        assert rows == [(value,)]


class DroppingProxy:
    """A TCP proxy to one node that swallows the next reply and cuts the connection."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        self.drop_next_reply = False
        self.dropped = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            threading.Thread(target=self._pump, args=(client, upstream, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, is_reply: bool) -> None:
        try:
            while data := source.recv(65536):
                if is_reply and self.drop_next_reply:
                    self.drop_next_reply = False
                    self.dropped += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self.listener.close()


@pytest.mark.timeout(90)
def test_a_retry_after_a_lost_reply_is_applied_once(ready: ProcessCluster) -> None:
    master = ready.master()
    proxy = DroppingProxy(ready.client_address(master))
    try:
        others = ",".join(
            "{}:{}".format(*ready.client_address(n)) for n in ready.ports if n != master
        )
        conn = paxdb.connect(f"paxdb://127.0.0.1:{proxy.address[1]},{others}/main")
        conn.execute("CREATE TABLE once(id INTEGER PRIMARY KEY, v TEXT)")
        proxy.drop_next_reply = True
        cur = conn.execute("INSERT INTO once(v) VALUES ('x') RETURNING id")
        assert proxy.dropped == 1
        assert cur.fetchall() == [(1,)]  # The first result, not a second insert.
        wait_for_rows(ready, "SELECT * FROM once", [(1, "x")])
    finally:
        proxy.close()


@pytest.mark.timeout(150)
def test_writes_across_a_master_kill_are_applied_exactly_once(ready: ProcessCluster) -> None:
    conn = paxdb.connect(ready.url + "?timeout=30")
    conn.execute("CREATE TABLE k(n INTEGER)")
    acknowledged: list[int] = []
    failures: list[str] = []

    def write() -> None:
        writer = paxdb.connect(ready.url + "?timeout=30")
        for n in range(300):
            try:
                writer.execute("INSERT INTO k VALUES (?)", (n,))
            except paxdb.Error as error:
                failures.append(f"{n}: {error}")
                return
            acknowledged.append(n)

    thread = threading.Thread(target=write)
    thread.start()
    while len(acknowledged) < 60:
        time.sleep(0.01)
    ready.kill(ready.master())
    thread.join(120)
    assert not failures, failures
    assert acknowledged == list(range(300))
    counts = conn.execute("SELECT n, count(*) FROM k GROUP BY n HAVING count(*) > 1").fetchall()
    assert counts == []
    assert conn.execute("SELECT count(*) FROM k").fetchone() == (300,)


@pytest.mark.timeout(90)
def test_transactions_types_and_per_call_consistency(ready: ProcessCluster) -> None:
    conn = paxdb.connect(ready.url)
    for name in ("Error", "DatabaseError", "OperationalError", "ProgrammingError"):
        assert getattr(conn, name) is getattr(paxdb, name)
    cur = conn.cursor()
    cur.execute("CREATE TABLE ev(id INTEGER PRIMARY KEY, day, at, data BLOB)")
    cur.execute(
        "INSERT INTO ev(day, at, data) VALUES (?, ?, ?)",
        (paxdb.Date(2026, 11, 28), paxdb.Timestamp(2026, 11, 28, 1, 2, 3), paxdb.Binary(b"\0\1")),
    )
    cur.execute("SELECT day, at, data FROM ev")
    assert cur.fetchone() == ("2026-11-28", "2026-11-28 01:02:03", b"\0\1")

    conn.autocommit = False
    cur.execute("INSERT INTO ev(day) VALUES ('buffered')")
    assert cur.rowcount == -1  # Buffered until commit().
    inside = conn.cursor().execute("SELECT count(*) FROM ev").fetchone()
    assert inside == (1,)  # A read in the transaction sees the committed state.
    conn.rollback()
    conn.autocommit = True
    cur.execute("BEGIN")
    cur.execute("INSERT INTO ev(day) VALUES ('a')")
    cur.execute("INSERT INTO ev(day) VALUES ('b')")
    cur.execute("COMMIT")
    wait_for_rows(ready, "SELECT day FROM ev WHERE id > 1 ORDER BY id", [("a",), ("b",)])

    cur.arraysize = 2
    cur.execute("SELECT id FROM ev ORDER BY id", consistency="local")
    assert cur.fetchmany() == [(1,), (2,)]
    cur.execute("SELECT count(*) FROM ev", consistency="linearizable")
    assert cur.fetchone() == (3,)
