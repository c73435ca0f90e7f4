"""The validator corpus: what the proposer accepts, stamps, or refuses, and why."""

from __future__ import annotations

import time

import pytest

from paxdb import errors
from paxdb.sql import determinism, judge
from paxdb.sql.determinism import check_write, classify
from paxdb.sql.verdict import Kind, leading_words

READ, WRITE, REJECTED = Kind.READ, Kind.WRITE, Kind.REJECTED

# (sql, expected kind, substring of the reason, or "" for none)
CORPUS = [
    # Plain writes, including syntax sqlglot misreads or cannot parse.
    ("INSERT INTO t(a, b) VALUES (?, ?)", WRITE, ""),
    ("INSERT INTO t VALUES(?1, ?2)", WRITE, ""),
    ("INSERT INTO t VALUES(:x, @y, $z)", WRITE, ""),
    ("REPLACE INTO t(a) VALUES (1)", WRITE, ""),
    ("INSERT OR REPLACE INTO t VALUES (1)", WRITE, ""),
    ("INSERT INTO t(a) VALUES (1) ON CONFLICT(a) DO UPDATE SET b = excluded.b", WRITE, ""),
    ("CREATE TABLE t(a INTEGER PRIMARY KEY, b) WITHOUT ROWID", WRITE, ""),
    ("CREATE TABLE t(a INT) STRICT", WRITE, ""),
    (
        "CREATE TABLE t(a INT PRIMARY KEY, b DEFAULT CURRENT_TIMESTAMP) STRICT, WITHOUT ROWID",
        WRITE,
        "",
    ),
    ("CREATE TABLE t(a, b AS (a * 2) STORED, CHECK (a > 0))", WRITE, ""),
    ("WITH x AS (SELECT 1 AS v) INSERT INTO t SELECT v FROM x", WRITE, ""),
    ("UPDATE t SET a = a + 1 WHERE b = ? RETURNING *", WRITE, ""),
    ("UPDATE t SET a = 1 ORDER BY a LIMIT 5", WRITE, ""),
    ("DELETE FROM t ORDER BY a LIMIT 5", WRITE, ""),
    ("INSERT INTO t SELECT a FROM u WHERE EXISTS (SELECT 1 FROM v LIMIT 1)", WRITE, ""),
    ("INSERT INTO t SELECT json_extract(a, '$.x'), a ->> '$.y' FROM u", WRITE, ""),
    (
        "INSERT INTO t VALUES (iif(1, 2, 3), printf('%d', 1), ifnull(?, 1), substr('a', 1))",
        WRITE,
        "",
    ),
    ("INSERT INTO t SELECT count(*), group_concat(a ORDER BY a), total(a) FROM u", WRITE, ""),
    ("INSERT INTO t SELECT row_number() OVER (ORDER BY a), lag(a) OVER () FROM u", WRITE, ""),
    (
        "INSERT INTO t VALUES (date('2020-01-01', '+1 day'), abs(-1), round(1.5), hex(x'00'))",
        WRITE,
        "",
    ),
    ("CREATE INDEX i ON t(a) WHERE b > 0", WRITE, ""),
    ("CREATE VIEW v AS SELECT a, random() FROM t", WRITE, ""),
    ("DROP TABLE IF EXISTS t", WRITE, ""),
    ("ALTER TABLE t ADD COLUMN c DEFAULT 0", WRITE, ""),
    ("ALTER TABLE t RENAME TO u", WRITE, ""),
    ("PRAGMA user_version = 3", WRITE, ""),
    ("ANALYZE", WRITE, ""),
    ("CREATE VIRTUAL TABLE f USING fts5(body)", WRITE, ""),
    ("CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (random()); END", WRITE, ""),
    # Stamped, not refused.
    ("INSERT INTO t VALUES (random(), randomblob(8))", WRITE, ""),
    ("INSERT INTO t VALUES (datetime('now'), CURRENT_TIMESTAMP, unixepoch())", WRITE, ""),
    # Reads.
    ("SELECT * FROM t WHERE a = ?", READ, ""),
    ("SELECT 1 UNION SELECT 2", READ, ""),
    ("VALUES (1), (2)", READ, ""),
    ("SELECT * FROM pragma_table_info('t')", READ, ""),
    ("PRAGMA table_info(t)", READ, ""),
    ("SELECT changes()", READ, "changes()"),
    ("SELECT * FROM t LIMIT 1", READ, "LIMIT without ORDER BY"),
    ("PRAGMA user_version", READ, "only reports"),
    ("EXPLAIN SELECT 1", READ, "EXPLAIN"),
    # Refused: connection history, build, extensions, unknown functions.
    ("INSERT INTO t VALUES (changes())", REJECTED, "changes() reads this connection's history"),
    ("INSERT INTO t VALUES (total_changes())", REJECTED, "total_changes()"),
    ("INSERT INTO t VALUES (last_insert_rowid())", REJECTED, "last_insert_rowid()"),
    ("INSERT INTO t VALUES (sqlite_version())", REJECTED, "differs between SQLite builds"),
    ("INSERT INTO t VALUES (sqlite_source_id())", REJECTED, "sqlite_source_id()"),
    ("INSERT INTO t SELECT load_extension('x')", REJECTED, "load_extension()"),
    ("INSERT INTO t VALUES (my_udf(1))", REJECTED, "my_udf() is not a known deterministic"),
    ("INSERT INTO t VALUES (date('now', 'localtime'))", REJECTED, "time zone"),
    ("ALTER TABLE t ADD COLUMN c DEFAULT (sqlite_version())", REJECTED, "sqlite_version()"),
    (
        "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES (changes()); END",
        REJECTED,
        "trigger body: changes()",
    ),
    (
        "CREATE TRIGGER tr AFTER INSERT ON t WHEN sqlite_version() > '3' BEGIN SELECT 1; END",
        REJECTED,
        "sqlite_version()",
    ),
    ("CREATE VIEW v AS SELECT last_insert_rowid()", REJECTED, "last_insert_rowid()"),
    # Refused: plan-dependent row choice.
    ("UPDATE t SET a = 1 LIMIT 5", REJECTED, "LIMIT without ORDER BY"),
    ("DELETE FROM t LIMIT 5", REJECTED, "LIMIT without ORDER BY"),
    ("INSERT INTO t SELECT * FROM u LIMIT 3", REJECTED, "LIMIT without ORDER BY"),
    ("DELETE FROM t WHERE a IN (SELECT a FROM t LIMIT 2)", REJECTED, "LIMIT without ORDER BY"),
    # Refused: outside the database, per-node settings, maintenance.
    ("ATTACH 'x.db' AS x", REJECTED, "ATTACH/DETACH"),
    ("DETACH x", REJECTED, "ATTACH/DETACH"),
    ("VACUUM", REJECTED, "VACUUM is node maintenance"),
    ("VACUUM INTO '/tmp/x.db'", REJECTED, "VACUUM"),
    ("PRAGMA journal_mode = DELETE", REJECTED, "per-node setting"),
    ("PRAGMA foreign_keys = OFF", REJECTED, "foreign_keys"),
    ("PRAGMA synchronous = OFF", REJECTED, "per-node setting"),
    ("INSERT INTO t SELECT name FROM pragma_database_list", REJECTED, "per-node setting"),
    ("INSERT INTO t SELECT name FROM dbstat", REJECTED, "dbstat"),
    ("CREATE TEMP TABLE x(a)", REJECTED, "TEMP objects"),
    ("CREATE TEMPORARY VIEW v AS SELECT 1", REJECTED, "TEMP objects"),
    ("CREATE VIRTUAL TABLE s USING dbstat", REJECTED, "dbstat"),
    ("INSERT INTO _paxdb_meta VALUES (1, 2, 3)", REJECTED, "belongs to paxdb"),
    ("DELETE FROM _paxdb_dedupe", REJECTED, "belongs to paxdb"),
    # Refused: the driver's business, or not one statement.
    ("SELECT 1; SELECT 2", REJECTED, "one statement per execute"),
    ("", REJECTED, "no SQL statement"),
    ("-- only a comment", REJECTED, "no SQL statement"),
    ("garbage here", REJECTED, "syntax error"),
]

