"""Retries, failover and exactly-once against fake nodes that misbehave on purpose."""

from __future__ import annotations

import time

import pytest

import paxdb.client as driver
from paxdb.client.transport import reply_exception
from paxdb.sql.requests import ErrorInfo

from .conftest import (
    APPLY_THEN_CLOSE,
    APPLY_THEN_SILENT,
    APPLY_THEN_TIMEOUT,
    CLOSE,
    GARBAGE,
    ErrorAction,
    FakeCluster,
    FakeNode,
    refused_address,
)

pytestmark = pytest.mark.timeout(30)

CREATE = "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT)"


def connect(*addresses: str, timeout: float = 5.0) -> driver.Connection:
    return driver.connect(f"paxdb://{','.join(addresses)}/main?timeout={timeout}")


def writes(*nodes: FakeNode) -> list[tuple[str, int]]:
    return [(r.client_id, r.seq) for n in nodes for r in n.exec_requests if r.write is not False]


@pytest.mark.parametrize("action", [APPLY_THEN_CLOSE, APPLY_THEN_TIMEOUT])
def test_retry_on_the_same_node_keeps_the_seq(
    cluster: FakeCluster, node: FakeNode, action: str
) -> None:
    conn = connect(node.address)
    conn.execute(CREATE)
    node.plan.append(action)
    applies = cluster.applies
    cur = conn.execute("INSERT INTO t(name) VALUES ('a')")
    assert cluster.applies == applies + 1  # Applied once, although sent twice.
    assert cur.rowcount == 1
    assert cur.lastrowid == 1  # The first result, from the dedupe table.
    first, second = writes(node)[-2:]
    assert first == second
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
    conn.close()


def test_retry_on_another_node_keeps_the_seq_and_statements(cluster: FakeCluster) -> None:
    a, b = cluster.start_node(), cluster.start_node()
    conn = connect(a.address, b.address)
    conn.execute(CREATE)
    a.plan.append(APPLY_THEN_CLOSE)
    applies = cluster.applies
    with conn:
        conn.execute("INSERT INTO t(name) VALUES ('x')")
        conn.execute("INSERT INTO t(name) VALUES ('y')")
    assert cluster.applies == applies + 1
    first, second = a.exec_requests[-1], b.exec_requests[-1]
    assert (first.client_id, first.seq) == (second.client_id, second.seq)
    assert first.statements == second.statements
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (2,)
    conn.close()


def test_sequence_numbers_increase_and_reads_carry_none(node: FakeNode) -> None:
    conn = connect(node.address)
    conn.execute(CREATE)
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    conn.execute("SELECT * FROM t")
    conn.executemany("INSERT INTO t(name) VALUES (?)", [("b",), ("c",)])
    seqs = [(r.write, r.seq) for r in node.exec_requests]
    assert seqs == [(True, 1), (True, 2), (False, 0), (True, 3)]
    assert {r.client_id for r in node.exec_requests} == {conn.client_id}
    other = connect(node.address)
    assert other.client_id != conn.client_id
    conn.close()
    other.close()


def test_read_your_writes_sends_min_instance(cluster: FakeCluster, node: FakeNode) -> None:
    conn = connect(node.address)
    conn.execute("SELECT 1")
    assert node.exec_requests[-1].min_instance == 0
    conn.execute(CREATE)
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    written = cluster.instance
    conn.execute("SELECT * FROM t", consistency="local")
    assert node.exec_requests[-1].min_instance == written
    assert node.exec_requests[-1].write is False
    conn.use("other")  # Instances are per database (group).
    conn.execute("SELECT 1")
    assert node.exec_requests[-1].min_instance == 0
    conn.close()


def test_not_master_hint_is_followed_first(cluster: FakeCluster) -> None:
    follower, bystander, master = (cluster.start_node() for _ in range(3))
    follower.not_master = master.address
    conn = connect(follower.address, bystander.address, master.address)
    conn.execute(CREATE)
    assert len(follower.exec_requests) == 1
    assert bystander.exec_requests == []
    assert len(master.exec_requests) == 1
    conn.execute("INSERT INTO t(name) VALUES ('a')")  # The known master is asked first.
    assert len(follower.exec_requests) == 1
    assert len(master.exec_requests) == 2
    conn.close()


