"""Shell: the dot-commands plus the ways to run it (interactive, script, one command).

A Shell takes its streams (stdin, stdout, stderr) as apsw's shell does, so tests drive
it with StringIO. `interactive` is decided by the caller (main.py: stdin is a terminal
and no -c/-f was given); it chooses prompt_toolkit input, the `table` mode with headers
and row-count notices. Otherwise output suits pipes: `list` mode, no headers, no prompt,
no colours, no progress bar.
"""

from __future__ import annotations

import sys
from typing import TextIO

from .commands import Commands
from .errors import ShellError, ShellExit
from .session import Session

__all__ = ["Shell"]

EXIT_OK = 0
EXIT_FAILED = 1  # some statement or command failed
EXIT_INTERRUPTED = 130  # Ctrl-C in a script, as a shell reports SIGINT


class Shell(Commands):
    """An SQL shell over one Session; `run*` return the process exit status."""

    def __init__(
        self,
        session: Session,
        stdin: TextIO | None = None,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        *,
        interactive: bool = False,
        width: int | None = None,
        history_path: str | None = None,
    ) -> None:
        super().__init__(
            session,
            stdin if stdin is not None else sys.stdin,
            stdout if stdout is not None else sys.stdout,
            stderr if stderr is not None else sys.stderr,
            interactive=interactive,
            width=width,
        )
        self.history_path = history_path

    def _status(self) -> int:
        return EXIT_FAILED if self.failed else EXIT_OK

    def _guarded(self, action: str, text: str | None = None) -> int:
        """Run `action` ('stdin', 'text' or 'file'), turning quit and Ctrl-C into a status."""
        try:
            if action == "stdin":
                self.run_lines(self.stdin)
            elif action == "text":
                assert text is not None
                self.run_text(text)
            else:
                assert text is not None
                self.run_file(text)
        except ShellExit:
            pass
        except KeyboardInterrupt:
            self.stderr.write("Interrupted.\n")
            return EXIT_INTERRUPTED
        finally:
            self.close()
        return self._status()

    def run(self) -> int:
        """Read stdin to its end: with prompts when interactive, else as a script.

        An interactive session ends with status 0 even after errors: the person at the
        terminal saw them, and a later statement may have fixed things.
        """
        if not self.interactive:
            return self._guarded("stdin")
        from .ui import interact

        self.note(f"paxdb shell, database {self.session.database}.")
        self.note('Enter ".help" for the commands; end statements with ";"; Ctrl-D leaves.')
        try:
            interact(self, self.history_path)
        except ShellExit:
            pass
        finally:
            self.close()
        return EXIT_OK

    def run_command(self, text: str) -> int:
        """Run `text` (SQL statements and dot-command lines), as `-c TEXT` does."""
        return self._guarded("text", text)

    def run_script(self, path: str) -> int:
        """Run the file at `path`, as `-f FILE` does."""
        return self._guarded("file", path)

    def run_file(self, path: str) -> None:
        try:
            file = open(path, encoding="utf-8")  # noqa: SIM115 - closed below.
        except OSError as error:
            self.report(ShellError(f"cannot read {path}: {error.strerror}"))
            return
        with file:
            self.run_lines(file)
