"""Transactions: buffered writes, commit as one atomic request, rollback, `with conn:`,
BEGIN/COMMIT/ROLLBACK/savepoints handled by the driver, autocommit switching."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import paxdb.client as driver
from paxdb.client import Connection

from .conftest import FakeCluster, FakeNode

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def conn(url: str) -> Iterator[Connection]:
    connection = driver.connect(url)
    connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE)")
    yield connection
    connection.close()


def names(conn: Connection) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM t ORDER BY id")]


def test_autocommit_false_buffers_until_commit(
    conn: Connection, node: FakeNode, cluster: FakeCluster
) -> None:
    conn.autocommit = False
    assert conn.in_transaction
    applies = cluster.applies
    cur = conn.execute("INSERT INTO t(name) VALUES (?) RETURNING id", ("a",))
    assert cur.rowcount == -1
    assert cur.lastrowid is None
    assert cur.description is None
    with pytest.raises(driver.ProgrammingError, match="buffered until commit"):
        cur.fetchone()
    conn.executemany("INSERT INTO t(name) VALUES (?)", [("b",), ("c",)])
    conn.execute("UPDATE t SET name = 'A' WHERE name = 'a'")
    assert cluster.applies == applies
    # A read inside the transaction sees the committed state, not the buffered writes.
    assert names(conn) == []
    conn.commit()
    assert cluster.applies == applies + 1
    request = [r for r in node.exec_requests if r.write is True][-1]
    assert [s.sql for s in request.statements] == [
        "INSERT INTO t(name) VALUES (?) RETURNING id",
        "INSERT INTO t(name) VALUES (?)",
        "INSERT INTO t(name) VALUES (?)",
        "UPDATE t SET name = 'A' WHERE name = 'a'",
    ]
    assert names(conn) == ["A", "b", "c"]
    assert cur.rowcount == -1  # Not updated retroactively.
    assert conn.in_transaction  # autocommit=False: the next transaction has begun.


def test_rollback_discards(conn: Connection, cluster: FakeCluster) -> None:
    conn.autocommit = False
    applies = cluster.applies
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    conn.rollback()
    conn.commit()  # Nothing left: no request.
    assert cluster.applies == applies
    assert names(conn) == []


def test_failed_commit_applies_nothing_and_ends_the_transaction(
    conn: Connection, cluster: FakeCluster
) -> None:
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    conn.autocommit = False
    conn.execute("INSERT INTO t(name) VALUES ('b')")
    conn.execute("INSERT INTO t(name) VALUES ('a')")  # Duplicate: the commit fails.
    with pytest.raises(driver.IntegrityError):
        conn.commit()
    assert names(conn) == ["a"]
    conn.commit()  # The buffer was discarded with the failed transaction.
    assert names(conn) == ["a"]


def test_with_connection_commits_or_rolls_back(conn: Connection, cluster: FakeCluster) -> None:
    assert conn.autocommit
    with conn:
        assert conn.in_transaction
        conn.execute("INSERT INTO t(name) VALUES ('a')")
        conn.execute("INSERT INTO t(name) VALUES ('b')")
        assert names(conn) == []
    assert not conn.in_transaction
    assert names(conn) == ["a", "b"]
    applies = cluster.applies
    with pytest.raises(KeyError), conn:
        conn.execute("INSERT INTO t(name) VALUES ('c')")
        raise KeyError("boom")
    assert cluster.applies == applies
    assert names(conn) == ["a", "b"]
    with pytest.raises(driver.IntegrityError), conn:
        conn.execute("INSERT INTO t(name) VALUES ('d')")
        conn.execute("INSERT INTO t(name) VALUES ('a')")
    assert not conn.in_transaction
    assert names(conn) == ["a", "b"]


def test_begin_commit_rollback_statements_are_not_sent(conn: Connection, node: FakeNode) -> None:
    sent = len(node.requests)
    conn.execute("BEGIN")
    assert conn.in_transaction
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    conn.execute("ROLLBACK")
    assert not conn.in_transaction
    conn.execute("begin immediate transaction")
    conn.execute("INSERT INTO t(name) VALUES ('b')")
    conn.execute("END TRANSACTION;")
    sql = [s.sql for r in node.exec_requests[sent:] for s in r.statements]
    assert sql == ["INSERT INTO t(name) VALUES ('b')"]
    assert names(conn) == ["b"]
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t(name) VALUES ('c')")
    conn.execute("COMMIT")
    assert names(conn) == ["b", "c"]


def test_nested_begin_is_refused(conn: Connection) -> None:
    conn.execute("BEGIN")
    with pytest.raises(driver.OperationalError, match="within a transaction"):
        conn.execute("BEGIN")
    conn.rollback()
    conn.autocommit = False
    conn.execute("BEGIN")  # Nothing buffered yet: accepted, as sqlite3 does.
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    with pytest.raises(driver.OperationalError, match="within a transaction"):
        conn.execute("BEGIN")


@pytest.mark.parametrize(
    "sql", ["BEGIN NOW", "COMMIT WORK", "ROLLBACK TO", "SAVEPOINT", "RELEASE a b"]
)
def test_malformed_transaction_statements(conn: Connection, sql: str) -> None:
    with pytest.raises(driver.ProgrammingError, match="cannot understand"):
        conn.execute(sql)


def test_transaction_statements_take_no_parameters(conn: Connection) -> None:
    with pytest.raises(driver.ProgrammingError, match="no parameters"):
        conn.execute("BEGIN", (1,))


def test_savepoints_mark_positions_in_the_buffer(conn: Connection) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    conn.execute("SAVEPOINT sp1")
    conn.execute("INSERT INTO t(name) VALUES ('b')")
    conn.execute("SAVEPOINT Sp2")
    conn.execute("INSERT INTO t(name) VALUES ('c')")
    conn.execute("ROLLBACK TO sp2")  # Names are case-insensitive; sp2 stays.
    conn.execute("INSERT INTO t(name) VALUES ('d')")
    conn.execute("ROLLBACK TRANSACTION TO SAVEPOINT sp2")
    conn.execute("RELEASE sp1")
    with pytest.raises(driver.OperationalError, match="no such savepoint"):
        conn.execute("RELEASE sp2")
    conn.commit()
    assert names(conn) == ["a", "b"]


def test_savepoint_outside_a_transaction_begins_one(conn: Connection) -> None:
    conn.execute("SAVEPOINT outer")
    assert conn.in_transaction
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    assert names(conn) == []
    conn.execute("RELEASE SAVEPOINT outer")  # Releasing the outermost one commits.
    assert not conn.in_transaction
    assert names(conn) == ["a"]


def test_reads_in_a_transaction_are_sent_at_once(conn: Connection, node: FakeNode) -> None:
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    conn.execute("BEGIN")
    assert conn.execute("WITH x AS (SELECT name FROM t) SELECT * FROM x").fetchall() == [("a",)]
    assert node.exec_requests[-1].write is False
    assert conn.execute("PRAGMA table_info(t)").fetchall()
    assert node.exec_requests[-1].write is False
    sent = len(node.requests)
    conn.execute("WITH x(v) AS (VALUES ('b')) INSERT INTO t(name) SELECT v FROM x")
    assert len(node.requests) == sent  # Buffered.
    conn.commit()
    assert names(conn) == ["a", "b"]


def test_turning_autocommit_on_commits(conn: Connection) -> None:
    conn.autocommit = False
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    conn.autocommit = True
    assert not conn.in_transaction
    assert names(conn) == ["a"]
    with pytest.raises(driver.ProgrammingError, match="True or False"):
        conn.autocommit = 1  # type: ignore[assignment]


def test_connect_with_autocommit_false(url: str, cluster: FakeCluster) -> None:
    conn = driver.connect(url, autocommit=False)
    conn.execute("CREATE TABLE u(x)")
    assert cluster.applies == 0
    conn.close()  # Closing discards what was not committed.
    assert cluster.applies == 0


def test_transaction_size_is_bounded(conn: Connection) -> None:
    conn.autocommit = False
    conn.executemany("INSERT INTO t(name) VALUES (?)", [(str(i),) for i in range(4096)])
    with pytest.raises(driver.ProgrammingError, match="at most 4096"):
        conn.execute("INSERT INTO t(name) VALUES ('x')")
    conn.commit()
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (4096,)


def test_use_switches_database_but_not_with_pending_writes(
    conn: Connection, node: FakeNode
) -> None:
    conn.execute("BEGIN")
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    with pytest.raises(driver.ProgrammingError, match="before use"):
        conn.use("other")
    conn.rollback()
    with pytest.raises(driver.ProgrammingError, match="not valid"):
        conn.use("no good")
    conn.use("other")
    assert conn.database == "other"
    conn.execute("SELECT 1")
    assert node.exec_requests[-1].database == "other"
