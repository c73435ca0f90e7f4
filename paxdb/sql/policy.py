"""The allow-lists shared by the proposer's check and the apply connection's authorizer.

Theory of operation: a replicated write must do exactly the same thing on every replica.
`determinism.py` checks statements on the proposing node (sqlglot, or SQLite's own
authorizer on a scratch connection), and `authorizer.py` enforces the same lists on the
apply connection. Both read *this* module, so the pair "validated on propose, enforced on
apply" cannot drift apart: a name is allowed in both or in neither.

Lists, not deny-lists: anything SQLite or an extension adds in a later version is refused
until someone reads its documentation and adds it here.

Notes on what is allowed and why:
- Stamped functions (`random`, `randomblob`, the date/time functions, `CURRENT_*`) are
  allowed in writes because the apply connection answers them from the time and seed
  stamped into the chosen value (see `stamping.py`), so every replica computes the same.
- Date/time modifiers `'localtime'` and `'utc'` read the node's time zone, which differs
  between machines; a literal one is refused in writes. A modifier that arrives as a bound
  parameter cannot be seen before apply: run nodes with TZ=UTC (documented gap).
- Math functions call the C library; replicas must run the same SQLite build on the same
  platform (checked when a node joins), which also fixes query plans, so results such as
  `group_concat` order or rowids assigned by `INSERT ... SELECT` agree.
"""

from __future__ import annotations

# Deterministic SQLite built-ins (core, aggregate, window, math, JSON), by their SQLite name.
# `cast` is not a function to SQLite, but sqlglot models CAST as one.
DETERMINISTIC_FUNCTIONS: frozenset[str] = frozenset(
    [
        "abs",
        "cast",
        "char",
        "coalesce",
        "concat",
        "concat_ws",
        "format",
        "glob",
        "hex",
        "if",
        "ifnull",
        "iif",
        "instr",
        "length",
        "like",
        "likelihood",
        "likely",
        "lower",
        "ltrim",
        "max",
        "min",
        "nullif",
        "octet_length",
        "printf",
        "quote",
        "replace",
        "round",
        "rtrim",
        "sign",
        "soundex",
        "substr",
        "substring",
        "trim",
        "typeof",
        "unhex",
        "unicode",
        "unistr",
        "unistr_quote",
        "unlikely",
        "upper",
        "zeroblob",
        "avg",
        "count",
        "group_concat",
        "string_agg",
        "sum",
        "total",
        "median",
        "percentile",
        "percentile_cont",
        "percentile_disc",
        "row_number",
        "rank",
        "dense_rank",
        "percent_rank",
        "cume_dist",
        "ntile",
        "lag",
        "lead",
        "first_value",
        "last_value",
        "nth_value",
        "acos",
        "acosh",
        "asin",
        "asinh",
        "atan",
        "atan2",
        "atanh",
        "ceil",
        "ceiling",
        "cos",
        "cosh",
        "degrees",
        "exp",
        "floor",
        "ln",
        "log",
        "log10",
        "log2",
        "mod",
        "pi",
        "pow",
        "power",
        "radians",
        "sin",
        "sinh",
        "sqrt",
        "tan",
        "tanh",
        "trunc",
        "json",
        "jsonb",
        "json_array",
        "jsonb_array",
        "json_array_length",
        "json_error_position",
        "json_extract",
        "jsonb_extract",
        "json_insert",
        "jsonb_insert",
        "json_object",
        "jsonb_object",
        "json_patch",
        "jsonb_patch",
        "json_pretty",
        "json_remove",
        "jsonb_remove",
        "json_replace",
        "jsonb_replace",
        "json_set",
        "jsonb_set",
        "json_type",
        "json_valid",
        "json_quote",
        "json_group_array",
        "jsonb_group_array",
        "json_group_object",
        "jsonb_group_object",
        "json_each",
        "json_tree",
        "jsonb_each",
        "jsonb_tree",
        "->",
        "->>",
    ]
)

# Read the clock; answered from the stamped time on the apply connection.
TIME_FUNCTIONS: frozenset[str] = frozenset(
    [
        "date",
        "time",
        "datetime",
        "julianday",
        "unixepoch",
        "strftime",
        "timediff",
        "current_timestamp",
        "current_date",
        "current_time",
    ]
)

# Read the PRNG; answered from the stamped seed on the apply connection.
RANDOM_FUNCTIONS: frozenset[str] = frozenset({"random", "randomblob"})

# SQLite's own helpers that ALTER TABLE runs through nested statements. Users cannot call
# them (they are SQLITE_FUNC_INTERNAL), but the authorizer sees them during ALTER TABLE.
INTERNAL_FUNCTIONS: frozenset[str] = frozenset(
    [
        "sqlite_rename_column",
        "sqlite_rename_table",
        "sqlite_rename_test",
        "sqlite_rename_quotefix",
        "sqlite_drop_column",
    ]
)

# Why each well-known nondeterministic function is refused; the message names it.
FORBIDDEN_FUNCTIONS: dict[str, str] = {
    "changes": "reads this connection's history, which differs after a restart",
    "total_changes": "reads this connection's history, which differs after a restart",
    "last_insert_rowid": "reads this connection's history, which differs after a restart",
    "sqlite_version": "differs between SQLite builds",
    "sqlite_source_id": "differs between SQLite builds",
    "sqlite_compileoption_get": "differs between SQLite builds",
    "sqlite_compileoption_used": "differs between SQLite builds",
    "sqlite_offset": "depends on the file's page layout, which differs after VACUUM or restore",
    "load_extension": "loads code from this node's disk",
    "fts3_tokenizer": "reads a pointer from this process",
}

