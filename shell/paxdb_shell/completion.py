"""Tab completion: SQL keywords, functions, table and column names, dot-commands.

`suggest` is pure (text before the cursor + schema -> suggestions) so it is tested
without a terminal; `SqlCompleter` adapts it to prompt_toolkit. The schema comes from
a callable (the Session's cached `schema_map`), and a failure to read it (a cluster
that is down) must never break typing, so it then completes keywords only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from prompt_toolkit.completion import CompleteEvent, Completer, Completion
from prompt_toolkit.document import Document

from .backend import CONSISTENCY_LEVELS
from .render import MODES
from .sqltext import quote_identifier

__all__ = ["KEYWORDS", "SqlCompleter", "Suggestion", "suggest"]

# fmt: off
KEYWORDS = (
    "ABORT", "ACTION", "ADD", "AFTER", "ALL", "ALTER", "ALWAYS", "ANALYZE", "AND", "AS", "ASC",
    "ATTACH", "AUTOINCREMENT", "BEFORE", "BEGIN", "BETWEEN", "BY", "CASCADE", "CASE", "CAST",
    "CHECK", "COLLATE", "COLUMN", "COMMIT", "CONFLICT", "CONSTRAINT", "CREATE", "CROSS", "CURRENT",
    "CURRENT_DATE", "CURRENT_TIME", "CURRENT_TIMESTAMP", "DATABASE", "DEFAULT", "DEFERRABLE",
    "DEFERRED", "DELETE", "DESC", "DETACH", "DISTINCT", "DO", "DROP", "EACH", "ELSE", "END",
    "ESCAPE", "EXCEPT", "EXCLUDE", "EXCLUSIVE", "EXISTS", "EXPLAIN", "FAIL", "FILTER", "FIRST",
    "FOLLOWING", "FOR", "FOREIGN", "FROM", "FULL", "GENERATED", "GLOB", "GROUP", "GROUPS",
    "HAVING", "IF", "IGNORE", "IMMEDIATE", "IN", "INDEX", "INDEXED", "INITIALLY", "INNER",
    "INSERT", "INSTEAD", "INTERSECT", "INTO", "IS", "ISNULL", "JOIN", "KEY", "LAST", "LEFT",
    "LIKE", "LIMIT", "MATCH", "MATERIALIZED", "NATURAL", "NO", "NOT", "NOTHING", "NOTNULL", "NULL",
    "NULLS", "OF", "OFFSET", "ON", "OR", "ORDER", "OTHERS", "OUTER", "OVER", "PARTITION", "PLAN",
    "PRAGMA", "PRECEDING", "PRIMARY", "QUERY", "RAISE", "RANGE", "RECURSIVE", "REFERENCES",
    "REGEXP", "REINDEX", "RELEASE", "RENAME", "REPLACE", "RESTRICT", "RETURNING", "RIGHT",
    "ROLLBACK", "ROW", "ROWS", "SAVEPOINT", "SELECT", "SET", "STRICT", "TABLE", "TEMP",
    "TEMPORARY", "THEN", "TIES", "TO", "TRANSACTION", "TRIGGER", "UNBOUNDED", "UNION", "UNIQUE",
    "UPDATE", "USING", "VACUUM", "VALUES", "VIEW", "VIRTUAL", "WHEN", "WHERE", "WINDOW", "WITH",
    "WITHOUT", "INTEGER", "TEXT", "REAL", "BLOB", "NUMERIC"
)
FUNCTIONS = (
    "abs", "avg", "char", "coalesce", "count", "group_concat", "hex", "ifnull", "iif", "instr",
    "json", "json_array", "json_extract", "json_group_array", "json_group_object", "json_object",
    "length", "lower", "ltrim", "max", "min", "nullif", "printf", "quote", "replace", "round",
    "rtrim", "substr", "sum", "total", "trim", "typeof", "unicode", "upper", "zeroblob"
)
# fmt: on
TABLE_CONTEXT = frozenset({"FROM", "JOIN", "INTO", "UPDATE", "TABLE", "EXISTS"})
TABLE_COMMANDS = frozenset({".schema", ".dump", ".indexes", ".tables"})
COMMAND_ARGUMENTS: Mapping[str, Sequence[str]] = {
    ".mode": MODES,
    ".consistency": CONSISTENCY_LEVELS,
    ".headers": ("on", "off"),
    ".timer": ("on", "off"),
}
_WORD = re.compile(r"[\w.\"]*$")
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Suggestion:
    """Replace the `replace_chars` characters before the cursor with `text`."""

    text: str
    replace_chars: int
    meta: str


def _name_text(name: str) -> str:
    return name if _PLAIN_NAME.match(name) else quote_identifier(name)


def _matching(
    prefix: str, names: Iterable[str], meta: str, keyword_case: bool
) -> Iterator[Suggestion]:
    folded = prefix.lower()
    for name in names:
        if name.lower().startswith(folded):
            text = name.lower() if keyword_case and prefix.islower() else name
            yield Suggestion(text if keyword_case else _name_text(name), len(prefix), meta)


def _suggest_command(
    text: str, commands: Sequence[str], schema: Mapping[str, Sequence[str]]
) -> list[Suggestion]:
    """Completions inside a dot-command line: the command, then its argument."""
    words = text.split()
    if len(words) <= 1 and not text.endswith(" "):
        prefix = words[0] if words else "."
        return [
            Suggestion("." + c, len(prefix), "command")
            for c in commands
            if ("." + c).startswith(prefix)
        ]
    command = words[0]
    prefix = "" if text.endswith(" ") else words[-1]
    if command in COMMAND_ARGUMENTS:
        return list(_matching(prefix, COMMAND_ARGUMENTS[command], "", keyword_case=True))
    if command in TABLE_COMMANDS:
        return list(_matching(prefix, sorted(schema), "table", keyword_case=False))
    return []


def suggest(
    text: str,
    schema: Mapping[str, Sequence[str]],
    commands: Sequence[str] = (),
    *,
    requested: bool = False,
) -> list[Suggestion]:
    """Suggestions for the word ending at the end of `text` (the text before the cursor).

    After FROM, JOIN, INTO, UPDATE or TABLE, tables come first; after `name.`, the columns
    of table `name`; elsewhere columns of the tables named in the statement, then tables,
    keywords and functions. An empty word gets suggestions only after a table keyword or
    when the user asked (Tab), so typing a space never pops up every keyword.
    """
    if text.lstrip().startswith(".") and "\n" not in text.strip():
        return _suggest_command(text.lstrip(), commands, schema)
    word = _WORD.search(text)
    prefix = word.group(0) if word else ""
    before = text[: len(text) - len(prefix)].split()
    previous = before[-1].upper() if before else ""
    if "." in prefix:
        table, _, column = prefix.rpartition(".")
        columns = _lookup(schema, table.strip('"'))
        return list(_matching(column, columns, "column", keyword_case=False))
    prefix = prefix.lstrip('"')
    if not prefix and not requested and previous not in TABLE_CONTEXT:
        return []
    tables = list(_matching(prefix, sorted(schema), "table", keyword_case=False))
    if previous in TABLE_CONTEXT:
        return tables + list(_matching(prefix, KEYWORDS, "keyword", keyword_case=True))
    mentioned = [t for t in schema if re.search(rf"\b{re.escape(t)}\b", text, re.IGNORECASE)]
    column_names = dict.fromkeys(c for t in (mentioned or schema) for c in schema[t])
    return (
        list(_matching(prefix, column_names, "column", keyword_case=False))
        + tables
        + list(_matching(prefix, KEYWORDS, "keyword", keyword_case=True))
        + list(_matching(prefix, FUNCTIONS, "function", keyword_case=True))
    )


def _lookup(schema: Mapping[str, Sequence[str]], table: str) -> Sequence[str]:
    for name, columns in schema.items():
        if name.lower() == table.lower():
            return columns
    return ()


class SqlCompleter(Completer):
    """prompt_toolkit adapter over `suggest`."""

    def __init__(
        self, schema: Callable[[], Mapping[str, Sequence[str]]], commands: Sequence[str]
    ) -> None:
        self._schema = schema
        self._commands = commands

    def get_completions(
        self, document: Document, complete_event: CompleteEvent
    ) -> Iterator[Completion]:
        try:
            schema = self._schema()
        except Exception:
            schema = {}
        suggestions = suggest(
            document.text_before_cursor,
            schema,
            self._commands,
            requested=complete_event.completion_requested,
        )
        for item in suggestions:
            yield Completion(item.text, -item.replace_chars, display_meta=item.meta)
