"""The real prompt_toolkit UI in a pseudo-terminal, driven with pexpect.

The shell runs as `python -m paxdb_shell sqlite:///FILE`: the `sqlite:` URL is the test
hook in `paxdb_shell/backend.py` that swaps the paxdb driver for the sqlite3 stand-in.
Prompts are matched without their trailing space because prompt_toolkit draws it with
cursor-movement escapes.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path

import pytest

pexpect = pytest.importorskip("pexpect")

SHELL_DIR = Path(__file__).resolve().parents[2] / "shell"


@pytest.mark.timeout(60)
def test_interactive_session_in_a_pseudo_terminal(tmp_path: Path) -> None:
    database = tmp_path / "pty.db"
    with sqlite3.connect(database) as setup:
        setup.execute("CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT)")
        setup.execute("INSERT INTO people VALUES (1, 'Ann'), (2, 'Bob')")
    setup.close()
    history = tmp_path / "history"
    env = dict(
        os.environ,
        PYTHONPATH=str(SHELL_DIR),
        PROMPT_TOOLKIT_NO_CPR="1",
        TERM="xterm",
        HOME=str(tmp_path),
        PAXDB_HISTORY=str(history),
    )
    child = pexpect.spawn(
        sys.executable,
        ["-m", "paxdb_shell", f"sqlite:///{database}"],
        env=env,
        encoding="utf-8",
        timeout=20,
        dimensions=(24, 100),
    )
    try:
        child.expect_exact("main>")
        # A statement over two lines; the table name is completed with Tab.
        child.send("SELECT name\r")
        child.expect_exact("...>")
        child.send("FROM peo")
        child.send("\t")
        child.send(" ORDER BY id;\r")
        child.expect_exact("| Ann  |")
        child.expect_exact("| Bob  |")
        child.expect_exact("(2 rows)")
        child.expect_exact("main>")
        # Switching the output mode.
        child.send(".mode csv\r")
        child.expect_exact("main>")
        child.send("SELECT id, name FROM people WHERE id = 2;\r")
        child.expect_exact("2,Bob")
        child.expect_exact("main>")
        # Bad SQL: one clear line, and the shell goes on.
        child.send("SELEKT 1;\r")
        child.expect_exact('Error: OperationalError: near "SELEKT": syntax error')
        child.expect_exact("main>")
        # Ctrl-C throws the pending input away.
        child.send("SELECT 'never")
        child.sendcontrol("c")
        child.expect_exact("main>")
        child.send("SELECT 40 + 2;\r")
        child.expect_exact("42")
        child.expect_exact("main>")
        child.sendcontrol("d")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    # FileHistory stores each line of an entry with a "+" in front.
    assert "+SELECT name\n+FROM people ORDER BY id;\n" in history.read_text()
    assert "never" not in history.read_text()