# Modifiers of the date/time functions that read the node's time zone.
LOCAL_TIME_MODIFIERS: frozenset[str] = frozenset({"localtime", "utc"})

# PRAGMAs a read may run: they only report the schema or the database's own header.
READ_PRAGMAS: frozenset[str] = frozenset(
    [
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "user_version",
        "application_id",
        "schema_version",
        "collation_list",
        "function_list",
        "module_list",
        "pragma_list",
        "compile_options",
        "data_version",
        "page_count",
        "page_size",
        "freelist_count",
        "encoding",
        "foreign_keys",
    ]
)

# PRAGMAs a write may run, and only with a value: they set a field of the database header,
# inside the transaction, identically everywhere.
WRITE_PRAGMAS: frozenset[str] = frozenset({"user_version", "application_id"})

# Table-valued pragma functions usable inside a write: node-independent schema facts.
SCHEMA_PRAGMAS: frozenset[str] = frozenset(
    ["table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"]
)

# Read PRAGMAs whose value is an argument (a table name), not a new setting.
ARGUMENT_PRAGMAS: frozenset[str] = SCHEMA_PRAGMAS | frozenset(
    ["foreign_key_check", "integrity_check", "quick_check", "table_list"]
)

# Virtual table modules whose contents are a deterministic function of the inserted rows.
VTABLE_MODULES: frozenset[str] = frozenset({"fts5", "rtree", "rtree_i32"})


def function_reason(name: str, *, internal_ok: bool = False) -> str:
    """Why calling `name` in a replicated write is refused, or "" when it is allowed."""
    name = name.lower()
    if name in DETERMINISTIC_FUNCTIONS or name in TIME_FUNCTIONS or name in RANDOM_FUNCTIONS:
        return ""
    if internal_ok and name in INTERNAL_FUNCTIONS:
        return ""
    if name.startswith("pragma_") and name[len("pragma_") :] in SCHEMA_PRAGMAS:
        return ""
    why = FORBIDDEN_FUNCTIONS.get(name)
    if why is not None:
        return f"{name}() {why}, so replicas could store different values"
    return (
        f"{name}() is not a known deterministic SQLite function; replicas could compute "
        "different values (user functions are not replicated)"
    )


def pragma_reason(name: str, has_value: bool, *, is_write: bool) -> str:
    """Why a PRAGMA is refused, or "" when allowed in this context (read or write)."""
    name = name.lower()
    if name in SCHEMA_PRAGMAS:
        return ""  # Schema facts, identical on every replica (also `FROM pragma_table_info(t)`).
    if is_write and has_value and name in WRITE_PRAGMAS:
        return ""
    if not is_write and name in READ_PRAGMAS and (not has_value or name in ARGUMENT_PRAGMAS):
        return ""
    if name == "foreign_keys":
        return (
            "PRAGMA foreign_keys is a per-connection setting (and a no-op inside a "
            "transaction); paxdb enforces foreign keys on every replica"
        )
    if is_write and name in READ_PRAGMAS:
        return f"PRAGMA {name} only reports; run it as a read"
    if name in READ_PRAGMAS:
        return f"PRAGMA {name} = ... changes a setting; reads may only report it"
    return (
        f"PRAGMA {name} is a per-node setting or touches files outside the database, "
        "so it is not replicated; the node operator manages it"
    )


# Eponymous virtual tables that report the file's layout or this connection's state.
NODE_TABLES: frozenset[str] = frozenset({"dbstat", "sqlite_dbpage", "sqlite_stmt"})


def table_reason(name: str) -> str:
    """Why reading table `name` inside a write is refused, or "" when allowed."""
    name = name.lower()
    if name in NODE_TABLES:
        return f"{name} reports this node's file or connection, which differs between replicas"
    if name.startswith("pragma_") and name[len("pragma_") :] not in SCHEMA_PRAGMAS:
        return f"{name} reports a per-node setting, which may differ between replicas"
    return ""


def vtable_reason(module: str) -> str:
    """Why CREATE VIRTUAL TABLE ... USING `module` is refused, or "" when allowed."""
    if module.lower() in VTABLE_MODULES:
        return ""
    return f"virtual table module {module!r} is not known to be deterministic"


TEMP_REASON = (
    "TEMP objects belong to one connection: a replica that restarts loses them while the "
    "others keep them, so they would diverge; use a regular table"
)
ATTACH_REASON = "ATTACH/DETACH reach files outside the replicated database"
VACUUM_REASON = (
    "VACUUM is node maintenance (and VACUUM INTO writes a file outside the database); "
    "the node runs it itself, it is not replicated"
)
TRANSACTION_REASON = (
    "transaction control is done by the driver: send the statements of a transaction as one request"
)
LIMIT_REASON = (
    "LIMIT without ORDER BY picks rows in query-plan order, which may differ between "
    "replicas; add an ORDER BY on a unique key"
)
MULTIPLE_REASON = "one statement per execute(); send several statements as one request"
