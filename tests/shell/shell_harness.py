"""The test harness: a Shell on StringIO streams over the sqlite3 stand-in."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from paxdb_shell import Shell
from paxdb_shell.sqlite_backend import SqliteConnection


@dataclass
class Harness:
    """A shell and its captured streams; `run` returns what one input printed."""

    shell: Shell
    conn: SqliteConnection
    stdout: io.StringIO
    stderr: io.StringIO

    def run(self, text: str) -> str:
        start = len(self.stdout.getvalue())
        self.shell.run_text(text)
        return self.stdout.getvalue()[start:]

    def errors(self) -> list[str]:
        return self.stderr.getvalue().splitlines()

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        return self.shell.session.query(sql)


def fake_clock(step_s: float = 0.25) -> Callable[[], float]:
    """A clock that advances `step_s` per reading, so every statement takes `step_s`."""
    counter = itertools.count()
    return lambda: next(counter) * step_s


MakeHarness = Callable[..., Harness]
