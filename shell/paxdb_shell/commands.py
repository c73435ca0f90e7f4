"""Dot-commands: each is a `cmd_<name>` method whose docstring is its help.

Docstring convention (read by `.help`): the first line is the usage, the paragraph
after the blank line is the description, whose first sentence is the summary `.help`
lists.
A command may be abbreviated to any unique prefix, as in sqlite3's shell (`.sch` is
`.schema`; `.h` is ambiguous between `.headers` and `.help`, so it is an error).
"""

from __future__ import annotations

import inspect
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from . import backend
from .core import ShellCore, isatty
from .dump import dump_lines
from .errors import ShellError, ShellExit
from .importer import import_csv
from .render import MODES, display_width
from .session import is_internal

__all__ = ["Commands", "layout_columns", "status_tables"]

ALIASES = {"exit": "quit"}
READ_DEPTH_MAX = 16  # nested `.read`s, so a file that reads itself stops
LISTING_WIDTH = 80  # width of `.tables` columns when the output is not a terminal
HELP_USAGE_WIDTH = 30
SWITCH_WORDS = {"on": True, "yes": True, "true": True, "1": True}
SWITCH_WORDS |= {"off": False, "no": False, "false": False, "0": False}

Command = Callable[[list[str]], None]


def _switch(args: list[str], usage: str) -> bool:
    if len(args) != 1 or args[0].lower() not in SWITCH_WORDS:
        raise ShellError(f"usage: {usage}")
    return SWITCH_WORDS[args[0].lower()]


def _arguments(args: list[str], low: int, high: int, usage: str) -> list[str]:
    if not low <= len(args) <= high:
        raise ShellError(f"usage: {usage}")
    return args


