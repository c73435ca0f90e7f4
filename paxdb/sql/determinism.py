"""Is this SQL statement a read, a deterministic write, or refused? (proposer side)

Theory of operation. `classify(sql)` is a pure function of the statement text, cached
by text, run on the proposing node before `propose` so the Paxos log only holds SQL that
every replica will execute identically. Parameters never matter: they are bound by
SQLite at apply and cannot add function calls.

1. Leading keywords dispatch what sqlglot misreads or cannot see: transaction control
   (BEGIN/COMMIT/END/ROLLBACK/SAVEPOINT/RELEASE: the driver's job), VACUUM, ATTACH,
   DETACH, PRAGMA (allow-lists in `policy.py`), CREATE TEMP, triggers, ALTER TABLE.
2. Everything else is parsed by sqlglot (dialect sqlite) on an *analysis copy* of the
   text: numbered parameters `?1` become `?`, `REPLACE INTO` becomes `INSERT OR
   REPLACE INTO`, trailing `WITHOUT ROWID`/`STRICT` are dropped. The copy is only read,
   never replicated: the log carries the client's own text, because sqlglot's output
   loses `STRICT`, `SAVEPOINT` and more.
3. Every function call in the tree is checked against the allow-list; a LIMIT without
   ORDER BY in a write (or its subqueries) is refused, since it picks rows in plan order.
4. Text sqlglot cannot parse (or parses into an opaque `Command`) is judged by SQLite
   itself on a scratch connection (`judge.py`). Without the user's schema that may end
   in a *deferred* verdict; the apply connection's authorizer is the enforcement then.

Stamped, not refused: `random()`, `randomblob()`, `'now'`, `CURRENT_TIMESTAMP` and a
column `DEFAULT CURRENT_TIMESTAMP` are allowed in writes because the apply connection
reads the time and seed stamped into the chosen value (`stamping.py`);
`needs_time`/`needs_random` tell the master a stamp matters (it always stamps anyway).

Measured on the development machine (Python 3.11, sqlglot 30.3, SQLite 3.54; the
numbers are printed by `tests/unit/sql/test_sql_determinism.py::
test_cache_hit_returns_the_same_verdict` with `-s`): a cold `classify` of a two-parameter
INSERT costs about 0.45 ms, a SELECT with a WHERE, a function and an ORDER BY about
1-2 ms (sqlglot's parse is two thirds of it, the walk the rest); a cache hit costs
0.2-0.4 us (one `lru_cache` dictionary lookup), i.e. essentially nothing next to an
fsync. The very first call in a process pays ~20 ms of sqlglot warm-up.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType  # type: ignore[attr-defined]

from paxdb.sql import policy
from paxdb.sql.authorizer import RESERVED_TABLE_PREFIX
from paxdb.sql.judge import judge_sql, scratch_connection
from paxdb.sql.verdict import FRAGMENT_CHARS_MAX, Kind, Verdict, leading_words, reject

CLASSIFY_CACHE_ENTRIES_MAX = 4096  # Distinct statement texts whose verdicts are kept.

_TRANSACTION_WORDS = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"})
_CALL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TABLE_OPTIONS = re.compile(r"\)(\s*(WITHOUT\s+ROWID|STRICT)\s*,?)+\s*;?\s*$", re.I)
_LEADING_REPLACE = re.compile(r"^((?:\s|--[^\n]*(?:\n|$)|/\*.*?\*/)*)REPLACE\b", re.I | re.S)
_PRAGMA = re.compile(r"\s*PRAGMA\s+(?:\w+\s*\.\s*)?(\w+)\s*([=(])?", re.I)
_ALTER_ADD = re.compile(r"^.*?\bADD\s+(?:COLUMN\s+)?(.*?)\s*;?\s*$", re.I | re.S)
_READ_TYPES = (exp.Query, exp.Values)
_WRITE_TYPES = (exp.Insert, exp.Update, exp.Delete, exp.Create, exp.Drop, exp.Analyze)


@functools.lru_cache(maxsize=CLASSIFY_CACHE_ENTRIES_MAX)
def classify(sql: str) -> Verdict:
    """The verdict for one statement text. Pure and cached: same text, same object."""
    assert isinstance(sql, str)
    words = leading_words(sql, 3)
    first = words[0] if words else ""
    if first in _TRANSACTION_WORDS:
        return reject(policy.TRANSACTION_REASON, sql, is_transaction_control=True)
    if first == "VACUUM":
        return reject(policy.VACUUM_REASON, sql)
    if first in ("ATTACH", "DETACH"):
        return reject(policy.ATTACH_REASON, sql)
    if first == "PRAGMA":
        return _classify_pragma(sql)
    if first == "EXPLAIN":
        return Verdict(Kind.READ, "EXPLAIN only describes a statement; run it as a read", sql)
    if first in ("REINDEX", "ANALYZE"):
        return Verdict(Kind.WRITE)  # Deterministic given the same data and SQLite build.
    if first == "CREATE" and words[1:2] in (["TEMP"], ["TEMPORARY"]):
        return reject(policy.TEMP_REASON, sql)
    if first == "CREATE" and words[1:2] == ["VIRTUAL"]:
        return judge_sql(scratch_connection(), sql)  # Needs no schema; SQLite knows modules.
    if first == "CREATE" and words[1:2] == ["TRIGGER"]:
        return _classify_trigger(sql)
    if first == "ALTER":
        return _classify_alter(sql)
    return _classify_parsed(sql)


def check_write(sql: str) -> Verdict:
    """The verdict for `sql` inside a write request; raises NondeterministicStatement if unfit."""
    verdict = classify(sql)
    verdict.raise_unless_write_safe()
    return verdict


def _classify_pragma(sql: str) -> Verdict:
    match = _PRAGMA.match(sql)
    if match is None:
        return reject("malformed PRAGMA", sql)
    name, operator = match.group(1).lower(), match.group(2)
    if operator == "=" and not policy.pragma_reason(name, True, is_write=True):
        return Verdict(Kind.WRITE)
    reason = policy.pragma_reason(name, operator is not None, is_write=False)
    if reason:
        return reject(reason, sql)
    return Verdict(Kind.READ, policy.pragma_reason(name, False, is_write=True), sql)


def _classify_alter(sql: str) -> Verdict:
    """ALTER TABLE: only ADD COLUMN carries expressions (DEFAULT, CHECK, GENERATED)."""
    words = leading_words(sql, 3)
    if len(words) == 3 and words[2].lower().startswith(RESERVED_TABLE_PREFIX):
        return reject(f"table {words[2].lower()} belongs to paxdb and may only be read", sql)
    match = _ALTER_ADD.match(sql)
    if match is None:
        return Verdict(Kind.WRITE, is_ddl=True)  # RENAME or DROP COLUMN: no expressions.
    probe = _classify_parsed(f"CREATE TABLE probe({match.group(1)})")
    if probe.kind is Kind.REJECTED:
        return reject(probe.reason, probe.fragment)
    return Verdict(
        Kind.WRITE,
        needs_time=probe.needs_time,
        needs_random=probe.needs_random,
        is_ddl=True,
        is_deferred=probe.is_deferred,
    )


def _classify_trigger(sql: str) -> Verdict:
    """CREATE TRIGGER: check the WHEN clause and each body statement like a write.

    sqlglot does not parse triggers, but it tokenizes them, which is enough to find the
    body without being fooled by keywords inside string literals.
    """
    try:
        tokens = sqlglot.tokenize(sql, read="sqlite")
    except SqlglotError:
        return judge_sql(scratch_connection(), sql)
    begins = [t for t in tokens if t.token_type is TokenType.BEGIN]
    ends = [t for t in tokens if t.token_type is TokenType.END]
    if not begins or not ends:
        return judge_sql(scratch_connection(), sql)
    begin, end = begins[0], ends[-1]
    parts = [t for t in tokens if begin.start < t.start < end.start]
    whens = [t for t in tokens if t.token_type is TokenType.WHEN and t.start < begin.start]
    texts = [f"SELECT {sql[whens[0].end + 1 : begin.start]}"] if whens else []
    start = begin.end + 1
    for token in parts:
        if token.token_type is TokenType.SEMICOLON:
            texts.append(sql[start : token.start])
            start = token.end + 1
    verdicts = [classify(text) for text in texts]
    for verdict in verdicts:
        if not verdict.is_write_safe:
            return reject(f"trigger body: {verdict.reason}", verdict.fragment)
    return Verdict(
        Kind.WRITE,
        needs_time=any(v.needs_time for v in verdicts),
        needs_random=any(v.needs_random for v in verdicts),
        is_ddl=True,
        is_deferred=any(v.is_deferred for v in verdicts),
    )


def _analysis_text(sql: str) -> str:
    """A copy of `sql` that sqlglot reads correctly; never executed or replicated."""
    text = _LEADING_REPLACE.sub(r"\1INSERT OR REPLACE", sql, count=1)
    if "?" in text:
        tokens = sqlglot.tokenize(text, read="sqlite")
        cuts = [
            (number.start, number.end + 1)
            for mark, number in zip(tokens, tokens[1:], strict=False)
            if mark.token_type is TokenType.PLACEHOLDER
            and number.token_type is TokenType.NUMBER
            and number.start == mark.end + 1
        ]
        for start, end in reversed(cuts):
            text = text[:start] + text[end:]
    return _TABLE_OPTIONS.sub(")", text)


def _classify_parsed(sql: str) -> Verdict:
    try:
        trees = [tree for tree in sqlglot.parse(_analysis_text(sql), read="sqlite") if tree]
    except SqlglotError:
        return judge_sql(scratch_connection(), sql)
    if len(trees) != 1:
        if not trees:
            return reject("the text holds no SQL statement", sql, is_malformed=True)
        return reject(policy.MULTIPLE_REASON, sql)
    tree = trees[0]
    if isinstance(tree, _READ_TYPES):
        scan = _scan(tree)
        return Verdict(Kind.READ, scan.reason, scan.fragment, scan.needs_time, scan.needs_random)
    if not isinstance(tree, _WRITE_TYPES):
        return judge_sql(scratch_connection(), sql)  # exp.Command and other opaque shapes.
    scan = _scan(tree)
    reason = scan.reason or _reserved_target_reason(tree)
    is_ddl = isinstance(tree, (exp.Create, exp.Drop))
    if reason:
        return reject(
            reason,
            scan.fragment or sql,
            needs_time=scan.needs_time,
            needs_random=scan.needs_random,
            is_ddl=is_ddl,
        )
    return Verdict(Kind.WRITE, "", "", scan.needs_time, scan.needs_random, is_ddl)


def _reserved_target_reason(tree: exp.Expression) -> str:
    target = tree.this if isinstance(tree.this, exp.Expression) else None
    table = target if isinstance(target, exp.Table) else tree.find(exp.Table)
    if table is not None and table.name.lower().startswith(RESERVED_TABLE_PREFIX):
        return f"table {table.name} belongs to paxdb and may only be read"
    return ""


class _Scan:
    """What walking one tree found: the first refusal, and which stamps it reads."""

    __slots__ = ("reason", "fragment", "needs_time", "needs_random")

    def __init__(self) -> None:
        self.reason = ""
        self.fragment = ""
        self.needs_time = False
        self.needs_random = False

    def refuse(self, reason: str, node: Any) -> None:
        if not self.reason:
            self.reason = reason
            self.fragment = node.sql(dialect="sqlite")[:FRAGMENT_CHARS_MAX]


def _scan(tree: Any) -> _Scan:
    """Walk every node once; check function calls and plan-dependent LIMITs."""
    scan = _Scan()
    for node in tree.walk():
        if isinstance(node, exp.Func):
            _scan_function(node, scan)
        elif isinstance(node, (exp.Select, exp.Update, exp.Delete)) and _has_unordered_limit(node):
            scan.refuse(policy.LIMIT_REASON, node)
        elif isinstance(node, exp.Table) and isinstance(node.this, exp.Identifier):
            reason = policy.table_reason(node.name)
            if reason:
                scan.refuse(reason, node)
    return scan


def _scan_function(node: exp.Func, scan: _Scan) -> None:
    name = _function_name(node)
    if name is None:
        return
    if not name:
        scan.refuse(f"unrecognized expression {type(node).__name__}", node)
        return
    reason = policy.function_reason(name)
    if reason:
        scan.refuse(reason, node)
    if name in policy.RANDOM_FUNCTIONS:
        scan.needs_random = True
    if name in policy.TIME_FUNCTIONS:
        scan.needs_time = True
        for literal in node.find_all(exp.Literal):
            if literal.is_string and literal.this.strip().lower() in policy.LOCAL_TIME_MODIFIERS:
                scan.refuse(
                    f"{name}() with {literal.this!r} reads this node's time zone, which "
                    "differs between replicas; store UTC and convert when reading",
                    node,
                )


def _function_name(node: exp.Func) -> str | None:
    """SQLite's name for a sqlglot function node; None for operators, "" if unknown.

    sqlglot normalizes functions into its own classes (IFNULL becomes Coalesce), so the
    name is read back from the node rendered in the SQLite dialect.
    """
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, (exp.Case, exp.Exists)):
        return None  # Syntax that sqlglot models as a function.
    rendered = node.sql(dialect="sqlite")
    match = _CALL.match(rendered)
    if match is not None:
        return match.group(1).lower()
    if isinstance(node, (exp.Binary, exp.TsOrDsToTimestamp)):
        return None  # `->`, `->>`, and sqlglot's wrapper around a 'now' literal.
    if _WORD.fullmatch(rendered):
        return rendered.lower()  # CURRENT_TIMESTAMP and friends.
    return ""


def _has_unordered_limit(node: exp.Expression) -> bool:
    if node.args.get("limit") is None or node.args.get("order") is not None:
        return False
    if isinstance(node, exp.Select) and node.args.get("from_") is None:
        return False  # `SELECT 1 LIMIT 1`: one row, no plan.
    return not isinstance(node.parent, exp.Exists)  # EXISTS does not care which row.
