"""ShellCore: the shell's state, where output goes, and how input becomes work.

Input is processed as sqlite3's shell does it:
- a line starting with `.` while no SQL is pending is a dot-command (the whole line);
- other lines accumulate until SQLite's tokenizer says the text ends with a complete
  statement, and then that text runs; text left at the end of input runs too, so
  `-c "SELECT 1"` needs no `;`.
One dot-command, or one complete chunk of SQL, is a *unit*. An error stops its unit,
is reported as one line on stderr and marks the shell failed; the next unit runs.

Three output streams:
- `out`: results and listings. It is stdout, or a file after `.output`/`.once`.
- `stdout` (the console): notices such as timings and row counts; never redirected.
- `stderr`: errors, and the `.import` progress bar.
"""

from __future__ import annotations

import functools
import os
import shutil
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from . import backend
from .errors import ShellError, ShellExit
from .render import RenderOptions, render
from .session import Result, Session
from .sqltext import is_blank, is_complete, split_statements

__all__ = ["CONTINUATION_PROMPT", "ShellCore", "isatty"]

CONTINUATION_PROMPT = "   ...> "
TRACEBACK_ENV = "PAXDB_SHELL_TRACEBACK"  # set to 1 to print tracebacks, for debugging
MASTER_NOTICE = (
    "Notice: no master right now (an election may be in progress); "
    "the driver fails over by itself, so retry in a moment."
)


class ShellCore:
    """State shared by the dot-commands and the input loop; see the module docstring."""

    def __init__(
        self,
        session: Session,
        stdin: TextIO,
        stdout: TextIO,
        stderr: TextIO,
        *,
        interactive: bool,
        width: int | None,
    ) -> None:
        self.session = session
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.interactive = interactive
        self.mode = "table" if interactive else "list"
        self.headers = interactive
        self.nullvalue: str | None = None
        self.timer = False
        self.failed = False
        self.out: TextIO = stdout
        self.read_depth = 0
        self._width = width
        self._once: TextIO | None = None

    # Output.

    def emit(self, text: str) -> None:
        """Write one record to the current output (stdout or the `.output` file)."""
        self.out.write(text + "\n")

    def note(self, text: str) -> None:
        """Write a notice to the console, never to an `.output` file."""
        self.stdout.write(text + "\n")

    def terminal_width(self) -> int | None:
        """Width to fit grid modes into: the given width, else the terminal's, else none.

        Output to a file or a pipe is never cut.
        """
        if self._width is not None:
            return self._width
        if self.out is self.stdout and isatty(self.stdout):
            return shutil.get_terminal_size().columns
        return None

    def render_options(self) -> RenderOptions:
        return RenderOptions(self.mode, self.headers, self.nullvalue, self.terminal_width())

    def show(self, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        for record in render(columns, rows, self.render_options()):
            self.emit(record)
        self.out.flush()

    def report(self, error: BaseException) -> None:
        """Print `error` as one line on stderr and remember that something failed."""
        self.failed = True
        message = " ".join(str(error).splitlines()).strip()
        notes = getattr(error, "__notes__", None)
        if notes:
            message += " (" + "; ".join(notes) + ")"
        if isinstance(error, ShellError):
            line = f"Error: {message}"
        else:
            name = type(error).__name__
            line = f"Error: {name}: {message}" if message else f"Error: {name}"
        self.stderr.write(line + "\n")
        if backend.is_master_unavailable(error):
            self.stderr.write(MASTER_NOTICE + "\n")
        if os.environ.get(TRACEBACK_ENV) == "1":
            traceback.print_exception(error, file=self.stderr)
        self.stderr.flush()

    def set_output(self, path: str | None) -> None:
        """Send results to the file at `path` (None or '-': back to stdout)."""
        target = self.stdout
        if path is not None and path != "-":
            target = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed on switch.
        self._end_once()
        self._close_output()
        self.out = target

    def arm_once(self, path: str) -> None:
        """Send the results of the next unit only to the file at `path`."""
        target = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed by `_end_once`.
        self._end_once()
        self._once = target

    def _close_output(self) -> None:
        if self.out is not self.stdout:
            self.out.close()
            self.out = self.stdout

    def _end_once(self) -> None:
        if self._once is not None:
            self._once.close()
            self._once = None

    def close(self) -> None:
        """Close any output file; the session is closed by whoever opened it."""
        self._end_once()
        self._close_output()

    # Units of work.

    def run_unit(self, action: Callable[[], None]) -> None:
        """Run one unit, reporting its error; a `.once` file armed before it applies to it."""
        once = self._once
        previous = self.out
        if once is not None:
            self.out = once
        try:
            action()
        except (ShellExit, KeyboardInterrupt):
            raise
        except Exception as error:
            self.report(error)
        finally:
            if once is not None:
                if self.out is once:
                    self.out = previous
                if self._once is once:
                    self._end_once()

    def run_lines(self, lines: Iterable[str]) -> None:
        """Process input lines (a script, piped stdin, or one interactive entry)."""
        pending: list[str] = []
        for line in lines:
            if not pending and is_blank(line):
                continue
            if not pending and line.lstrip().startswith("."):
                self.run_unit(functools.partial(self.run_dot, line))
                continue
            pending.append(line if line.endswith("\n") else line + "\n")
            if ";" in line and is_complete(text := "".join(pending)):
                pending.clear()
                self.run_unit(functools.partial(self.run_sql, text))
        text = "".join(pending)
        if not is_blank(text):
            self.run_unit(lambda: self.run_sql(text))

    def run_text(self, text: str) -> None:
        self.run_lines(text.splitlines(keepends=True))

    def run_sql(self, text: str) -> None:
        """Run the statements of `text` in order; the first error stops the rest."""
        for statement in split_statements(text):
            try:
                result = self.session.execute(statement)
            except Exception:
                self.session.forget_schema()
                raise
            self.show_result(result)

    def show_result(self, result: Result) -> None:
        if result.columns is not None:
            self.show(result.columns, result.rows)
            if self.interactive:
                count = len(result.rows)
                self.note(f"({count} row{'' if count == 1 else 's'})")
        elif self.interactive and result.rowcount >= 0:
            count = result.rowcount
            self.note(f"({count} row{'' if count == 1 else 's'} changed)")
        if self.timer:
            self.note(f"Run Time: real {result.elapsed_s:.3f}")

    def run_dot(self, line: str) -> None:
        """Run one dot-command line; provided by `Commands`."""
        raise NotImplementedError


def isatty(stream: TextIO) -> bool:
    """True when `stream` is a terminal (StringIO and closed-over streams are not)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())
