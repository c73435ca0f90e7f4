"""Each dot-command through a Shell on StringIO."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from shell_harness import Harness

from paxdb_shell.commands import Commands, layout_columns, status_tables
from paxdb_shell.errors import ShellExit

SCHEMA = """\
CREATE TABLE a(x INTEGER, y TEXT);
CREATE TABLE b(z TEXT);
CREATE INDEX a_x ON a(x);
CREATE INDEX b_z ON b(z);
CREATE VIEW v AS SELECT x FROM a;
CREATE TABLE _paxdb_meta(k);
"""


def test_help_lists_every_command_with_its_docstring_summary(harness: Harness) -> None:
    output = harness.run(".help")
    names = [n for n in Commands.command_names() if n != "exit"]
    lines = output.splitlines()
    assert len(lines) == len(names)
    for name, line in zip(names, lines, strict=True):
        assert line.startswith("." + name)
    assert any(line.startswith(".quit | .exit") for line in lines)


def test_help_for_one_command_prints_its_whole_docstring(harness: Harness) -> None:
    output = harness.run(".help import")
    assert output.splitlines()[0] == ".import [--skip N] FILE TABLE"
    assert "500 rows per atomic request" in output


def test_commands_may_be_abbreviated_when_unambiguous(harness: Harness) -> None:
    harness.run(".mo csv")
    assert harness.shell.mode == "csv"
    harness.run(".h on")
    assert harness.errors() == [
        "Error: unknown command .h (could be .headers, .help); enter .help for the list"
    ]


def test_unknown_command_is_one_error_line(harness: Harness) -> None:
    harness.run(".frobnicate\nSELECT 1;")
    assert harness.errors() == ["Error: unknown command .frobnicate; enter .help for the list"]
    assert harness.shell.failed


def test_tables_skips_internal_tables_and_filters_by_pattern(harness: Harness) -> None:
    harness.run(SCHEMA)
    assert harness.run(".tables") == "a  b  v\n"
    assert harness.run(".tables a%") == "a\n"


def test_layout_columns_fills_top_to_bottom() -> None:
    assert layout_columns(["a", "b", "c", "d", "e"], 9) == ["a  c  e", "b  d"]
    assert layout_columns([], 80) == []


def test_schema_prints_create_statements(harness: Harness) -> None:
    harness.run(SCHEMA)
    assert harness.run(".schema b") == "CREATE TABLE b(z TEXT);\nCREATE INDEX b_z ON b(z);\n"
    everything = harness.run(".schema")
    assert "CREATE VIEW v AS SELECT x FROM a;" in everything
    assert "_paxdb_meta" not in everything


def test_indexes(harness: Harness) -> None:
    harness.run(SCHEMA + "CREATE TABLE u(k TEXT UNIQUE);")
    assert harness.run(".indexes") == "a_x  b_z\n"
    assert harness.run(".indexes a") == "a_x\n"


def test_mode_without_argument_shows_it_and_bad_mode_is_an_error(harness: Harness) -> None:
    assert harness.run(".mode") == "current output mode: list\n"
    harness.run(".mode fancy")
    assert harness.errors()[-1].startswith("Error: unknown mode 'fancy'; use one of table, box")


def test_headers_needs_on_or_off(harness: Harness) -> None:
    harness.run(".headers maybe")
    assert harness.errors() == ["Error: usage: .headers on|off"]


def test_timer_prints_run_time_per_statement(harness: Harness) -> None:
    output = harness.run(".timer on\nSELECT 1; SELECT 2;\n.timer off\nSELECT 3;")
    assert output == "1\nRun Time: real 0.250\n2\nRun Time: real 0.250\n3\n"


def test_output_sends_results_to_a_file_until_reset(harness: Harness, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    printed = harness.run(f".output {target}\nSELECT 1;\nSELECT 2;\n.output\nSELECT 3;")
    assert printed == "3\n"
    assert target.read_text() == "1\n2\n"


def test_once_sends_only_the_next_result_to_a_file(harness: Harness, tmp_path: Path) -> None:
    target = tmp_path / "once.csv"
    printed = harness.run(f".mode csv\n.once '{target}'\nSELECT 1, 'a,b';\nSELECT 2;")
    assert printed == "2\n"
    assert target.read_text() == '1,"a,b"\n'


def test_timer_notice_stays_on_the_console_during_output(harness: Harness, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    printed = harness.run(f".timer on\n.once {target}\nSELECT 7;")
    assert printed == "Run Time: real 0.250\n"
    assert target.read_text() == "7\n"


def test_consistency_shows_and_sets_the_level(harness: Harness) -> None:
    assert harness.run(".consistency") == "master\n"
    harness.run(".consistency LOCAL")
    assert harness.conn.consistency == "local"
    harness.run(".consistency sometimes")
    assert harness.errors() == [
        "Error: unknown consistency 'sometimes'; use one of local, master, linearizable"
    ]


def test_open_switches_database_and_databases_lists_them(harness: Harness) -> None:
    harness.run("CREATE TABLE in_main(x);")
    harness.run(".open other\nCREATE TABLE in_other(y);")
    assert harness.shell.session.database == "other"
    assert harness.run(".tables") == "in_other\n"
    assert harness.run(".databases") == "  main\n* other\n"
    harness.run(".open main")
    assert harness.run(".tables") == "in_main\n"


def test_status_renders_whatever_keys_the_node_reports(harness: Harness) -> None:
    harness.conn.status_override = {
        "node": 2,
        "master": 1,
        "groups": {"main": {"chosen": 10, "applied": 7, "chain": 99, "lease_ticks_left": 4}},
        "peers": {1: {"address": "10.0.0.1:7001", "up": True}, 3: {"address": "x:1", "up": False}},
        "version": "0.1.0",
    }
    output = harness.run(".mode column\n.headers on\n.status")
    assert output == (
        "key      value\n"
        "-------  -----\n"
        "node     2\n"
        "master   1\n"
        "version  0.1.0\n"
        "\n"
        "group  chosen  applied  lag  chain  lease_ticks_left\n"
        "-----  ------  -------  ---  -----  ----------------\n"
        "main       10        7    3     99                 4\n"
        "\n"
        "peer  address        up\n"
        "----  -------------  -----\n"
        "1     10.0.0.1:7001  True\n"
        "3     x:1            False\n"
    )


def test_status_tables_tolerates_odd_shapes() -> None:
    tables = status_tables({"groups": {"g": 5}, "nested": {"n": {"list": [1, 2]}}, "empty": {}})
    assert tables == [(["group", "value"], [["g", 5]]), (["nested", "list"], [["n", "[1, 2]"]])]


def test_backup_writes_a_copy_of_the_current_database(harness: Harness, tmp_path: Path) -> None:
    harness.run("CREATE TABLE kept(v); INSERT INTO kept VALUES (1), (2);")
    target = tmp_path / "copy.db"
    harness.run(f".backup {target}")
    assert harness.errors() == []
    with sqlite3.connect(target) as copy:
        assert copy.execute("SELECT v FROM kept ORDER BY v").fetchall() == [(1,), (2,)]
    harness.run(".backup")
    assert harness.errors() == ["Error: usage: .backup FILE"]


def test_quit_and_exit_leave(harness: Harness) -> None:
    with pytest.raises(ShellExit):
        harness.run(".quit")
    with pytest.raises(ShellExit):
        harness.run(".exit")


def test_read_runs_sql_and_dot_commands_from_a_file(harness: Harness, tmp_path: Path) -> None:
    script = tmp_path / "script.sql"
    script.write_text(
        ".mode csv\nCREATE TABLE r(a);\nINSERT INTO r\n  VALUES (1);\nSELECT a, 'x' FROM r;\n"
    )
    assert harness.run(f".read {script}") == "1,x\n"


def test_read_of_a_missing_file_is_one_error(harness: Harness, tmp_path: Path) -> None:
    harness.run(f".read {tmp_path / 'nope.sql'}")
    (line,) = harness.errors()
    assert line.startswith("Error: FileNotFoundError: [Errno 2] No such file or directory")


def test_read_that_reads_itself_stops(harness: Harness, tmp_path: Path) -> None:
    script = tmp_path / "loop.sql"
    script.write_text(f".read {script}\n")
    harness.run(f".read {script}")
    assert harness.errors() == ["Error: .read nested more than 16 deep"]


def test_unbalanced_quotes_in_a_dot_command_are_an_error(harness: Harness) -> None:
    harness.run(".output 'unterminated")
    assert harness.errors() == [
        'Error: cannot parse ".output \'unterminated": No closing quotation'
    ]
