"""TEST HOOK: a stand-in for the paxdb driver over the stdlib `sqlite3` module.

`SqliteConnection` mimics a paxdb `Connection` (the PEP 249 part plus `consistency`,
`database`, `use()` and `status()`) so the shell can be tested, and demonstrated, without
a cluster. It is reached through URLs starting with `sqlite:` (see `backend.py`). It
replicates nothing: do not use it to run paxdb.

`use(name)` keeps one sqlite3 connection per database name. The first database, named
by the URL's `?database=` (default `main`), lives in the URL's file; any other name is
an in-memory database that lasts as long as the connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .backend import CONSISTENCY_LEVELS

__all__ = ["SqliteConnection"]


class SqliteConnection:
    """sqlite3 with paxdb's connection extensions; see the module docstring."""

    Error = sqlite3.Error
    DatabaseError = sqlite3.DatabaseError
    OperationalError = sqlite3.OperationalError
    ProgrammingError = sqlite3.ProgrammingError

    def backup_to(self, file: str) -> str:
        """The stand-in for `paxdb backup`: sqlite3's own backup API."""
        target = sqlite3.connect(file)
        try:
            self._current.backup(target)
        finally:
            target.close()
        return f"backed up database {self._database} to {file}"

    def __init__(self, path: str = ":memory:", database: str = "main") -> None:
        self._path = path
        self._connections: dict[str, sqlite3.Connection] = {}
        self._database = database
        self._autocommit = True
        self._consistency = "master"
        self.status_override: Mapping[str, Any] | None = None
        self._open(database)

    @classmethod
    def from_url(cls, url: str) -> SqliteConnection:
        """`sqlite:///abs/path.db`, `sqlite://` or `sqlite://:memory:` (+ `?database=N`)."""
        parts = urlsplit(url)
        path = parts.netloc + parts.path
        query = parse_qs(parts.query)
        database = query.get("database", ["main"])[0]
        connection = cls(path or ":memory:", database)
        level = query.get("consistency")
        if level:
            connection.consistency = level[0]
        return connection

    def _open(self, name: str) -> sqlite3.Connection:
        if name not in self._connections:
            path = self._path if not self._connections else ":memory:"
            self._connections[name] = sqlite3.connect(path, isolation_level=None)
        return self._connections[name]

    @property
    def _current(self) -> sqlite3.Connection:
        return self._connections[self._database]

    @property
    def database(self) -> str:
        return self._database

    @property
    def autocommit(self) -> bool:
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self._autocommit = value
        self._current.isolation_level = None if value else "DEFERRED"

    @property
    def in_transaction(self) -> bool:
        return self._current.in_transaction

    @property
    def consistency(self) -> str:
        return self._consistency

    @consistency.setter
    def consistency(self, level: str) -> None:
        if level not in CONSISTENCY_LEVELS:
            raise sqlite3.ProgrammingError(
                f"unknown consistency {level!r}; use one of {', '.join(CONSISTENCY_LEVELS)}"
            )
        self._consistency = level

    def use(self, name: str) -> None:
        """Switch to database `name`, creating an empty one when it is new."""
        if not name:
            raise sqlite3.ProgrammingError("a database name must not be empty")
        self._open(name).isolation_level = None if self._autocommit else "DEFERRED"
        self._database = name

    def status(self) -> Mapping[str, Any]:
        """A status dict shaped like paxdb's: one node, master of every group."""
        if self.status_override is not None:
            return self.status_override
        groups = {
            name: {"chosen": 0, "applied": 0, "chain": 0, "lease_ticks_left": 0}
            for name in sorted(self._connections)
        }
        return {
            "node": 1,
            "master": 1,
            "groups": groups,
            "peers": {1: {"address": "sqlite:" + self._path, "up": True}},
        }

    def cursor(self) -> sqlite3.Cursor:
        return self._current.cursor()

    def commit(self) -> None:
        self._current.commit()

    def rollback(self) -> None:
        self._current.rollback()

    def close(self) -> None:
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
