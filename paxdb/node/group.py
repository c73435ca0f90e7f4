"""One group on a node: its Paxos replica, its SQLite state machine, and who waits on them.

Theory of operation. The runtime carries out a group's `Effects` in the core's order;
this module does the apply and completion steps. A chosen SQL batch holds client
requests, each stamped by the master with a time and a random seed (`stamp_item`), or
an empty item, which is a read barrier for linearizable reads. Results of one apply are
kept only until the completions of the same `Effects` have been resolved.

Invariants:
- The state machine applies every instance once, in order (it skips replays and
  asserts there is no gap); `applied_instance` only grows.
- A waiter is resolved exactly once: with the result at its (instance, index), with a
  refusal (not master, dropped), or with a timeout by whoever awaited it.
- A halted group stays halted: it applies nothing more and answers every request with
  `OperationalError` naming the reason.
"""

from __future__ import annotations

import asyncio
import logging
import os
import struct
import threading
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

from paxdb.errors import CorruptionError, ReplicaHalted
from paxdb.node.checkpoints import (
    Checkpoint,
    CheckpointStore,
    copy_synced,
    fsync_directory,
    read_database_meta,
)
from paxdb.paxos.chain import CHAIN_START
from paxdb.paxos.effects import CheckpointMeta, Completion, Outcome
from paxdb.paxos.membership import MembershipChange
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.replica import Replica, ReplicaConfig
from paxdb.paxos.values import ValueKind, decode_batch
from paxdb.sql.requests import RequestResult
from paxdb.sql.statemachine import StateMachine
from paxdb.storage.base import LogStore

logger = logging.getLogger(__name__)

_STAMP = struct.Struct(">qq")  # time in ms since the epoch, random seed
BARRIER = b""


def stamp_item(request: bytes, time_ms: int, seed: int) -> bytes:
    """A request as it travels in a batch: the master's stamp, then the request."""
    return _STAMP.pack(time_ms, seed) + request


def split_item(item: bytes) -> tuple[int, int, bytes]:
    time_ms, seed = _STAMP.unpack_from(item)
    return time_ms, seed, item[_STAMP.size :]


@dataclass
class WriteOutcome:
    """What a waiter receives: a result, or a refusal with the master to try."""

    result: RequestResult | None
    instance: int
    refused: Outcome | None = None
    master_hint: int | None = None
    reason: str = ""


