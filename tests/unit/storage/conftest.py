"""Fixtures for the storage tests: a factory that opens stores of each implementation."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from paxdb.storage.base import LogStore
from paxdb.storage.file_log import FileLogStore
from paxdb.storage.memory import MemoryLogStore

SMALL_SEGMENT_BYTES = 1024  # Small enough that the conformance suite rolls segments.


@pytest.fixture(params=["memory", "file", "file-small-segments"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStore]:
    """A fresh store of each implementation, closed after the test."""
    made: LogStore
    if request.param == "memory":
        made = MemoryLogStore()
    elif request.param == "file":
        made = FileLogStore(tmp_path / "log")
    else:
        made = FileLogStore(tmp_path / "log", segment_bytes_max=SMALL_SEGMENT_BYTES)
    yield made
    made.close()


@pytest.fixture
def open_file_log(tmp_path: Path) -> Iterator[Callable[..., FileLogStore]]:
    """Opens FileLogStores on tmp_path/log (kwargs pass through); closes them all."""
    opened: list[FileLogStore] = []

    def open_store(**options: int) -> FileLogStore:
        opened.append(FileLogStore(tmp_path / "log", **options))
        return opened[-1]

    yield open_store
    for store in opened:
        store.close()