def test_hint_to_a_node_outside_the_url_is_followed(cluster: FakeCluster) -> None:
    follower, master = cluster.start_node(), cluster.start_node()
    follower.plan.append(ErrorAction("NotMaster", "not master", master.address))
    conn = connect(follower.address)
    conn.execute(CREATE)
    assert len(master.exec_requests) == 1
    conn.close()


@pytest.mark.parametrize("hint", ["0.0.0.0:1", "[::]:1", "nonsense"])
def test_unusable_hints_are_ignored(node: FakeNode, hint: str) -> None:
    node.not_master = hint
    conn = connect(node.address, timeout=0.2)
    with pytest.raises(driver.Unavailable) as caught:
        conn.execute(CREATE)
    assert f"tried {node.address} (NotMaster" in str(caught.value)
    assert hint not in str(caught.value)
    conn.close()


@pytest.mark.parametrize(
    "class_name", ["NotMaster", "ProposalDropped", "ProposalTimeout", "OperationalError"]
)
def test_retryable_errors_are_retried(
    cluster: FakeCluster, node: FakeNode, class_name: str
) -> None:
    conn = connect(node.address)
    node.plan.append(ErrorAction(class_name, "try again"))
    conn.execute(CREATE)
    assert cluster.applies == 1
    assert len(node.exec_requests) == 2
    conn.close()


def test_same_operational_error_twice_is_the_result(node: FakeNode) -> None:
    conn = connect(node.address)
    node.plan.extend([ErrorAction("OperationalError", "too many levels of trigger recursion")] * 5)
    started = time.monotonic()
    with pytest.raises(driver.OperationalError, match="trigger recursion"):
        conn.execute(CREATE)
    assert time.monotonic() - started < 1.0
    assert len(node.exec_requests) == 2
    conn.close()


@pytest.mark.parametrize(
    ("class_name", "error"),
    [
        ("IntegrityError", driver.IntegrityError),
        ("ProgrammingError", driver.ProgrammingError),
        ("NondeterministicStatement", driver.NondeterministicStatement),
        ("DataError", driver.DataError),
        ("SomethingNew", driver.DatabaseError),
    ],
)
def test_result_errors_are_not_retried(node: FakeNode, class_name: str, error: type) -> None:
    conn = connect(node.address)
    node.plan.append(ErrorAction(class_name, "bad statement", master=node.address))
    with pytest.raises(error, match="bad statement"):
        conn.execute(CREATE)
    assert len(node.exec_requests) == 1
    conn.close()


def test_persistent_not_master_ends_in_unavailable(node: FakeNode) -> None:
    conn = connect(node.address, timeout=0.3)
    node.plan.extend([ErrorAction("NotMaster", "nobody is master")] * 100)
    with pytest.raises(driver.Unavailable, match="NotMaster: nobody is master"):
        conn.execute(CREATE)
    conn.close()


def test_refused_node_is_skipped(cluster: FakeCluster, node: FakeNode) -> None:
    conn = connect(refused_address(), node.address)
    conn.execute(CREATE)
    assert len(node.exec_requests) == 1
    conn.close()


def test_stopped_node_fails_over(cluster: FakeCluster) -> None:
    a, b = cluster.start_node(), cluster.start_node()
    conn = connect(a.address, b.address)
    conn.execute(CREATE)
    assert len(a.exec_requests) == 1
    a.stop()
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    assert len(b.exec_requests) == 1
    conn.close()


def test_all_nodes_down_names_what_was_tried() -> None:
    first, second = refused_address(), refused_address()
    conn = connect(first, second, timeout=0.3)
    started = time.monotonic()
    with pytest.raises(driver.Unavailable) as caught:
        conn.execute("SELECT 1")
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert message.startswith(f"no node answered: tried {first} (refused")
    assert f"{second} (refused" in message
    assert "within 0.3 s" in message
    assert 0.25 < elapsed < 2.0
    assert isinstance(caught.value, driver.OperationalError)
    with pytest.raises(driver.Unavailable, match="may or may not have been applied"):
        conn.execute(CREATE)
    conn.close()


