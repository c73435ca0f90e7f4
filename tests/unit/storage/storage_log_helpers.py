"""Builders shared by the storage tests: values, chained entries, records, disk usage."""

from __future__ import annotations

import os
import random
from pathlib import Path

from paxdb.ids import Ballot
from paxdb.paxos.chain import CHAIN_START, chain_next
from paxdb.paxos.effects import AcceptorRecord, ChosenRecord, Record
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.values import Value, ValueKind
from paxdb.storage.base import LogStore


def make_value(seed: int, size: int = 16) -> Value:
    """A deterministic SQL_BATCH value of `size` payload bytes."""
    return Value(ValueKind.SQL_BATCH, random.Random(seed).randbytes(size))


def make_entries(
    start: int, count: int, chain_before: int = CHAIN_START, seed: int = 0, size: int = 16
) -> list[LogEntry]:
    """`count` consecutive entries from `start` with a correct chain."""
    entries: list[LogEntry] = []
    chain = chain_before
    for instance in range(start, start + count):
        value = make_value(seed * 1_000_003 + instance, size)
        chain = chain_next(chain, value)
        entries.append(LogEntry(instance, value, chain))
    return entries


def chosen(group: str, entries: list[LogEntry]) -> list[tuple[str, Record]]:
    return [(group, ChosenRecord(entry)) for entry in entries]


def make_acceptor(
    instance: int, number: int = 1, node_id: int = 1, value: Value | None = None
) -> AcceptorRecord:
    ballot = Ballot(number, node_id)
    return AcceptorRecord(ballot, instance, ballot if value is not None else None, value)


def all_entries(store: LogStore, group: str) -> list[LogEntry]:
    """Every stored entry of `group`, read in pages of the smallest size."""
    bounds = store.chosen_bounds(group)
    entries: list[LogEntry] = []
    instance = bounds.instance_min
    while instance < bounds.instance_next:
        page = store.chosen_range(group, instance, bounds.instance_next, 0)
        assert page, f"no entry at stored instance {instance}"
        entries.extend(page)
        instance += len(page)
    return entries


def snapshot(store: LogStore, groups: list[str]) -> dict[str, object]:
    """Everything a reader can observe about `groups`, for comparing two stores."""
    return {
        group: (
            store.load_acceptor(group),
            store.chosen_bounds(group),
            all_entries(store, group),
        )
        for group in groups
    }


def disk_bytes(directory: Path) -> int:
    return sum(os.path.getsize(directory / name) for name in os.listdir(directory))


def segment_files(directory: Path) -> list[Path]:
    return sorted(path for path in directory.iterdir() if path.suffix == ".log")