TRANSACTION_CONTROL = [
    "BEGIN",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ROLLBACK TO a",
    "SAVEPOINT a",
    "RELEASE a",
    "RELEASE SAVEPOINT a",
    "  /* leading */ savepoint a",
]


@pytest.mark.parametrize(("sql", "kind", "reason"), CORPUS)
def test_corpus(sql: str, kind: Kind, reason: str) -> None:
    verdict = classify(sql)
    assert verdict.kind is kind, verdict
    if reason:
        assert reason in verdict.reason
    else:
        assert verdict.reason == ""


def test_corpus_is_large() -> None:
    assert len(CORPUS) >= 40


@pytest.mark.parametrize("sql", TRANSACTION_CONTROL)
def test_transaction_control_is_flagged_for_the_driver(sql: str) -> None:
    verdict = classify(sql)
    assert verdict.is_transaction_control
    assert verdict.kind is REJECTED
    assert "driver" in verdict.reason


@pytest.mark.parametrize(
    ("sql", "needs_time", "needs_random"),
    [
        ("INSERT INTO t VALUES (random())", False, True),
        ("INSERT INTO t VALUES (randomblob(4))", False, True),
        ("INSERT INTO t VALUES (datetime('now'))", True, False),
        ("INSERT INTO t VALUES (CURRENT_DATE)", True, False),
        ("CREATE TABLE t(a DEFAULT CURRENT_TIMESTAMP)", True, False),
        ("INSERT INTO t VALUES (1)", False, False),
    ],
)
def test_stamp_flags(sql: str, needs_time: bool, needs_random: bool) -> None:
    verdict = classify(sql)
    assert verdict.kind is WRITE
    assert verdict.needs_time is needs_time
    assert verdict.needs_random is needs_random