def test_silent_node_times_out_and_the_retry_is_deduplicated(cluster: FakeCluster) -> None:
    a, b = cluster.start_node(), cluster.start_node()
    conn = connect(a.address, b.address, timeout=1.5)  # One attempt waits at most 1 s.
    a.plan.append(APPLY_THEN_SILENT)
    started = time.monotonic()
    conn.execute(CREATE)
    assert 0.9 < time.monotonic() - started < 1.5
    assert cluster.applies == 1
    assert writes(a, b)[0] == writes(a, b)[1]
    conn.close()


def test_commit_without_answer_stays_open_and_retries_with_the_same_seq(
    cluster: FakeCluster, node: FakeNode
) -> None:
    conn = connect(node.address, timeout=0.5)
    conn.execute(CREATE)
    conn.autocommit = False
    conn.execute("INSERT INTO t(name) VALUES ('a')")
    node.plan.extend([APPLY_THEN_CLOSE] + [CLOSE] * 1000)
    with pytest.raises(driver.Unavailable):
        conn.commit()
    assert cluster.applies == 2  # It was applied, but the answer was lost.
    with pytest.raises(driver.ProgrammingError, match="commit\\(\\) again"):
        conn.execute("INSERT INTO t(name) VALUES ('b')")
    node.plan.clear()
    conn.commit()  # Same (client id, seq): the dedupe table answers.
    assert cluster.applies == 2
    assert len({seq for _, seq in writes(node)[1:]}) == 1
    assert conn.execute("SELECT name FROM t").fetchall() == [("a",)]
    conn.close()


def test_abandoning_a_commit_in_doubt(cluster: FakeCluster, node: FakeNode) -> None:
    conn = connect(node.address, timeout=0.3)
    conn.execute("BEGIN")
    conn.execute(CREATE)
    node.stop()
    with pytest.raises(driver.Unavailable), conn:
        pass
    assert not conn.in_transaction  # `with` rolled back after the failed commit.
    conn.close()


def test_status_asks_the_first_reachable_node(cluster: FakeCluster, node: FakeNode) -> None:
    node.status = {"role": "master", "groups": {"main": {"applied": 7}}}
    conn = connect(refused_address(), node.address)
    assert conn.status() == {"role": "master", "groups": {"main": {"applied": 7}}}
    conn.close()


@pytest.mark.parametrize("action", [CLOSE, GARBAGE])
def test_broken_connection_fails_over(cluster: FakeCluster, action: str) -> None:
    a, b = cluster.start_node(), cluster.start_node()
    conn = connect(a.address, b.address)
    a.plan.append(action)
    conn.execute("SELECT 1")
    assert len(b.exec_requests) == 1
    conn.execute("SELECT 1")  # b answered last: it is asked first now.
    assert len(b.exec_requests) == 2
    conn.close()


def test_garbage_names_the_protocol_error() -> None:
    cluster = FakeCluster()
    node = cluster.start_node()
    node.plan.extend([GARBAGE] * 100)
    conn = connect(node.address, timeout=0.2)
    with pytest.raises(driver.Unavailable, match="protocol error"):
        conn.execute("SELECT 1")
    conn.close()
    cluster.stop()


@pytest.mark.parametrize(
    ("class_name", "error"),
    [
        ("NotMaster", driver.NotMaster),
        ("ProposalTimeout", driver.ProposalTimeout),
        ("ProposalDropped", driver.ProposalDropped),
        ("InterfaceError", driver.InterfaceError),
        ("IntegrityError", driver.IntegrityError),
        ("NondeterministicStatement", driver.NondeterministicStatement),
    ],
)
def test_reply_errors_map_to_paxdb_classes(class_name: str, error: type) -> None:
    exception = reply_exception(ErrorInfo(class_name, "why", 19))
    assert type(exception) is error
    assert "why" in str(exception)
