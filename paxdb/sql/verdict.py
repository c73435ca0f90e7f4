"""The result of judging one SQL statement: `Verdict`, shared by both judges.

A verdict is about one statement text and never about its parameters. Kinds:
- READ: SQLite considers it read-only. `reason` is "" if it may also appear inside a
  replicated write request; otherwise it says why not (a read may call `changes()`, but
  its rows would be stored in the dedupe table if it ran inside a write).
- WRITE: a deterministic write (possibly using stamped time/randomness). `reason` is "".
  `is_deferred` means the proposer could not see everything without the user's schema
  (a table the scratch connection lacks); the apply connection's authorizer then has the
  last word, and a denial there is a deterministic error result on every replica.
- REJECTED: refused in any request; `reason` names the culprit and why.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from paxdb.errors import NondeterministicStatement, ProgrammingError


class Kind(enum.Enum):
    READ = "read"
    WRITE = "write"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the judges concluded about one statement text. Immutable, so it is cacheable."""

    kind: Kind
    reason: str = ""
    fragment: str = ""
    needs_time: bool = False
    needs_random: bool = False
    is_ddl: bool = False
    is_transaction_control: bool = False
    is_deferred: bool = False
    is_malformed: bool = False  # Not valid SQL at all: a plain ProgrammingError.

    def __post_init__(self) -> None:
        if self.kind is Kind.REJECTED:
            assert self.reason, "a rejection must say why"
        if self.is_transaction_control:
            assert self.kind is Kind.REJECTED

    @property
    def is_write_safe(self) -> bool:
        """True if the statement may run inside a replicated write request."""
        if self.kind is Kind.REJECTED:
            return False
        return self.kind is Kind.WRITE or not self.reason

    def raise_unless_write_safe(self) -> None:
        """Raise ProgrammingError (NondeterministicStatement unless the text is simply
        malformed) if not `is_write_safe`."""
        if self.is_write_safe:
            return
        if self.is_malformed:
            raise ProgrammingError(self.reason)
        raise NondeterministicStatement(self.reason, self.fragment)


def reject(reason: str, fragment: str = "", **flags: bool) -> Verdict:
    return Verdict(Kind.REJECTED, reason, fragment[:FRAGMENT_CHARS_MAX], **flags)


FRAGMENT_CHARS_MAX = 120  # Error messages quote at most this much of the statement.


def leading_words(sql: str, count: int) -> list[str]:
    """The first `count` bare words of `sql`, upper-cased, skipping comments and blanks.

    Stops early at anything that is not a word (a quote, a parenthesis, a dot), so the
    result is safe to dispatch on: it never looks inside a string literal.
    """
    words: list[str] = []
    position = 0
    length = len(sql)
    while len(words) < count and position < length:
        char = sql[position]
        if char.isspace():
            position += 1
        elif sql.startswith("--", position):
            newline = sql.find("\n", position)
            position = length if newline < 0 else newline + 1
        elif sql.startswith("/*", position):
            close = sql.find("*/", position + 2)
            position = length if close < 0 else close + 2
        elif char.isalpha() or char == "_":
            end = position
            while end < length and (sql[end].isalnum() or sql[end] == "_"):
                end += 1
            words.append(sql[position:end].upper())
            position = end
        else:
            break
    return words