def test_ddl_flag() -> None:
    assert classify("CREATE TABLE t(a)").is_ddl
    assert classify("DROP INDEX i").is_ddl
    assert not classify("INSERT INTO t VALUES (1)").is_ddl


def test_check_write_raises_a_programming_error_naming_the_function() -> None:
    with pytest.raises(errors.NondeterministicStatement) as caught:
        check_write("UPDATE t SET a = last_insert_rowid()")
    assert isinstance(caught.value, errors.ProgrammingError)
    assert "last_insert_rowid()" in caught.value.reason
    assert "LAST_INSERT_ROWID()" in caught.value.fragment


def test_check_write_refuses_a_read_that_would_be_stored_nondeterministically() -> None:
    with pytest.raises(errors.NondeterministicStatement):
        check_write("SELECT total_changes()")
    assert check_write("SELECT a FROM t ORDER BY a LIMIT 1").kind is READ


def test_check_write_accepts_stamped_writes() -> None:
    assert check_write("INSERT INTO t VALUES (random(), datetime('now'))").kind is WRITE


def test_numbered_parameters_inside_strings_are_left_alone() -> None:
    assert classify("INSERT INTO t VALUES ('?1', ?1)").kind is WRITE


def test_unparseable_statement_is_judged_by_sqlite_and_deferred_without_schema() -> None:
    # sqlglot cannot parse a RAISE() in this position; SQLite lacks table t on scratch.
    verdict = judge.judge_sql(judge.scratch_connection(), "INSERT INTO t VALUES (1)")
    assert verdict.kind is WRITE
    assert verdict.is_deferred
    assert "no such table" in verdict.reason


def test_sqlite_judge_sees_functions_with_a_schema() -> None:
    connection = judge.scratch_connection()
    verdict = judge.judge_sql(connection, "SELECT changes(), random()")
    assert verdict.kind is READ
    assert "changes()" in verdict.reason
    assert verdict.needs_random


def test_sqlite_judge_refuses_attach_and_multiple_statements() -> None:
    connection = judge.scratch_connection()
    assert judge.judge_sql(connection, "ATTACH ':memory:' AS x").kind is REJECTED
    assert judge.judge_sql(connection, "SELECT 1; SELECT 2").kind is REJECTED
    assert judge.judge_sql(connection, "SAVEPOINT a").is_transaction_control


def test_leading_words_skip_comments_and_stop_at_strings() -> None:
    assert leading_words("-- x\n /* y */ Create temp TABLE", 3) == ["CREATE", "TEMP", "TABLE"]
    assert leading_words("'BEGIN'", 1) == []


def test_cache_hit_returns_the_same_verdict() -> None:
    """A repeated statement is classified once: the second call returns the cached object.

    Also measures both paths, for the numbers in determinism.py's docstring (not asserted).
    """
    sql = "INSERT INTO cache_probe(a, b, c) VALUES (?, ?, datetime('now'))"
    determinism.classify.cache_clear()
    started = time.perf_counter()
    first = classify(sql)
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(1000):
        again = classify(sql)
    hit_s = (time.perf_counter() - started) / 1000
    assert again is first
    info = determinism.classify.cache_info()
    assert info.hits >= 1000
    assert info.maxsize == determinism.CLASSIFY_CACHE_ENTRIES_MAX
    print(f"cold classify {cold_s * 1e3:.3f} ms, cache hit {hit_s * 1e6:.3f} us")


def test_malformed_sql_is_a_plain_programming_error_not_a_determinism_verdict() -> None:
    from paxdb.errors import NondeterministicStatement, ProgrammingError
    from paxdb.sql.determinism import check_write

    for sql in ("INSERT INTO log VALUES (", "SELEKT 1 FROM", ";"):
        with pytest.raises(ProgrammingError) as raised:
            check_write(sql)
        assert not isinstance(raised.value, NondeterministicStatement), sql
