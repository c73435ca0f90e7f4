"""`.dump` then `.read` round trips; `.import` of CSV files."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from shell_harness import Harness, MakeHarness

from paxdb_shell import importer
from paxdb_shell.sqltext import quote_identifier, sql_literal

TRICKY = """\
CREATE TABLE kinds(id INTEGER PRIMARY KEY, t TEXT, r REAL, b BLOB, n, "odd ""q"" x" TEXT);
INSERT INTO kinds VALUES
  (1, 'it''s', 1.0, X'00FF10', NULL, 'a;b'),
  (2, 'line' || char(10) || 'break', -0.1, X'', 42, 'zoë 東京'),
  (3, NULL, 1e300, NULL, 3.5, ''),
  (4, 'nul' || char(0) || 'inside', 9e999, randomblob(0), 'text', '-- not a comment');
CREATE TABLE gen(a INTEGER, doubled INTEGER GENERATED ALWAYS AS (a * 2));
INSERT INTO gen(a) VALUES (1), (2);
CREATE INDEX kinds_t ON kinds(t);
CREATE VIEW big AS SELECT * FROM kinds WHERE r > 1;
CREATE TRIGGER kinds_ins AFTER INSERT ON kinds BEGIN SELECT 1; END;
CREATE TABLE _paxdb_dedupe(client, seq);
INSERT INTO _paxdb_dedupe VALUES (1, 1);
CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v);
INSERT INTO auto(v) VALUES ('x');
"""

USER_TABLES = ("kinds", "gen", "auto")


def _typed(harness: Harness, table: str) -> list[tuple[object, ...]]:
    """Every value of `table` next to its SQLite type, in rowid order."""
    columns = harness.shell.session.schema_map()[table]
    assert columns
    select = ", ".join(f"{quote_identifier(c)}, typeof({quote_identifier(c)})" for c in columns)
    return harness.rows(f"SELECT {select} FROM {quote_identifier(table)} ORDER BY rowid")


def test_dump_then_read_gives_identical_rows_and_types(
    make_harness: MakeHarness, tmp_path: Path
) -> None:
    source = make_harness()
    source.run(TRICKY)
    assert source.errors() == []
    dump_file = tmp_path / "dump.sql"
    source.run(f".output {dump_file}\n.dump\n.output")
    text = dump_file.read_text()
    assert "_paxdb_" not in text
    assert "sqlite_sequence" not in text
    target = make_harness()
    target.run(f".read {dump_file}")
    assert target.errors() == []
    for table in USER_TABLES:
        assert _typed(target, table) == _typed(source, table), table
    assert target.rows("SELECT name FROM sqlite_master WHERE type != 'table' ORDER BY name") == [
        ("big",),
        ("kinds_ins",),
        ("kinds_t",),
    ]


def test_dump_of_one_table(people: Harness) -> None:
    people.run("CREATE TABLE other(x); INSERT INTO other VALUES (1);")
    output = people.run(".dump people")
    assert output == (
        "-- paxdb dump of database main\n"
        "CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, score REAL);\n"
        "INSERT INTO \"people\" VALUES(1,'Ann',9.5);\n"
        'INSERT INTO "people" VALUES(2,NULL,NULL);\n'
        "INSERT INTO \"people\" VALUES(3,'Zoë \"Z\" O''Neil, Jr.',-1.25);\n"
    )


def test_dump_names_columns_only_when_a_table_has_generated_ones(harness: Harness) -> None:
    harness.run(TRICKY)
    output = harness.run(".dump gen")
    assert 'INSERT INTO "gen"("a") VALUES(1);' in output.splitlines()


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        (None, "NULL"),
        (7, "7"),
        (2.0, "2.0"),
        (float("inf"), "1e999"),
        (float("-inf"), "-1e999"),
        (float("nan"), "NULL"),
        ("it's", "'it''s'"),
        (b"\x00\xff", "X'00FF'"),
        ("a\x00b", "CAST(X'610062' AS TEXT)"),
    ],
)
def test_sql_literal(value: object, literal: str) -> None:
    assert sql_literal(value) == literal


CSV_TEXT = (
    "name,quote,amount\n"
    'Ann,"She said ""hi"", then left",10\n'
    'Bob,"multi\nline",\n'
    "Zoë,東京,NULL\n"
    "\n"
    "Eve,,3.5\n"
)


def test_import_creates_the_table_from_the_header(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    output = harness.run(f".import {path} guests")
    assert output == "Imported 4 rows into guests.\n"
    assert harness.rows("SELECT * FROM guests ORDER BY rowid") == [
        ("Ann", 'She said "hi", then left', "10"),
        ("Bob", "multi\nline", ""),
        ("Zoë", "東京", "NULL"),
        ("Eve", "", "3.5"),
    ]


def test_import_reads_the_nullvalue_as_null(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    harness.run(f".nullvalue NULL\n.import {path} guests")
    assert harness.rows("SELECT name FROM guests WHERE amount IS NULL") == [("Zoë",)]


def test_import_into_an_existing_table_skips_a_matching_header(
    harness: Harness, tmp_path: Path
) -> None:
    harness.run("CREATE TABLE nums(n INTEGER, label TEXT);")
    with_header = tmp_path / "with.csv"
    with_header.write_text("N,Label\n1,one\n2,two\n")
    without_header = tmp_path / "without.csv"
    without_header.write_text("3,three\n4\n")
    assert harness.run(f".import {with_header} nums") == "Imported 2 rows into nums.\n"
    output = harness.run(f".import {without_header} nums")
    assert output == "Imported 2 rows into nums.\n(1 short rows were padded with NULL.)\n"
    assert harness.rows("SELECT n, typeof(n), label FROM nums ORDER BY n") == [
        (1, "integer", "one"),
        (2, "integer", "two"),
        (3, "integer", "three"),
        (4, "integer", None),
    ]


def test_import_skip_option(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "skip.csv"
    path.write_text("# exported by something\na,b\n1,2\n")
    harness.run(f".import --skip 1 {path} s")
    assert harness.rows("SELECT * FROM s") == [("1", "2")]


def test_import_sends_atomic_batches(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 3)
    batches: list[int] = []
    original = harness.shell.session.execute_atomic

    def spy(sql: str, rows: list[list[object]]) -> None:
        batches.append(len(rows))
        original(sql, rows)

    monkeypatch.setattr(harness.shell.session, "execute_atomic", spy)
    path = tmp_path / "many.csv"
    path.write_text("k\n" + "".join(f"{i}\n" for i in range(8)))
    assert harness.run(f".import {path} many") == "Imported 8 rows into many.\n"
    assert batches == [3, 3, 2]


def test_a_failing_batch_applies_nothing_and_says_how_far_it_got(
    harness: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 2)
    harness.run("CREATE TABLE u(k INTEGER PRIMARY KEY);")
    path = tmp_path / "dupes.csv"
    path.write_text("k\n1\n2\n3\n3\n5\n")
    harness.run(f".import {path} u")
    assert harness.errors() == [
        "Error: IntegrityError: UNIQUE constraint failed: u.k"
        " (2 rows were imported before the failing batch)"
    ]
    assert harness.rows("SELECT k FROM u") == [(1,), (2,)]


def test_import_of_a_too_long_row_names_the_line(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "long.csv"
    path.write_text("a,b\n1,2\n1,2,3\n")
    harness.run(f".import {path} t")
    assert harness.errors() == [
        "Error: line 3: expected 2 columns, found 3 (0 rows were imported before it)"
    ]


def test_import_of_an_empty_file(harness: Harness, tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("")
    harness.run(f".import {path} t")
    assert harness.errors() == [f"Error: {path} has no rows to import"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_import_shows_a_progress_bar_only_at_a_terminal(
    make_harness: MakeHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "IMPORT_BATCH_ROWS", 2)
    path = tmp_path / "p.csv"
    path.write_text("k\n1\n2\n3\n4\n5\n")
    quiet = make_harness()
    quiet.run(f".import {path} t")
    assert quiet.stderr.getvalue() == ""
    person = make_harness(interactive=True)
    person.shell.stderr = _Terminal()
    assert person.run(f".import {path} t") == "Imported 5 rows into t.\n"
    drawn = person.shell.stderr.getvalue()
    assert "\rt [" in drawn
    assert "4 rows" in drawn
    assert drawn.endswith("\r\x1b[K")


def test_import_inside_a_user_transaction_joins_it(harness: Harness, tmp_path: Path) -> None:
    harness.run("CREATE TABLE j(k);")
    path = tmp_path / "j.csv"
    path.write_text("k\n1\n2\n")
    harness.run(f"BEGIN;\n.import {path} j\nROLLBACK;")
    assert harness.errors() == []
    assert harness.rows("SELECT count(*) FROM j") == [(0,)]
