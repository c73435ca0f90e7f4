"""Cursor behaviour against the fake node: results, fetching, executemany, closing."""

from __future__ import annotations

import datetime
from collections.abc import Iterator

import pytest

import paxdb.client as driver
from paxdb.client import Connection
from paxdb.client.protocol import Consistency

from .conftest import FakeCluster, FakeNode

pytestmark = pytest.mark.timeout(30)

ROWS = [(1, "ada"), (2, "bob"), (3, "cy"), (4, "di"), (5, "ed")]


@pytest.fixture
def conn(url: str) -> Iterator[Connection]:
    connection = driver.connect(url)
    connection.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT UNIQUE, at TEXT)")
    yield connection
    connection.close()


@pytest.fixture
def filled(conn: Connection) -> Connection:
    conn.executemany("INSERT INTO t(id, name) VALUES (?, ?)", ROWS)
    return conn


def test_insert_reports_rowcount_and_lastrowid(conn: Connection, node: FakeNode) -> None:
    cur = conn.cursor()
    assert cur.rowcount == -1
    assert cur.description is None
    assert cur.lastrowid is None
    assert cur.execute("INSERT INTO t(name) VALUES (?)", ("ada",)) is cur
    assert cur.rowcount == 1
    assert cur.lastrowid == 1
    assert cur.description is None
    request = node.exec_requests[-1]
    assert request.write is True
    assert request.seq > 0
    assert request.statements[0].params == ("ada",)
    assert request.statements[0].sql == "INSERT INTO t(name) VALUES (?)"  # Never substituted.


def test_update_and_delete_rowcount(filled: Connection) -> None:
    assert filled.execute("UPDATE t SET name = name || '!' WHERE id > ?", (2,)).rowcount == 3
    assert filled.execute("DELETE FROM t WHERE id <= 1").rowcount == 1
    assert filled.execute("DELETE FROM t WHERE id > 100").rowcount == 0


def test_select_description_and_rowcount(filled: Connection, node: FakeNode) -> None:
    cur = filled.execute("SELECT id, name AS who FROM t ORDER BY id")
    assert cur.description == (
        ("id", None, None, None, None, None, None),
        ("who", None, None, None, None, None, None),
    )
    assert cur.rowcount == -1
    assert cur.lastrowid is None
    assert node.exec_requests[-1].write is False
    assert node.exec_requests[-1].seq == 0


def test_returning_rows(conn: Connection) -> None:
    cur = conn.execute("INSERT INTO t(name) VALUES ('a'), ('b') RETURNING id, name")
    assert cur.rowcount == 2
    assert [d[0] for d in cur.description] == ["id", "name"]
    assert cur.fetchall() == [(1, "a"), (2, "b")]


def test_fetchone_fetchmany_fetchall(filled: Connection) -> None:
    cur = filled.execute("SELECT id, name FROM t ORDER BY id")
    assert cur.fetchone() == ROWS[0]
    assert cur.fetchmany(2) == ROWS[1:3]
    assert cur.fetchmany() == ROWS[3:4]  # arraysize defaults to 1.
    assert cur.fetchall() == ROWS[4:]
    assert cur.fetchone() is None
    assert cur.fetchmany(3) == []
    assert cur.fetchall() == []


def test_arraysize(filled: Connection) -> None:
    cur = filled.cursor()
    assert cur.arraysize == 1
    cur.arraysize = 3
    cur.execute("SELECT id, name FROM t ORDER BY id")
    assert cur.fetchmany() == ROWS[:3]
    assert cur.fetchmany() == ROWS[3:]
    with pytest.raises(driver.ProgrammingError, match="size"):
        cur.fetchmany(-1)


def test_iteration(filled: Connection) -> None:
    cur = filled.execute("SELECT id, name FROM t ORDER BY id")
    assert next(cur) == ROWS[0]
    assert list(cur) == ROWS[1:]
    assert [row[0] for row in filled.execute("SELECT id FROM t WHERE id < 3 ORDER BY id")] == [
        1,
        2,
    ]


def test_empty_select_fetches_nothing(filled: Connection) -> None:
    cur = filled.execute("SELECT id FROM t WHERE id > 100")
    assert cur.fetchall() == []
    assert cur.fetchone() is None


