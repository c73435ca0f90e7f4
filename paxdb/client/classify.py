"""Cheap read/write classification of a statement on the client.

The node is the authority on what a statement does (it parses it with sqlglot and
SQLite). The driver classifies only to know what to do *before* sending: inside a
transaction a write must be buffered until `commit()`, while a read is sent at once.
The rule, on the first keyword after whitespace and comments:

    SELECT, VALUES, EXPLAIN     read. Sent with write=False (no sequence number).
    WITH                        outside a transaction: write=None (the node decides).
                                Inside one: a read if no INSERT, UPDATE, DELETE or
                                REPLACE keyword appears outside quotes and comments,
                                otherwise a buffered write.
    PRAGMA                      outside a transaction: write=None. Inside one: a read if
                                it has no '=' outside quotes, otherwise a buffered write.
    BEGIN, COMMIT, END,         transaction control: handled by the driver, never sent.
    ROLLBACK, SAVEPOINT,
    RELEASE
    anything else               a write: write=True (or buffered in a transaction).

A read sent with write=False is safe even if the guess is wrong: the node refuses to
run a write in a read request, so nothing is ever applied outside its transaction.
Verdicts are cached by statement text (bounded), so a repeated statement costs one
dict lookup.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from functools import lru_cache

from paxdb.errors import ProgrammingError

CLASSIFY_CACHE_MAX = 1024  # Distinct statement texts whose verdict is kept.

_READ_WORDS = frozenset({"SELECT", "VALUES", "EXPLAIN"})
_DML_WORDS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_CONTROL_WORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})

# One SQL token: whitespace, a comment, a quoted string or identifier, a word, or one char.
_TOKEN = re.compile(
    r"""\s+|--[^\n]*|/\*.*?(?:\*/|\Z)
    |'(?:[^']|'')*'?|"(?:[^"]|"")*"?|`(?:[^`]|``)*`?|\[[^\]]*\]?
    |[A-Za-z_][A-Za-z0-9_$]*|.""",
    re.DOTALL | re.VERBOSE,
)
_SKIPPED = re.compile(r"\s|--|/\*")
# The first word after whitespace and comments: enough for most statements.
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?(?:\*/|\Z))*([A-Za-z_]+)", re.DOTALL)


class Kind(enum.Enum):
    READ = "read"  # Sent now as a read, in or out of a transaction.
    WRITE = "write"  # Replicated; buffered in a transaction.
    MAYBE_READ = "maybe read"  # Outside a transaction the node decides; inside, a read.
    MAYBE_WRITE = "maybe write"  # Outside a transaction the node decides; inside, buffered.
    CONTROL = "control"  # BEGIN, COMMIT, ...: the driver's own business.
    EMPTY = "empty"  # Only whitespace and comments: nothing to do.


@dataclass(frozen=True, slots=True)
class Control:
    """A transaction-control statement: verb (BEGIN, COMMIT, ROLLBACK, ROLLBACK TO,
    SAVEPOINT, RELEASE) and the savepoint name (case-folded, unquoted) if any."""

    verb: str
    name: str = ""


def _tokens(sql: str) -> list[str]:
    """The meaningful tokens of `sql` (comments and whitespace dropped)."""
    return [t for t in _TOKEN.findall(sql) if not _SKIPPED.match(t)]


@lru_cache(maxsize=CLASSIFY_CACHE_MAX)
def classify(sql: str) -> Kind:
    """The Kind of `sql` (see the module docstring for the rule)."""
    match = _FIRST_WORD.match(sql)
    if match is not None:
        word = match.group(1).upper()
        if word in _READ_WORDS:
            return Kind.READ
        if word not in _CONTROL_WORDS and word not in ("WITH", "PRAGMA"):
            return Kind.WRITE
    tokens = _tokens(sql)
    if not tokens:
        return Kind.EMPTY
    first = tokens[0].upper()
    if first in _READ_WORDS:
        return Kind.READ
    if first in _CONTROL_WORDS:
        return Kind.CONTROL
    if first == "WITH":
        has_dml = any(t.upper() in _DML_WORDS for t in tokens)
        return Kind.MAYBE_WRITE if has_dml else Kind.MAYBE_READ
    if first == "PRAGMA":
        return Kind.MAYBE_WRITE if "=" in tokens else Kind.MAYBE_READ
    return Kind.WRITE


def parse_control(sql: str) -> Control:
    """The Control a CONTROL statement stands for; ProgrammingError if malformed."""
    words = [t.upper() for t in _tokens(sql)]
    if words and words[-1] == ";":
        words.pop()
    raw = [t for t in _tokens(sql) if t != ";"]
    verb = words[0] if words else ""
    rest = words[1:]
    if verb == "BEGIN":
        if rest[:1] and rest[0] in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            rest = rest[1:]
        if rest in ([], ["TRANSACTION"]):
            return Control("BEGIN")
    elif verb in ("COMMIT", "END"):
        if rest in ([], ["TRANSACTION"]):
            return Control("COMMIT")
    elif verb == "ROLLBACK":
        if rest[:1] == ["TRANSACTION"]:
            rest = rest[1:]
        if not rest:
            return Control("ROLLBACK")
        if rest[0] == "TO":
            rest = rest[1:]
            if rest[:1] == ["SAVEPOINT"]:
                rest = rest[1:]
            if len(rest) == 1:
                return Control("ROLLBACK TO", _name(raw[-1]))
    elif verb == "SAVEPOINT":
        if len(rest) == 1:
            return Control("SAVEPOINT", _name(raw[-1]))
    elif verb == "RELEASE":
        if rest[:1] == ["SAVEPOINT"]:
            rest = rest[1:]
        if len(rest) == 1:
            return Control("RELEASE", _name(raw[-1]))
    raise ProgrammingError(f"cannot understand transaction statement {sql.strip()!r}")


def _name(token: str) -> str:
    """A savepoint name unquoted and case-folded (SQLite compares them case-insensitively)."""
    if token[:1] in ("'", '"', "`") and len(token) >= 2:
        token = token[1:-1].replace(token[0] * 2, token[0])
    elif token[:1] == "[":
        token = token[1:-1]
    return token.lower()
