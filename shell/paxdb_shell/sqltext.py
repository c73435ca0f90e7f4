"""Pure helpers over SQL text: completeness, splitting, literals and identifiers.

Nothing here talks to a database. Completeness is judged by SQLite's own tokenizer
(`sqlite3.complete_statement`, the same routine as `apsw.complete`), so string literals,
comments and `CREATE TRIGGER ... BEGIN ... END;` bodies never end a statement early.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator

__all__ = [
    "first_keyword",
    "is_blank",
    "is_complete",
    "is_input_complete",
    "quote_identifier",
    "split_statements",
    "sql_literal",
]


def is_complete(text: str) -> bool:
    """True when `text` ends with a complete SQL statement (a `;` outside any literal)."""
    return sqlite3.complete_statement(text)


def is_input_complete(text: str) -> bool:
    """True when an interactive buffer should run on Enter rather than get a new line.

    An empty buffer and a dot-command (its first line starts with `.`) are complete at
    once, as in sqlite3's shell; SQL needs its terminating `;`.
    """
    stripped = text.strip()
    if not stripped or stripped.startswith("."):
        return True
    return is_complete(text)


def _skip_comments(text: str) -> str:
    """`text` without leading whitespace, comments and empty statements (`;`)."""
    while True:
        text = text.lstrip()
        if text.startswith("--"):
            end = text.find("\n")
            text = "" if end < 0 else text[end + 1 :]
        elif text.startswith("/*"):
            end = text.find("*/")
            text = "" if end < 0 else text[end + 2 :]
        elif text.startswith(";"):
            text = text[1:]
        else:
            return text


def is_blank(text: str) -> bool:
    """True when `text` holds nothing to execute: only whitespace, comments and `;`."""
    return not _skip_comments(text)


def first_keyword(text: str) -> str:
    """The first word of the statement in upper case ('' when blank), for classification."""
    body = _skip_comments(text)
    word = []
    for char in body:
        if not (char.isalnum() or char == "_"):
            break
        word.append(char)
    return "".join(word).upper()


def split_statements(text: str) -> Iterator[str]:
    """Yield the statements of `text` one at a time, each with its own `;` when it had one.

    Invariant: concatenating the yielded statements and the skipped blank pieces gives
    back `text`. A `;` splits only where SQLite's tokenizer says the prefix is complete,
    so semicolons inside literals, comments and trigger bodies stay where they are. Blank
    pieces (comments, stray `;`) are not yielded. A trailing statement without `;` is
    yielded as is, so `-c "SELECT 1"` works.
    """
    start = 0
    position = text.find(";")
    while position >= 0:
        candidate = text[start : position + 1]
        if is_complete(candidate):
            if not is_blank(candidate):
                yield candidate
            start = position + 1
        position = text.find(";", position + 1)
    rest = text[start:]
    if not is_blank(rest):
        yield rest


def quote_identifier(name: str) -> str:
    """`name` as an SQL identifier: always double-quoted, inner quotes doubled."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: object) -> str:
    """`value` as an SQL literal that SQLite reads back as the same value and type.

    Floats keep a decimal point or exponent (`repr`), so they come back as REAL;
    infinities become `1e999`/`-1e999` (what SQLite itself writes) and NaN, which
    SQLite cannot store, becomes NULL. Text with NUL characters goes through a blob,
    because an SQL string literal ends at NUL.
    """
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NULL"
        if math.isinf(value):
            return "1e999" if value > 0 else "-1e999"
        return repr(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return "X'" + bytes(value).hex().upper() + "'"
    text = str(value)
    if "\x00" in text:
        return "CAST(X'" + text.encode("utf-8").hex().upper() + "' AS TEXT)"
    return "'" + text.replace("'", "''") + "'"