def layout_columns(names: Sequence[str], width: int) -> list[str]:
    """`names` in columns filling `width`, top to bottom then left to right (sqlite3 style)."""
    if not names:
        return []
    cell = max(display_width(n) for n in names) + 2
    count = max(1, width // cell)
    height = -(-len(names) // count)
    lines = []
    for row in range(height):
        cells = names[row::height]
        line = "".join(n + " " * (cell - display_width(n)) for n in cells)
        lines.append(line.rstrip())
    return lines


def _status_cell(value: Any) -> Any:
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return value


def _nested_table(key: str, entries: Mapping[Any, Any]) -> tuple[list[str], list[list[Any]]]:
    """One row per entry of a mapping such as `groups` or `peers`; columns by first sight.

    When an entry has both `chosen` and `applied`, a derived `lag` column (their
    difference: instances chosen but not applied here yet) follows `applied`.
    """
    columns: list[str] = []
    for item in entries.values():
        names = [str(k) for k in item] if isinstance(item, Mapping) else ["value"]
        columns += [n for n in names if n not in columns]
    if "chosen" in columns and "applied" in columns and "lag" not in columns:
        columns.insert(columns.index("applied") + 1, "lag")
    rows = []
    for name, item in entries.items():
        fields = dict(item) if isinstance(item, Mapping) else {"value": item}
        fields = {str(k): v for k, v in fields.items()}
        if "lag" in columns and "lag" not in fields:
            chosen, applied = fields.get("chosen"), fields.get("applied")
            if isinstance(chosen, int) and isinstance(applied, int):
                fields["lag"] = chosen - applied
        rows.append([str(name), *(_status_cell(fields.get(c)) for c in columns)])
    label = key[:-1] if key.endswith("s") else key
    return [label, *columns], rows


def status_tables(status: Mapping[str, Any]) -> list[tuple[list[str], list[list[Any]]]]:
    """Tables for whatever keys `status` has: scalars as key/value, mappings one row each."""
    tables = []
    scalars = [[str(k), _status_cell(v)] for k, v in status.items() if not isinstance(v, Mapping)]
    if scalars:
        tables.append((["key", "value"], scalars))
    for key, value in status.items():
        if isinstance(value, Mapping) and value:
            tables.append(_nested_table(str(key), value))
    return tables


class Commands(ShellCore):
    """The dot-commands; see the module docstring for how help is derived."""

    # Dispatch and help.

    def run_dot(self, line: str) -> None:
        try:
            words = shlex.split(line.strip()[1:])
        except ValueError as error:
            raise ShellError(f"cannot parse {line.strip()!r}: {error}") from None
        if not words:
            raise ShellError('a "." must be followed by a command; enter .help for the list')
        self.find_command(words[0])(words[1:])

    @classmethod
    def command_names(cls) -> list[str]:
        names = [n[4:] for n in dir(cls) if n.startswith("cmd_")]
        return sorted([*names, *ALIASES])

    def find_command(self, name: str) -> Command:
        """The method for `name`, an exact name, an alias or a unique prefix."""
        names = self.command_names()
        matches = [name] if name in names else [n for n in names if n.startswith(name)]
        targets = sorted({ALIASES.get(n, n) for n in matches})
        if len(targets) != 1:
            hint = f" (could be {', '.join('.' + t for t in targets)})" if targets else ""
            raise ShellError(f"unknown command .{name}{hint}; enter .help for the list")
        method: Command = getattr(self, "cmd_" + targets[0])
        return method

    @staticmethod
    def help_parts(method: Command) -> tuple[str, str]:
        """(usage, description) from a cmd_ docstring."""
        doc = inspect.getdoc(method) or ""
        usage, _, description = doc.partition("\n")
        return usage.strip(), description.strip()

    def cmd_help(self, args: list[str]) -> None:
        """.help [COMMAND]

        List the commands, or show everything about one command.
        """
        _arguments(args, 0, 1, ".help [COMMAND]")
        if args:
            usage, description = self.help_parts(self.find_command(args[0].lstrip(".")))
            self.emit(usage)
            for line in description.splitlines():
                self.emit("  " + line if line else "")
            return
        for name in self.command_names():
            if name in ALIASES:
                continue
            usage, description = self.help_parts(getattr(self, "cmd_" + name))
            summary = " ".join(description.split()).partition(". ")[0].rstrip(".")
            self.emit(f"{usage:<{HELP_USAGE_WIDTH}} {summary}".rstrip())

    # Output settings.

    def cmd_mode(self, args: list[str]) -> None:
        """.mode [MODE]

        Set or show the output mode. MODE is table, box, column, list, csv, json, line or
        markdown; table, box, column and markdown cut wide values to the terminal width.
        """
        _arguments(args, 0, 1, ".mode [MODE]")
        if not args:
            self.emit(f"current output mode: {self.mode}")
            return
        mode = args[0].lower()
        if mode not in MODES:
            raise ShellError(f"unknown mode {args[0]!r}; use one of {', '.join(MODES)}")
        self.mode = mode

    def cmd_headers(self, args: list[str]) -> None:
        """.headers on|off

        Show or hide column names. json, line and markdown always show them.
        """
        self.headers = _switch(args, ".headers on|off")

    def cmd_nullvalue(self, args: list[str]) -> None:
        """.nullvalue [TEXT]

        Print NULL as TEXT. Without TEXT, go back to the mode's default: empty in list
        and csv, NULL in the others (json always writes null). `.import` reads fields
        equal to a TEXT set here as NULL.
        """
        _arguments(args, 0, 1, ".nullvalue [TEXT]")
        self.nullvalue = args[0] if args else None

    def cmd_timer(self, args: list[str]) -> None:
        """.timer on|off

        Print how long each statement took. Wall clock, including fetching its rows.
        """
        self.timer = _switch(args, ".timer on|off")

    def cmd_output(self, args: list[str]) -> None:
        """.output [FILE]

        Send results to FILE, or back to the screen without FILE. FILE is overwritten.
        """
        _arguments(args, 0, 1, ".output [FILE]")
        self.set_output(args[0] if args else None)

    def cmd_once(self, args: list[str]) -> None:
        """.once FILE

        Send the results of the next command or SQL only to FILE.
        """
        _arguments(args, 1, 1, ".once FILE")
        self.arm_once(args[0])

    # The schema.

    def _listing(self, names: list[str]) -> None:
        for line in layout_columns(names, self.terminal_width() or LISTING_WIDTH):
            self.emit(line)

    def cmd_tables(self, args: list[str]) -> None:
        """.tables [PATTERN]

        List the tables and views, or those whose name is LIKE PATTERN.
        """
        _arguments(args, 0, 1, ".tables [PATTERN]")
        self._listing(self.session.table_names(args[0] if args else None))

    def cmd_schema(self, args: list[str]) -> None:
        """.schema [TABLE]

        Print the CREATE statements, of all or of the tables LIKE TABLE. The indexes and
        triggers of those tables are included.
        """
        _arguments(args, 0, 1, ".schema [TABLE]")
        for entry in self.session.schema_entries(args[0] if args else None):
            if entry.sql is not None and not is_internal(entry.name):
                self.emit(entry.sql + ";")

    def cmd_indexes(self, args: list[str]) -> None:
        """.indexes [TABLE]

        List the indexes, or those of the tables LIKE TABLE.
        """
        _arguments(args, 0, 1, ".indexes [TABLE]")
        entries = self.session.schema_entries(args[0] if args else None)
        names = [e.name for e in entries if e.type == "index" and not is_internal(e.name)]
        self._listing(sorted(names))

    # Moving data in and out.

    def cmd_dump(self, args: list[str]) -> None:
        """.dump [TABLE]

        Print the database, or the tables LIKE TABLE, as SQL. `.read` loads it back:
        CREATE statements, then one INSERT per row.
        """
        _arguments(args, 0, 1, ".dump [TABLE]")
        for line in dump_lines(self.session, args[0] if args else None):
            self.emit(line)

    def cmd_read(self, args: list[str]) -> None:
        """.read FILE

        Run the SQL statements and dot-commands in FILE.
        """
        _arguments(args, 1, 1, ".read FILE")
        if self.read_depth >= READ_DEPTH_MAX:
            raise ShellError(f".read nested more than {READ_DEPTH_MAX} deep")
        self.read_depth += 1
        try:
            with open(args[0], encoding="utf-8") as file:
                self.run_lines(file)
        finally:
            self.read_depth -= 1
            self.session.forget_schema()

    def cmd_import(self, args: list[str]) -> None:
        """.import [--skip N] FILE TABLE

        Load the CSV file FILE into TABLE, 500 rows per atomic request. A missing TABLE
        is created from the header row; for an existing one the header row is skipped
        when it matches the column names. --skip N ignores N lines first.
        """
        usage = ".import [--skip N] FILE TABLE"
        skip = 0
        if args and args[0] == "--skip":
            if len(args) < 2 or not args[1].isdigit():
                raise ShellError(f"usage: {usage}")
            skip, args = int(args[1]), args[2:]
        path, table = _arguments(args, 2, 2, usage)
        progress = self._progress_bar(table)
        try:
            report = import_csv(
                self.session,
                path,
                table,
                skip_rows=skip,
                null_text=self.nullvalue,
                progress=progress,
            )
        finally:
            if progress is not None:
                self.stderr.write("\r\x1b[K")
        self.note(f"Imported {report.rows} rows into {table}.")
        if report.padded_rows:
            self.note(f"({report.padded_rows} short rows were padded with NULL.)")

    def _progress_bar(self, table: str) -> Callable[[int, int, int], None] | None:
        """A one-line progress bar on stderr, only for a person at a terminal."""
        if not (self.interactive and isatty(self.stderr)):
            return None

        def show(rows: int, done_bytes: int, total_bytes: int) -> None:
            share = done_bytes / total_bytes if total_bytes else 1.0
            bar = "#" * int(share * 30)
            self.stderr.write(f"\r{table} [{bar:<30}] {share:4.0%} {rows} rows")
            self.stderr.flush()

        return show

    def cmd_backup(self, args: list[str]) -> None:
        """.backup FILE

        Write a consistent SQLite copy of the database to FILE, taken on a node with the
        SQLite backup API and checked with PRAGMA integrity_check (as `paxdb backup`).
        """
        if len(args) != 1:
            raise ShellError("usage: .backup FILE")
        try:
            report = backend.backup_database(
                self.session.conn, args[0], lambda line: self.stderr.write(line + "\n")
            )
        except (OSError, ValueError) as error:
            raise ShellError(str(error)) from None
        self.note(report)

    # The cluster.

    def cmd_consistency(self, args: list[str]) -> None:
        """.consistency [LEVEL]

        Show or set the read consistency. LEVEL is local (this replica: fastest, may
        lag), master (the master under its lease; the default) or linearizable (the
        master after confirming with a quorum).
        """
        _arguments(args, 0, 1, ".consistency [local|master|linearizable]")
        if not args:
            self.emit(self.session.consistency)
            return
        self.session.consistency = args[0].lower()

    def cmd_databases(self, args: list[str]) -> None:
        """.databases

        List the databases of the cluster. Each is one Paxos group; * marks the current one.
        """
        _arguments(args, 0, 0, ".databases")
        current = self.session.database
        for name in self.session.databases():
            self.emit(("* " if name == current else "  ") + name)

    def cmd_open(self, args: list[str]) -> None:
        """.open NAME

        Switch to the database NAME. Each database is a Paxos group of the same cluster.
        """
        (name,) = _arguments(args, 1, 1, ".open NAME")
        self.session.use(name)

    def cmd_status(self, args: list[str]) -> None:
        """.status

        Show the node, the master, and each database and peer. Per database: instances
        chosen and applied, their lag, the lease; per peer: address and liveness, as the
        node reports them.
        """
        _arguments(args, 0, 0, ".status")
        for index, (columns, rows) in enumerate(status_tables(self.session.status())):
            if index:
                self.emit("")
            self.show(columns, rows)

    def cmd_quit(self, args: list[str]) -> None:
        """.quit | .exit

        Leave the shell (Ctrl-D does too).
        """
        raise ShellExit
