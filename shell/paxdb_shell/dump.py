"""`.dump`: the database as SQL text that `.read` loads back into an empty database.

Layout: a comment line, then for each table its CREATE statement followed by one
INSERT per row, then indexes, triggers and views in creation order (so each comes
after what it depends on). SQLite's and paxdb's internal tables (`sqlite_*`,
`_paxdb_*`) and everything defined on them are skipped.

There is no BEGIN/COMMIT around the dump: through paxdb, a transaction is sent as one
atomic request at COMMIT, and a whole database in one request could exceed the frame
limit. Each statement of a dump is therefore its own replicated write.
"""

from __future__ import annotations

from collections.abc import Iterator

from .session import SchemaEntry, Session, is_internal
from .sqltext import quote_identifier, sql_literal

__all__ = ["dump_lines"]

DUMP_HEADER = "-- paxdb dump of database {database}"


def _insert_prefix(session: Session, table: str) -> tuple[str, list[str]]:
    """The `INSERT INTO t[(cols)] VALUES` prefix and the columns to select.

    Generated columns cannot be inserted, so when a table has any the INSERT names the
    stored columns explicitly; otherwise the shorter `INSERT INTO t VALUES` form is used.
    """
    columns = session.column_names(table)
    every = session.query("SELECT count(*) FROM pragma_table_xinfo(?)", (table,))[0][0]
    prefix = f"INSERT INTO {quote_identifier(table)}"
    if every != len(columns):
        prefix += "(" + ",".join(quote_identifier(c) for c in columns) + ")"
    return prefix + " VALUES(", columns


def _table_lines(session: Session, entry: SchemaEntry) -> Iterator[str]:
    assert entry.sql is not None
    yield entry.sql + ";"
    if entry.sql.upper().startswith("CREATE VIRTUAL TABLE"):
        return  # Its rows live in shadow tables, which are dumped as ordinary tables.
    prefix, columns = _insert_prefix(session, entry.name)
    for row in session.stream(session.select_all_sql(entry.name, columns)):
        yield prefix + ",".join(sql_literal(value) for value in row) + ");"


def dump_lines(session: Session, pattern: str | None = None) -> Iterator[str]:
    """Yield the dump of every user table, or of the tables LIKE `pattern`, line by line.

    Invariant: `.read` of these lines into an empty database gives the same schema and
    the same rows (values and types) for every dumped table.
    """
    entries = [
        entry
        for entry in session.schema_entries(pattern)
        if entry.sql is not None and not is_internal(entry.name) and not is_internal(entry.table)
    ]
    yield DUMP_HEADER.format(database=session.database)
    for entry in entries:
        if entry.type == "table":
            yield from _table_lines(session, entry)
    for entry in entries:
        if entry.type != "table" and entry.sql is not None:
            yield entry.sql + ";"