@dataclass
class Group:
    name: str
    replica: Replica
    machine: StateMachine
    directory: Path
    checkpoints: CheckpointStore
    newest_checkpoint: Checkpoint | None = None
    waiters: dict[Hashable, asyncio.Future[WriteOutcome]] = field(default_factory=dict)
    halted: str | None = None
    _results: dict[int, list[RequestResult | None]] = field(default_factory=dict)
    applied_event: asyncio.Event = field(default_factory=asyncio.Event)
    # Held by whoever uses the read connection off the loop, and by a checkpoint install.
    read_lock: threading.Lock = field(default_factory=threading.Lock)
    applied_bytes: int = 0  # Bytes of values applied since this process started.
    checkpoint_bytes_mark: int = 0  # `applied_bytes` when the newest checkpoint began.
    checkpoints_taken: int = 0  # Since this process started.
    checkpoints_installed: int = 0
    members_changed: bool = False  # The members in force changed; the runtime resets it.
    logged_role: tuple[object, ...] | None = None  # What the runtime last logged.
    logged_members: tuple[object, ...] | None = None

    @staticmethod
    def open(config: ReplicaConfig, store: LogStore, directory: Path) -> Group:
        """Open the database, its checkpoints and the core. A database that is missing or
        behind the newest checkpoint (its unsynced tail lost in a power cut after the
        log was cut short) is first replaced by that checkpoint."""
        directory.mkdir(parents=True, exist_ok=True)
        database = directory / "db.sqlite"
        checkpoints = CheckpointStore(directory / "checkpoints")
        found = checkpoints.open()
        newest = found[-1] if found else None
        if newest is not None and _applied_instance(database) < newest.applied_instance:
            log = logger.warning if database.exists() else logger.info
            log(
                "group %s: the database is %s checkpoint %s; installing it",
                config.group,
                "behind" if database.exists() else "missing: starting from",
                newest.name,
            )
            install_file(newest.path, database)
        machine = StateMachine(str(database))
        base = newest.meta if newest is not None else None
        if base is None and machine.applied_instance == -1 and machine.chain != CHAIN_START:
            # Seeded by `paxdb restore`: the chain starts from the seed's digest, so
            # replicas seeded differently disagree (and halt) at the first value.
            base = CheckpointMeta(0, machine.chain, config.members, -1, None, -1)
        # Every start is a possible rejoin: a data directory that was wiped looks like a
        # new one, so the core fences a replica without an acceptor record until its
        # peers' reports show its forgotten votes cannot matter (paxos/fence.py).
        replica = Replica(
            config,
            store,
            applied_next=machine.applied_instance + 1,
            base=base,
            rejoining=True,
        )
        return Group(config.group, replica, machine, directory, checkpoints, newest)

    @property
    def database_path(self) -> Path:
        return self.directory / "db.sqlite"

    def install(self, checkpoint: Checkpoint, staged: Path) -> bool:
        """Make the staged copy of `checkpoint` this replica's database and move the core
        to it, in this process. Returns False (and discards the copy) if the replica got
        there by itself meanwhile. The old database stays whole until the rename."""
        meta = checkpoint.meta
        if self.halted is not None or meta.instance_next <= self.replica.instance:
            staged.unlink(missing_ok=True)
            return False
        with self.read_lock:
            self.machine.close()
            install_file(staged, self.database_path, move=True)
            self.machine = StateMachine(str(self.database_path))
        if (self.machine.applied_instance, self.machine.chain) != (
            meta.instance_next - 1,
            meta.chain,
        ):
            raise CorruptionError(
                f"group {self.name!r}: the installed checkpoint holds instance "
                f"{self.machine.applied_instance}, chain {self.machine.chain:#010x}, not what "
                f"its metadata says ({meta.instance_next - 1}, {meta.chain:#010x})"
            )
        self.replica.restore(meta)
        self.members_changed = True
        self._results.clear()
        self.applied_event.set()
        self.applied_event = asyncio.Event()
        return True

    @property
    def applied_instance(self) -> int:
        return self.machine.applied_instance

    def fail_waiters(self, error: Exception) -> None:
        for future in self.waiters.values():
            if not future.done():
                future.set_exception(error)
        self.waiters.clear()

    def halt(self, reason: str) -> None:
        if self.halted is None:
            self.halted = reason
            logger.error("group %s halted: %s", self.name, reason)
        self.fail_waiters(ReplicaHalted(reason))

    # Carrying out effects.

    def apply(self, entries: tuple[LogEntry, ...]) -> None:
        for entry in entries:
            self.applied_bytes += len(entry.value.payload)
            if entry.value.kind is ValueKind.SQL_BATCH:
                self._results[entry.instance] = self._apply_batch(entry)
            elif entry.value.kind is ValueKind.MEMBERSHIP:
                self.machine.apply_noop(entry.instance, entry.chain, self._taking_effect(entry))
            else:
                self.machine.apply_noop(entry.instance, entry.chain)
            # The database keeps only its latest chain: compare there. An older instance
            # is a replay the database skipped (it was ahead of the log after a crash).
            if entry.instance == self.applied_instance and self.machine.chain != entry.chain:
                raise CorruptionError(
                    f"group {self.name!r}: the database's chain after instance "
                    f"{entry.instance} is {self.machine.chain:#010x}, the log's is "
                    f"{entry.chain:#010x}; restore this node from a healthy peer"
                )
        if entries:
            self.applied_event.set()
            self.applied_event = asyncio.Event()

    def _taking_effect(self, entry: LogEntry) -> bytes | None:
        """The payload of a MEMBERSHIP value if it takes effect, by the core's own rule
        (well-formed, and based on the version in force: paxos/membership.py)."""
        if entry.instance <= self.machine.applied_instance:
            return None  # A replay the database already holds.
        try:
            change = MembershipChange.from_value(entry.value)
        except ValueError:
            return None
        if change.prev_version != self.machine.members[0]:
            return None
        self.members_changed = True
        return entry.value.payload

    def _apply_batch(self, entry: LogEntry) -> list[RequestResult | None]:
        items = decode_batch(entry.value.payload)
        requests: list[bytes] = []
        positions: list[int] = []
        time_ms = seed = 0
        for index, item in enumerate(items):
            if item == BARRIER:
                continue
            item_time, item_seed, request = split_item(item)
            if not requests:
                time_ms, seed = item_time, item_seed
            requests.append(request)
            positions.append(index)
        results: list[RequestResult | None] = [None] * len(items)
        if not requests:
            self.machine.apply_noop(entry.instance, entry.chain)
            return results
        applied = self.machine.apply_batch(entry.instance, entry.chain, requests, time_ms, seed)
        for position, result in zip(positions, applied, strict=True):
            results[position] = result
        return results

    def complete(self, completions: tuple[Completion, ...]) -> None:
        for completion in completions:
            future = self.waiters.pop(completion.token, None)
            if future is None or future.done():
                continue  # The client gave up (timeout); the outcome stands in the log.
            if completion.outcome is Outcome.CHOSEN:
                results = self._results.get(completion.instance)
                result = results[completion.index] if results else None
                future.set_result(WriteOutcome(result, completion.instance))
            else:
                future.set_result(
                    WriteOutcome(
                        None, -1, completion.outcome, completion.master_hint, completion.reason
                    )
                )
        self._results.clear()

    async def wait_applied(self, instance: int, timeout: float) -> bool:
        """Wait until this replica applied `instance`; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.machine.applied_instance < instance:
            left = deadline - loop.time()
            if left <= 0 or self.halted is not None:
                return False
            try:
                await asyncio.wait_for(self.applied_event.wait(), left)
            except TimeoutError:
                return False
        return True

    def close(self) -> None:
        self.machine.close()


def _applied_instance(database: Path) -> int:
    """The last instance a database file applied; -1 if it is missing or unreadable."""
    if not database.exists():
        return -1
    try:
        return read_database_meta(database, check=False)[0]  # Every start: no full scan.
    except Exception:  # noqa: BLE001 - any unreadable database is replaced by the checkpoint.
        logger.exception("database %s is unreadable", database)
        return -1


def install_file(source: Path, database: Path, move: bool = False) -> None:
    """Replace `database` by `source` atomically (copied, or moved when `move`).

    The old database's -wal and -shm files go first: SQLite would otherwise replay the
    old WAL into the new file. The caller has closed every connection to `database`,
    which checkpointed that WAL into the old file, so removing it loses nothing.
    """
    staged = source
    if not move:
        staged = database.with_name(database.name + ".installing")
        copy_synced(source, staged)
    for suffix in ("-wal", "-shm", "-journal"):
        database.with_name(database.name + suffix).unlink(missing_ok=True)
    os.replace(staged, database)
    fsync_directory(database.parent)
