"""`.import FILE TABLE`: load a CSV file in atomic batches of `IMPORT_BATCH_ROWS` rows.

Each batch is one `executemany` inside one atomic request (`Session.execute_atomic`),
so a failure leaves whole batches applied and reports how many rows made it in.

Header rules (like sqlite3's, plus one convenience):
- The table does not exist: the first row names the columns of a new table whose
  columns have no type (so SQLite keeps each value as the text it was).
- The table exists: the first row is skipped when it equals the column names
  (ignoring case), otherwise it is data.
CSV has no NULL: a field equal to `null_text` becomes NULL when `null_text` is given
(the shell passes its `.nullvalue` when one was set); otherwise every field is text.
A short row is padded with NULLs; a long row is an error naming its line.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TextIO

from .errors import ShellError
from .session import Session
from .sqltext import quote_identifier

__all__ = ["IMPORT_BATCH_ROWS", "ImportReport", "import_csv"]

IMPORT_BATCH_ROWS = 500

Progress = Callable[[int, int, int], None]  # (rows so far, bytes read, bytes in file)


@dataclass(frozen=True, slots=True)
class ImportReport:
    table: str
    rows: int
    created: bool
    padded_rows: int


class _CountingLines:
    """Iterates a text file's lines while counting their UTF-8 bytes, for progress."""

    def __init__(self, file: TextIO) -> None:
        self._file = file
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        for line in self._file:
            self.bytes_read += len(line.encode("utf-8"))
            yield line


def _create_table(session: Session, table: str, header: list[str]) -> list[str]:
    """Create `table` from a header row; blank or repeated names get a position suffix."""
    names: list[str] = []
    seen: set[str] = set()
    for index, raw in enumerate(header, start=1):
        name = raw.strip() or f"c{index}"
        if name.lower() in seen:
            name = f"{name}_{index}"
        seen.add(name.lower())
        names.append(name)
    columns = ", ".join(quote_identifier(n) for n in names)
    session.execute(f"CREATE TABLE {quote_identifier(table)}({columns})")
    return names


def _shape(row: list[str], width: int, line: int, null_text: str | None) -> list[Any]:
    if len(row) > width:
        raise ShellError(f"line {line}: expected {width} columns, found {len(row)}")
    values: list[Any] = [None if null_text is not None and v == null_text else v for v in row]
    return values + [None] * (width - len(values))


def import_csv(
    session: Session,
    path: str,
    table: str,
    *,
    skip_rows: int = 0,
    null_text: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import the CSV file at `path` into `table`; see the module docstring for the rules."""
    size = os.path.getsize(path)
    with open(path, newline="", encoding="utf-8-sig") as file:
        lines = _CountingLines(file)
        reader = csv.reader(lines)
        for _ in range(skip_rows):
            next(reader, None)
        header = next(reader, None)
        if header is None:
            raise ShellError(f"{path} has no rows to import")
        created = not session.has_table(table)
        first: list[list[str]] = []
        if created:
            columns = _create_table(session, table, header)
        else:
            columns = session.column_names(table)
            if [h.strip().lower() for h in header] != [c.lower() for c in columns]:
                first.append(header)
        names = ", ".join(quote_identifier(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO {quote_identifier(table)}({names}) VALUES({marks})"
        rows = padded = 0
        batch: list[list[Any]] = []
        for row in _chain(first, reader):
            if not row:
                continue  # A blank line.
            padded += len(row) < len(columns)
            try:
                batch.append(_shape(row, len(columns), reader.line_num, null_text))
            except ShellError as error:
                error.add_note(f"{rows} rows were imported before it")
                raise
            if len(batch) >= IMPORT_BATCH_ROWS:
                rows += _flush(session, sql, batch, rows)
                if progress is not None:
                    progress(rows, lines.bytes_read, size)
        rows += _flush(session, sql, batch, rows)
    session.forget_schema()
    return ImportReport(table, rows, created, padded)


def _chain(first: list[list[str]], reader: Iterator[list[str]]) -> Iterator[list[str]]:
    yield from first
    yield from reader


def _flush(session: Session, sql: str, batch: list[list[Any]], done: int) -> int:
    """Send `batch` as one atomic request and empty it; returns how many rows it held."""
    if not batch:
        return 0
    try:
        session.execute_atomic(sql, batch)
    except Exception as error:
        error.add_note(f"{done} rows were imported before the failing batch")
        raise
    count = len(batch)
    batch.clear()
    return count
