"""Fixtures for the shell tests: a Shell on StringIO streams over the sqlite3 stand-in."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from shell_harness import Harness, fake_clock

from paxdb_shell import Session, Shell
from paxdb_shell.sqlite_backend import SqliteConnection

PEOPLE = """\
CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT, score REAL);
INSERT INTO people VALUES (1, 'Ann', 9.5), (2, NULL, NULL), (3, 'Zoë "Z" O''Neil, Jr.', -1.25);
"""


@pytest.fixture
def make_harness() -> Callable[..., Harness]:
    def make(*, width: int | None = None, stdin: str = "", interactive: bool = False) -> Harness:
        conn = SqliteConnection()
        stdout, stderr = io.StringIO(), io.StringIO()
        session = Session(conn, clock=fake_clock())
        shell = Shell(
            session, io.StringIO(stdin), stdout, stderr, interactive=interactive, width=width
        )
        return Harness(shell, conn, stdout, stderr)

    return make


@pytest.fixture
def harness(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


@pytest.fixture
def people(harness: Harness) -> Harness:
    """A harness whose database holds the `people` table."""
    harness.run(PEOPLE)
    assert harness.errors() == []
    return harness