def test_fetch_without_result_set_raises(conn: Connection) -> None:
    cur = conn.cursor()
    with pytest.raises(driver.ProgrammingError, match="no statement has been executed"):
        cur.fetchone()
    cur.execute("INSERT INTO t(name) VALUES ('x')")
    for fetch in (cur.fetchone, cur.fetchall, cur.fetchmany):
        with pytest.raises(driver.ProgrammingError, match="no result set"):
            fetch()


def test_named_and_qmark_parameters(filled: Connection) -> None:
    assert filled.execute("SELECT name FROM t WHERE id = ?", (2,)).fetchall() == [("bob",)]
    assert filled.execute("SELECT name FROM t WHERE id = :id", {"id": 3}).fetchall() == [("cy",)]
    assert filled.execute("SELECT ?1 + ?1", [20]).fetchone() == (40,)


def test_date_and_bool_parameters_round_trip_as_sqlite_values(conn: Connection) -> None:
    moment = datetime.datetime(2024, 2, 29, 13, 14, 15)
    conn.execute("INSERT INTO t(name, at) VALUES (?, ?)", ("d", moment))
    assert conn.execute("SELECT at, date(at) FROM t").fetchone() == (
        "2024-02-29 13:14:15",
        "2024-02-29",
    )
    assert conn.execute("SELECT ?, ?", (True, None)).fetchone() == (1, None)
    assert conn.execute("SELECT ?", (b"\x00\xff",)).fetchone() == (b"\x00\xff",)


def test_unsupported_parameter_fails_before_sending(conn: Connection, node: FakeNode) -> None:
    sent = len(node.requests)
    with pytest.raises(driver.ProgrammingError, match="unsupported type"):
        conn.execute("SELECT ?", (object(),))
    with pytest.raises(driver.ProgrammingError, match="must be a str"):
        conn.execute(b"SELECT 1")  # type: ignore[arg-type]
    assert len(node.requests) == sent


def test_result_errors_are_raised(filled: Connection) -> None:
    with pytest.raises(driver.IntegrityError, match="UNIQUE"):
        filled.execute("INSERT INTO t(name) VALUES ('ada')")
    with pytest.raises(driver.ProgrammingError, match="no such table"):
        filled.execute("SELECT * FROM missing")
    with pytest.raises(driver.ProgrammingError, match="syntax error"):
        filled.execute("INSERT INTO t VALUES (1) garbage")


def test_executemany_is_one_atomic_request(
    conn: Connection, node: FakeNode, cluster: FakeCluster
) -> None:
    before = len(node.exec_requests)
    cur = conn.executemany("INSERT INTO t(name) VALUES (?)", [("a",), ("b",), ("c",)])
    assert cur.rowcount == 3
    assert cur.lastrowid == 3
    assert len(node.exec_requests) == before + 1
    request = node.exec_requests[-1]
    assert request.write is True
    assert [s.params for s in request.statements] == [("a",), ("b",), ("c",)]
    applies = cluster.applies
    with pytest.raises(driver.IntegrityError):
        conn.executemany("INSERT INTO t(name) VALUES (?)", [("d",), ("a",)])
    assert cluster.applies == applies + 1
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)  # 'd' was rolled back.


def test_executemany_named_generator_and_empty(conn: Connection, node: FakeNode) -> None:
    cur = conn.executemany("INSERT INTO t(name) VALUES (:n)", ({"n": str(i)} for i in range(4)))
    assert cur.rowcount == 4
    before = len(node.requests)
    assert conn.executemany("INSERT INTO t(name) VALUES (?)", []).rowcount == 0
    assert len(node.requests) == before


def test_executemany_refuses_reads(conn: Connection) -> None:
    with pytest.raises(driver.ProgrammingError, match="executemany"):
        conn.executemany("SELECT ?", [(1,)])
    with pytest.raises(driver.ProgrammingError, match="executemany"):
        conn.executemany("BEGIN", [()])


def test_executemany_limit(conn: Connection) -> None:
    with pytest.raises(driver.ProgrammingError, match="at most 4096"):
        conn.executemany("INSERT INTO t(name) VALUES (?)", [(str(i),) for i in range(4097)])


