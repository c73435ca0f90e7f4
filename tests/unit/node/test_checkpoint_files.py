"""Checkpoint files: consistent copies under write load, atomic commit, validation."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from paxdb.node.checkpoints import (
    CheckpointFormatError,
    CheckpointStore,
    file_sha256,
    meta_from_json,
    read_database_meta,
    snapshot_copy,
)
from paxdb.paxos.effects import CheckpointMeta
from paxdb.sql.requests import Request, Statement, encode_request
from paxdb.sql.statemachine import StateMachine


def _insert(machine: StateMachine, instance: int, rows: int) -> None:
    statements = tuple(
        Statement("INSERT INTO t(v) VALUES (?)", (f"{instance}-{i}-" + "x" * 200,))
        for i in range(rows)
    )
    machine.apply_batch(
        instance, instance + 1, [encode_request(Request("c", instance + 1, statements))], 0, 0
    )


def _database(tmp_path: Path, instances: int) -> StateMachine:
    machine = StateMachine(str(tmp_path / "db.sqlite"))
    create = Statement("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)", ())
    machine.apply_batch(0, 1, [encode_request(Request("c", 1, (create,)))], 0, 0)
    for instance in range(1, instances):
        _insert(machine, instance, 50)
    return machine


def test_a_snapshot_copy_finishes_under_writes_and_names_the_instance_it_holds(
    tmp_path: Path,
) -> None:
    machine = _database(tmp_path, 200)  # ~2 MB: many backup steps.
    stop = threading.Event()
    applied: list[int] = []

    def writer() -> None:
        instance = machine.applied_instance + 1
        while not stop.is_set():
            _insert(machine, instance, 5)
            applied.append(instance)
            instance += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        instance, chain = snapshot_copy(tmp_path / "db.sqlite", tmp_path / "copy.sqlite")
    finally:
        stop.set()
        thread.join()
    machine.close()
    assert applied, "the writer ran during the copy"
    assert 199 <= instance <= applied[-1]
    assert chain == instance + 1  # _insert uses instance + 1 as the chain.
    assert read_database_meta(tmp_path / "copy.sqlite") == (instance, chain)
    copy = StateMachine(str(tmp_path / "copy.sqlite"))
    count = copy.query("SELECT count(*) FROM t").rows[0][0]
    copy.close()
    assert count == 50 * 199 + 5 * (instance - 199)  # Exactly the rows up to `instance`.


def _meta(instance_next: int) -> CheckpointMeta:
    return CheckpointMeta(instance_next, 7, (1, 2, 3), 0, 2, instance_next - 3)


def test_commit_list_prune_and_orphans(tmp_path: Path) -> None:
    machine = _database(tmp_path, 5)
    machine.close()
    store = CheckpointStore(tmp_path / "checkpoints")
    assert store.open() == []
    for instance_next in (10, 20, 30):
        scratch = store.scratch_path()
        snapshot_copy(tmp_path / "db.sqlite", scratch)
        checkpoint = store.commit(scratch, _meta(instance_next))
        assert checkpoint.sha256 == file_sha256(checkpoint.path)
    assert [c.meta.instance_next for c in store.list()] == [10, 20, 30]
    store.prune(2)
    assert [c.meta.instance_next for c in store.list()] == [20, 30]
    # A crash mid-commit leaves files without metadata: open() removes them.
    (store.directory / "00000000000000000040.sqlite").write_bytes(b"half")
    store.scratch_path().write_bytes(b"half")
    found = store.open()
    assert [c.name for c in found] == ["00000000000000000020", "00000000000000000030"]
    assert sorted(p.name for p in store.directory.iterdir() if p.is_file()) == [
        "00000000000000000020.json",
        "00000000000000000020.sqlite",
        "00000000000000000030.json",
        "00000000000000000030.sqlite",
    ]
    # A checkpoint whose file is truncated is not offered.
    newest = store.newest()
    assert newest is not None
    with open(newest.path, "r+b") as handle:
        handle.truncate(100)
    assert store.newest() is not None and store.newest().name == "00000000000000000020"  # type: ignore[union-attr]


GOOD: dict[str, Any] = {
    "format_version": 1,
    "instance_next": 10,
    "chain": 5,
    "members": [1, 2, 3],
    "members_version": -1,
    "master": 1,
    "master_version": 4,
    "size": 4096,
    "sha256": "ab" * 32,
}


def test_good_metadata_round_trips() -> None:
    meta, size, digest = meta_from_json(json.loads(json.dumps(GOOD)))
    assert meta == CheckpointMeta(10, 5, (1, 2, 3), -1, 1, 4)
    assert (size, digest) == (4096, "ab" * 32)


@pytest.mark.parametrize(
    "change",
    [
        {"format_version": 2},
        {"instance_next": 0},
        {"instance_next": "10"},
        {"chain": 2**32},
        {"members": []},
        {"members": [2, 1]},
        {"members": [1, 1]},
        {"members_version": 10},
        {"master": -1},
        {"master_version": 11},
        {"size": 0},
        {"sha256": "xyz"},
        {"instance_next": True},
    ],
)
def test_bad_metadata_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(CheckpointFormatError):
        meta_from_json({**GOOD, **change})


def test_metadata_missing_a_field_is_refused() -> None:
    raw = dict(GOOD)
    del raw["chain"]
    with pytest.raises(CheckpointFormatError, match="lacks"):
        meta_from_json(raw)
