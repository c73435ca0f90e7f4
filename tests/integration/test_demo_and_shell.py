"""`paxdb demo` and the shell, driven through a pseudo-terminal as a person would."""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from pathlib import Path

import pexpect
import pytest
from cluster import ProcessCluster

PROMPT = "main>"
TERMINAL = {"PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def spawn_demo(tmp_path: Path) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "paxdb", "demo", "--dir", str(tmp_path)],
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 140),
        env={**os.environ, **TERMINAL, "PAXDB_HISTORY": str(tmp_path / "history")},
    )


@pytest.mark.timeout(120)
def test_demo_reaches_the_prompt_answers_and_leaves_no_process(tmp_path: Path) -> None:
    child = spawn_demo(tmp_path)
    try:
        child.expect("URL: paxdb://")
        child.expect_exact(PROMPT)
        pids = [int(p) for p in re.findall(r"pid (\d+)", child.before)]
        assert len(pids) == 3
        assert all(alive(pid) for pid in pids)
        child.send("SELECT 40 + 2 AS answer;\r")
        child.expect("42")
        child.expect_exact(PROMPT)
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0
    assert not any(alive(pid) for pid in pids)


@pytest.mark.timeout(120)
def test_a_demo_whose_terminal_goes_away_stops_its_nodes(tmp_path: Path) -> None:
    child = spawn_demo(tmp_path)
    try:
        child.expect_exact(PROMPT)
        pids = [int(p) for p in re.findall(r"pid (\d+)", child.before)]
        assert len(pids) == 3 and all(alive(pid) for pid in pids)
        child.kill(signal.SIGHUP)  # What closing the terminal window sends.
        child.expect(pexpect.EOF)
    finally:
        child.close()
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in pids)


@pytest.mark.timeout(120)
def test_the_shell_on_a_real_cluster(cluster: ProcessCluster, tmp_path: Path) -> None:
    cluster.master()
    csv_file = tmp_path / "people.csv"
    csv_file.write_text('name,city\nAda,"London, UK"\nGrace,Arlington\n"O\'Brien",\n')
    dump_file = tmp_path / "dump.sql"
    child = pexpect.spawn(
        sys.executable,
        ["-m", "paxdb", "shell", cluster.url],
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 140),
        cwd=str(tmp_path),
        env={**os.environ, **TERMINAL, "PAXDB_HISTORY": str(tmp_path / "history")},
    )
    try:
        child.expect_exact(PROMPT)
        time.sleep(0.5)  # Let prompt_toolkit take the terminal before we type.
        child.send(f".import {csv_file} people\r")
        child.expect("3 rows")
        child.expect_exact(PROMPT)
        child.send("SELECT name,\r")  # A statement over two lines.
        child.expect_exact("...>")
        child.send("city FROM peo")
        time.sleep(1.0)  # As a person would: the menu appears, then Tab takes "people".
        child.send("\t")
        time.sleep(0.5)
        child.send(" ORDER BY name;\r")
        child.expect("Arlington")
        child.expect_exact(PROMPT)
        child.send(".mode csv\r")
        child.expect_exact(PROMPT)
        child.send("SELECT name, city FROM people WHERE name = 'Ada';\r")
        child.expect('Ada,"London, UK"')
        child.expect_exact(PROMPT)
        child.send(f".output {dump_file}\r")
        child.expect_exact(PROMPT)
        child.send(".dump people\r")
        child.expect_exact(PROMPT)
        child.send(".output\r")
        child.expect_exact(PROMPT)
        child.send(".open copy\r")
        child.expect_exact("copy>")
        child.send(f".read {dump_file}\r")
        child.expect_exact("copy>")
        child.send("SELECT count(*) FROM people;\r")
        child.expect("3")
        child.expect_exact("copy>")
        child.send("SELEC broken;\r")
        child.expect("Error: ProgrammingError: .*syntax error")
        child.expect_exact("copy>")
        child.sendeof()
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert "CREATE TABLE" in dump_file.read_text()
    rows = cluster.rows(1, "SELECT name, city FROM people ORDER BY name", database="copy")
    assert rows == cluster.rows(1, "SELECT name, city FROM people ORDER BY name")
