"""Group.apply: replays the database skipped are fine; a chain mismatch at its latest
instance halts."""

from __future__ import annotations

from pathlib import Path

import pytest

from paxdb.errors import CorruptionError
from paxdb.node.group import Group
from paxdb.paxos.chain import CHAIN_START, chain_next
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.replica import ReplicaConfig
from paxdb.paxos.values import NOOP_VALUE
from paxdb.storage.memory import MemoryLogStore


def entries(count: int) -> list[LogEntry]:
    chain, result = CHAIN_START, []
    for instance in range(count):
        chain = chain_next(chain, NOOP_VALUE)
        result.append(LogEntry(instance, NOOP_VALUE, chain))
    return result


def test_a_replay_behind_the_database_is_not_a_chain_mismatch(tmp_path: Path) -> None:
    group = Group.open(ReplicaConfig(1, "main", (1,)), MemoryLogStore(), tmp_path / "main")
    log = entries(3)
    group.apply(tuple(log))
    group.apply((log[0], log[1]))  # Re-learned after the log lost its tail: skipped.
    assert group.applied_instance == 2
    wrong = LogEntry(2, NOOP_VALUE, log[2].chain ^ 1)
    with pytest.raises(CorruptionError, match="chain"):
        group.apply((wrong,))
    group.close()
