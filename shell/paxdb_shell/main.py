"""`paxdb-shell [URL]`: the click entry point (also `paxdb shell [URL]`).

Exit status: 0 when everything ran, 1 when a statement or command failed (or the
connection could not be opened), 130 after Ctrl-C in a script, 2 for a bad flag.
"""

from __future__ import annotations

import sys

import click

from . import backend
from .render import MODES
from .session import Session
from .shell import EXIT_FAILED, Shell
from .ui import default_history_path

__all__ = ["main", "run"]


def run(
    url: str,
    command: str | None = None,
    file: str | None = None,
    *,
    mode: str | None = None,
    headers: bool | None = None,
) -> int:
    """Connect to `url` and run the shell on the process's streams; returns the exit status."""
    try:
        conn = backend.connect(url)
    except Exception as error:
        sys.stderr.write(f"Error: cannot connect to {url}: {type(error).__name__}: {error}\n")
        return EXIT_FAILED
    interactive = command is None and file is None and sys.stdin.isatty()
    session = Session(conn)
    shell = Shell(session, interactive=interactive, history_path=default_history_path())
    if mode is not None:
        shell.mode = mode
    if headers is not None:
        shell.headers = headers
    try:
        if file is not None:
            return shell.run_script(file)
        if command is not None:
            return shell.run_command(command)
        return shell.run()
    finally:
        try:
            session.close()
        except Exception as error:
            sys.stderr.write(f"Error: while closing: {type(error).__name__}: {error}\n")


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("url", required=False, default=backend.DEFAULT_URL, metavar="[URL]")
@click.option(
    "-c",
    "-e",
    "--command",
    metavar="SQL",
    help="Run SQL (several statements; dot-commands on their own lines) and exit.",
)
@click.option(
    "-f",
    "--file",
    type=click.Path(dir_okay=False),
    help="Run the statements and dot-commands in FILE and exit.",
)
@click.option("--mode", type=click.Choice(MODES), help="Output mode (as .mode).")
@click.option("--headers/--no-headers", default=None, help="Print column names (as .headers).")
def main(
    url: str, command: str | None, file: str | None, mode: str | None, headers: bool | None
) -> None:
    """Interactive SQL shell for paxdb.

    URL is paxdb://HOST:PORT[,HOST:PORT...]/DATABASE[?consistency=...]
    (default paxdb://127.0.0.1:8001/main). Without -c or -f, reads statements from
    stdin: with a prompt at a terminal, as a script from a pipe. Enter .help inside
    for the dot-commands.
    """
    if command is not None and file is not None:
        raise click.UsageError("give -c or -f, not both")
    raise SystemExit(run(url, command, file, mode=mode, headers=headers))
