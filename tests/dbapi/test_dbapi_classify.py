"""The client's read/write classification rule (paxdb/client/classify.py)."""

from __future__ import annotations

import pytest

from paxdb.client.classify import Control, Kind, classify, parse_control

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("SELECT 1", Kind.READ),
        ("  select * from t", Kind.READ),
        ("-- a comment\nSELECT 1", Kind.READ),
        ("/* block */ VALUES (1)", Kind.READ),
        ("EXPLAIN QUERY PLAN SELECT 1", Kind.READ),
        ("INSERT INTO t VALUES (1)", Kind.WRITE),
        ("update t set a = 1", Kind.WRITE),
        ("DELETE FROM t", Kind.WRITE),
        ("REPLACE INTO t VALUES (1)", Kind.WRITE),
        ("CREATE TABLE t(a)", Kind.WRITE),
        ("DROP TABLE t", Kind.WRITE),
        ("ANALYZE", Kind.WRITE),
        ("WITH x AS (SELECT 1) SELECT * FROM x", Kind.MAYBE_READ),
        ("WITH x AS (SELECT 'insert') SELECT * FROM x", Kind.MAYBE_READ),
        ('WITH x AS (SELECT 1 AS "delete") SELECT * FROM x', Kind.MAYBE_READ),
        ("WITH x AS (SELECT 1) -- update\n SELECT * FROM x", Kind.MAYBE_READ),
        ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", Kind.MAYBE_WRITE),
        ("with x as (select 1) delete from t where a in x", Kind.MAYBE_WRITE),
        ("PRAGMA table_info(t)", Kind.MAYBE_READ),
        ("PRAGMA user_version", Kind.MAYBE_READ),
        ("PRAGMA user_version = 3", Kind.MAYBE_WRITE),
        ("BEGIN", Kind.CONTROL),
        ("commit", Kind.CONTROL),
        ("END", Kind.CONTROL),
        ("ROLLBACK TO sp", Kind.CONTROL),
        ("SAVEPOINT sp", Kind.CONTROL),
        ("RELEASE sp", Kind.CONTROL),
        ("", Kind.EMPTY),
        ("  -- only a comment", Kind.EMPTY),
        ("/* unterminated", Kind.EMPTY),
        (";", Kind.WRITE),  # Not ours to judge: the node answers with SQLite's error.
    ],
)
def test_classification(sql: str, kind: Kind) -> None:
    assert classify(sql) is kind


@pytest.mark.parametrize(
    ("sql", "control"),
    [
        ("BEGIN", Control("BEGIN")),
        ("begin deferred", Control("BEGIN")),
        ("BEGIN EXCLUSIVE TRANSACTION;", Control("BEGIN")),
        ("COMMIT", Control("COMMIT")),
        ("END TRANSACTION", Control("COMMIT")),
        ("ROLLBACK", Control("ROLLBACK")),
        ("ROLLBACK TRANSACTION", Control("ROLLBACK")),
        ("ROLLBACK TO a", Control("ROLLBACK TO", "a")),
        ('ROLLBACK TRANSACTION TO SAVEPOINT "My Point"', Control("ROLLBACK TO", "my point")),
        ("SAVEPOINT [X]", Control("SAVEPOINT", "x")),
        ("SAVEPOINT 'it''s'", Control("SAVEPOINT", "it's")),
        ("RELEASE SAVEPOINT a", Control("RELEASE", "a")),
        ("RELEASE a;", Control("RELEASE", "a")),
    ],
)
def test_control_statements(sql: str, control: Control) -> None:
    assert parse_control(sql) == control
