"""Errors are one line and never fatal; -c, -f and piped stdin set the exit status."""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from shell_harness import Harness

from paxdb_shell import Session, Shell, main
from paxdb_shell.backend import is_master_unavailable
from paxdb_shell.core import MASTER_NOTICE
from paxdb_shell.sqlite_backend import SqliteConnection

SHELL_DIR = Path(__file__).resolve().parents[2] / "shell"


class NotMaster(sqlite3.OperationalError):
    """Stands in for paxdb.errors.NotMaster (an OperationalError)."""


def test_sql_error_is_one_line_and_the_shell_goes_on(harness: Harness) -> None:
    output = harness.run("SELECT * FROM missing;\nSELECT 2;\nSELEKT 3;\nSELECT 4;")
    assert output == "2\n4\n"
    assert harness.errors() == [
        "Error: OperationalError: no such table: missing",
        'Error: OperationalError: near "SELEKT": syntax error',
    ]
    assert harness.shell.failed


def test_an_error_stops_the_rest_of_its_own_input_line(harness: Harness) -> None:
    assert harness.run("SELECT 1; SELECT nope; SELECT 3;\nSELECT 4;") == "1\n4\n"


def test_constraint_errors_keep_their_class(harness: Harness) -> None:
    harness.run("CREATE TABLE u(k UNIQUE); INSERT INTO u VALUES (1);\nINSERT INTO u VALUES (1);")
    assert harness.errors() == ["Error: IntegrityError: UNIQUE constraint failed: u.k"]


def test_multi_line_messages_are_folded_into_one_line(harness: Harness) -> None:
    harness.shell.report(ValueError("first\nsecond"))
    assert harness.errors() == ["Error: ValueError: first second"]


def test_no_master_adds_a_notice(harness: Harness) -> None:
    harness.shell.report(NotMaster("not master; retry at node 3"))
    assert harness.errors() == [
        "Error: NotMaster: not master; retry at node 3",
        MASTER_NOTICE,
    ]


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (NotMaster("x"), True),
        (sqlite3.OperationalError("no master elected yet"), True),
        (sqlite3.OperationalError("database is locked"), False),
        (sqlite3.ProgrammingError("master"), False),
    ],
)
def test_is_master_unavailable(error: Exception, expected: bool) -> None:
    assert is_master_unavailable(error) is expected


def test_unexpected_exceptions_are_reported_not_raised(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(sql: str, parameters: object = ()) -> object:
        raise RuntimeError("driver bug")

    monkeypatch.setattr(harness.shell.session, "execute", broken)
    harness.run("SELECT 1;")
    assert harness.errors() == ["Error: RuntimeError: driver bug"]


def _shell(stdin: str = "") -> tuple[Shell, io.StringIO, io.StringIO]:
    stdout, stderr = io.StringIO(), io.StringIO()
    shell = Shell(Session(SqliteConnection()), io.StringIO(stdin), stdout, stderr)
    return shell, stdout, stderr


def test_run_command_exit_status() -> None:
    shell, stdout, _ = _shell()
    assert shell.run_command("SELECT 1; SELECT 2") == 0
    assert stdout.getvalue() == "1\n2\n"
    shell, stdout, stderr = _shell()
    assert shell.run_command("SELECT nope;\nSELECT 2;") == 1
    assert stdout.getvalue() == "2\n"
    assert stderr.getvalue().count("\n") == 1


def test_run_script_exit_status(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.sql", tmp_path / "bad.sql"
    good.write_text("CREATE TABLE t(x);\nINSERT INTO t VALUES (1);\nSELECT * FROM t;\n")
    bad.write_text("SELECT 1;\nINSERT INTO nowhere VALUES (1);\nSELECT 3;\n")
    shell, stdout, _ = _shell()
    assert shell.run_script(str(good)) == 0
    assert stdout.getvalue() == "1\n"
    shell, stdout, _ = _shell()
    assert shell.run_script(str(bad)) == 1
    assert stdout.getvalue() == "1\n3\n"
    shell, _, stderr = _shell()
    assert shell.run_script(str(tmp_path / "missing.sql")) == 1
    assert stderr.getvalue().startswith("Error: cannot read ")


def test_piped_stdin_exit_status() -> None:
    shell, stdout, _ = _shell("CREATE TABLE t(x);\nINSERT INTO t\nVALUES (5);\nSELECT x FROM t;")
    assert shell.run() == 0
    assert stdout.getvalue() == "5\n"
    shell, _, _ = _shell("SELECT 1;\nnonsense;\n")
    assert shell.run() == 1


def test_quit_stops_a_script_with_the_status_so_far() -> None:
    shell, stdout, _ = _shell("SELECT 1;\n.quit\nSELECT 2;\n")
    assert shell.run() == 0
    assert stdout.getvalue() == "1\n"


def test_click_entry_point_with_command(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    runner = CliRunner()
    result = runner.invoke(main, [url, "-c", "CREATE TABLE t(x); INSERT INTO t VALUES (7);"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, [url, "--mode", "csv", "--headers", "-c", "SELECT * FROM t"])
    assert (result.exit_code, result.stdout) == (0, "x\n7\n")
    result = runner.invoke(main, [url, "-c", "SELECT * FROM nowhere"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == "Error: OperationalError: no such table: nowhere\n"


def test_click_entry_point_reads_piped_stdin(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sqlite://", "--mode", "json"], input="SELECT 1 AS a;\n")
    assert (result.exit_code, result.stdout) == (0, '[{"a":1}]\n')


def test_click_rejects_both_command_and_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["sqlite://", "-c", "SELECT 1", "-f", "x.sql"])
    assert result.exit_code == 2


def test_connection_failure_is_one_line_and_status_1() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paxdb_shell", "sqlite:///nonexistent-dir/x/y.db", "-c", "SELECT 1"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(SHELL_DIR), "PATH": "/usr/bin:/bin"},
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("Error: cannot connect to sqlite:///nonexistent-dir/x/y.db: ")


def test_python_dash_m_with_piped_stdin_and_file(tmp_path: Path) -> None:
    script = tmp_path / "s.sql"
    script.write_text("SELECT 'from file';\n")
    env = {"PYTHONPATH": str(SHELL_DIR), "PATH": "/usr/bin:/bin"}
    base = [sys.executable, "-m", "paxdb_shell", "sqlite://"]
    piped = subprocess.run(
        base,
        input="SELECT 6 * 7;\nSELECT bad;\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert (piped.returncode, piped.stdout) == (1, "42\n")
    assert piped.stderr == "Error: OperationalError: no such column: bad\n"
    from_file = subprocess.run(
        [*base, "-f", str(script)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert (from_file.returncode, from_file.stdout, from_file.stderr) == (0, "from file\n", "")