def test_empty_statement_is_a_no_op(conn: Connection, node: FakeNode) -> None:
    before = len(node.requests)
    cur = conn.execute("  -- nothing\n")
    assert cur.description is None
    assert cur.rowcount == -1
    assert len(node.requests) == before


def test_consistency_per_connection_and_per_call(conn: Connection, node: FakeNode) -> None:
    conn.execute("SELECT 1")
    assert node.exec_requests[-1].consistency is Consistency.MASTER
    conn.consistency = "local"
    assert conn.consistency == "local"
    conn.execute("SELECT 1")
    assert node.exec_requests[-1].consistency is Consistency.LOCAL
    conn.execute("SELECT 1", consistency="linearizable")
    assert node.exec_requests[-1].consistency is Consistency.LINEARIZABLE
    with pytest.raises(driver.ProgrammingError, match="not one of"):
        conn.execute("SELECT 1", consistency="eventual")
    with pytest.raises(driver.ProgrammingError, match="not one of"):
        conn.consistency = "eventual"


def test_with_statement_is_left_to_the_node(conn: Connection, node: FakeNode) -> None:
    cur = conn.execute("WITH x(v) AS (VALUES (1)) SELECT v FROM x")
    assert node.exec_requests[-1].write is None
    assert node.exec_requests[-1].seq > 0  # The node may decide it is a write.
    assert cur.fetchall() == [(1,)]
    assert cur.rowcount == -1
    cur = conn.execute("WITH x(v) AS (VALUES ('w')) INSERT INTO t(name) SELECT v FROM x")
    assert node.exec_requests[-1].write is None
    assert cur.rowcount == 1


def test_cursor_context_manager(conn: Connection) -> None:
    with conn.cursor() as cur:
        cur.execute("SELECT 1")
    with pytest.raises(driver.ProgrammingError, match="closed cursor"):
        cur.fetchone()


def test_setinputsizes_and_setoutputsize_are_no_ops(conn: Connection) -> None:
    cur = conn.cursor()
    cur.setinputsizes([10])
    cur.setoutputsize(10)
    cur.setoutputsize(10, 0)
    assert cur.connection is conn


CURSOR_CALLS = [
    ("execute", ("SELECT 1",)),
    ("executemany", ("INSERT INTO t(name) VALUES (?)", [("z",)])),
    ("fetchone", ()),
    ("fetchmany", ()),
    ("fetchall", ()),
    ("setinputsizes", ([1],)),
    ("setoutputsize", (1,)),
    ("__next__", ()),
    ("__enter__", ()),
]


@pytest.mark.parametrize(("method", "args"), CURSOR_CALLS)
def test_closed_cursor_raises(conn: Connection, method: str, args: tuple) -> None:
    cur = conn.execute("SELECT 1")
    cur.close()
    cur.close()  # Idempotent.
    with pytest.raises(driver.ProgrammingError, match="closed cursor"):
        getattr(cur, method)(*args)


@pytest.mark.parametrize(("method", "args"), CURSOR_CALLS)
def test_cursor_of_closed_connection_raises(conn: Connection, method: str, args: tuple) -> None:
    cur = conn.execute("SELECT 1")
    conn.close()
    with pytest.raises(driver.ProgrammingError, match="closed connection"):
        getattr(cur, method)(*args)


@pytest.mark.parametrize(
    ("method", "args"),
    [
        ("cursor", ()),
        ("commit", ()),
        ("rollback", ()),
        ("execute", ("SELECT 1",)),
        ("executemany", ("INSERT INTO t(name) VALUES (?)", [("z",)])),
        ("status", ()),
        ("use", ("other",)),
        ("__enter__", ()),
    ],
)
def test_closed_connection_raises(conn: Connection, method: str, args: tuple) -> None:
    conn.close()
    conn.close()  # Idempotent.
    assert conn.closed
    with pytest.raises(driver.ProgrammingError, match="closed connection"):
        getattr(conn, method)(*args)


@pytest.mark.parametrize(("attribute", "value"), [("autocommit", False), ("consistency", "local")])
def test_closed_connection_refuses_settings(
    conn: Connection, attribute: str, value: object
) -> None:
    conn.close()
    with pytest.raises(driver.ProgrammingError, match="closed connection"):
        setattr(conn, attribute, value)
