"""Checkpoints of one database: SQLite copies at a known instance, with their metadata.

A checkpoint holds the state machine after applying every instance below
`meta.instance_next`. It lets the Paxos log below it be deleted, lets a restart skip the
history (the core starts from its `CheckpointMeta`), and is what a replica that fell
behind the log's start receives from a peer.

Layout, under groups/NAME/checkpoints/:
    <instance_next:020d>.sqlite   the database copy (a plain SQLite file, journal DELETE)
    <instance_next:020d>.json     its metadata: CheckpointMeta, size, sha256 of the file
    incoming/                     checkpoints being received from a peer (catchup.py)

Invariants:
- A checkpoint exists iff its .json exists. The .json is written (temporary file, fsync,
  rename, directory fsync) only after its .sqlite is complete and fsynced, so a crash
  leaves either a whole checkpoint or an orphan file, which `open` deletes.
- `sha256` is the digest of the .sqlite's bytes, computed once when the checkpoint is
  made; a received checkpoint is installed only if its bytes match it, and its own
  `_paxdb_meta` row names instance `instance_next - 1` with the same chain.
- The copy is one consistent snapshot: it is taken with the SQLite backup API from a
  connection that holds one read transaction for the whole copy (WAL mode lets the
  applier go on meanwhile), and the instance it holds is read from the copy itself.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import apsw

from paxdb import limits
from paxdb.errors import CorruptionError
from paxdb.paxos.effects import CheckpointMeta

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
BACKUP_STEP_PAGES = 1024  # Pages copied per step: the source is held only briefly.
HASH_CHUNK_BYTES = 1 << 20
_NAME = re.compile(r"\A(\d{20})\.json\Z")
INSTANCE_MAX = 2**63 - 1


@dataclass(frozen=True)
class CheckpointPolicy:
    every: int = 20_000  # Instances applied past the newest checkpoint before the next,
    log_mb: int = 64  # or megabytes of values applied, whichever comes first.
    log_keep: int = 2_000  # Instances of log kept below the newest checkpoint.
    kept: int = 2  # Checkpoints kept per database.

    def __post_init__(self) -> None:
        assert self.every >= 1 and self.log_mb >= 1 and self.log_keep >= 0 and self.kept >= 1


class CheckpointFormatError(ValueError):
    """Checkpoint metadata (from disk or from a peer) that does not validate."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    meta: CheckpointMeta
    size: int
    sha256: str
    path: Path  # The .sqlite file.

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def applied_instance(self) -> int:
        return self.meta.instance_next - 1

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "instance_next": self.meta.instance_next,
            "chain": self.meta.chain,
            "members": list(self.meta.members),
            "members_version": self.meta.members_version,
            "learners": list(self.meta.learners),
            "master": self.meta.master,
            "master_version": self.meta.master_version,
            "size": self.size,
            "sha256": self.sha256,
        }


def checkpoint_name(instance_next: int) -> str:
    return f"{instance_next:020d}"


def meta_from_json(raw: object) -> tuple[CheckpointMeta, int, str]:
    """Validate untrusted metadata; returns (meta, size, sha256). Raises CheckpointFormatError."""
    if not isinstance(raw, dict) or raw.get("format_version") != FORMAT_VERSION:
        raise CheckpointFormatError("checkpoint metadata is not a format-1 map")
    try:
        instance_next = _int(raw["instance_next"], 1, INSTANCE_MAX)
        chain = _int(raw["chain"], 0, 0xFFFFFFFF)
        members_raw = raw["members"]
        if not isinstance(members_raw, list) or not 0 < len(members_raw) <= limits.MEMBERS_MAX:
            raise CheckpointFormatError("members must be a non-empty list")
        members = tuple(_int(m, 0, limits.NODE_ID_MAX) for m in members_raw)
        if members != tuple(sorted(set(members))):
            raise CheckpointFormatError("members must be sorted and unique")
        members_version = _int(raw["members_version"], -1, instance_next - 1)
        learners_raw = raw.get("learners", [])
        if not isinstance(learners_raw, list) or len(learners_raw) > limits.LEARNERS_MAX:
            raise CheckpointFormatError("learners must be a short list")
        learners = tuple(_int(m, 0, limits.NODE_ID_MAX) for m in learners_raw)
        if learners != tuple(sorted(set(learners))) or set(learners) & set(members):
            raise CheckpointFormatError("learners must be sorted, unique and not voters")
        master = raw["master"]
        if master is not None:
            master = _int(master, 0, limits.NODE_ID_MAX)
        master_version = _int(raw["master_version"], -1, instance_next - 1)
        size = _int(raw["size"], 1, INSTANCE_MAX)
        digest = raw["sha256"]
    except KeyError as missing:
        raise CheckpointFormatError(f"checkpoint metadata lacks {missing}") from None
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise CheckpointFormatError("sha256 must be 64 hex digits")
    meta = CheckpointMeta(
        instance_next, chain, members, members_version, master, master_version, learners
    )
    return meta, size, digest


def _int(value: object, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        raise CheckpointFormatError(f"{value!r} is not an integer in [{low}, {high}]")
    return value


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def copy_synced(source: Path, target: Path) -> None:
    """Copy a file and make the copy durable."""
    shutil.copyfile(source, target)
    fsync_file(target)


def snapshot_copy(source: Path, target: Path) -> tuple[int, int]:
    """Copy database `source` to `target` as one snapshot; returns (applied instance, chain).

    Runs off the event loop. The reader's read transaction pins one WAL snapshot for the
    whole copy, so the backup never restarts however fast the applier writes.
    """
    target.unlink(missing_ok=True)
    reader = apsw.Connection(str(source), flags=apsw.SQLITE_OPEN_READONLY)
    copy = apsw.Connection(str(target))
    try:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM _paxdb_meta").fetchall()  # Pins the snapshot.
        with copy.backup("main", reader, "main") as backup:
            while not backup.done:
                backup.step(BACKUP_STEP_PAGES)
        reader.execute("COMMIT")
        copy.execute("PRAGMA journal_mode=DELETE").fetchall()
        rows: list[Any] = copy.execute("SELECT applied_instance, chain FROM _paxdb_meta").fetchall()
    finally:
        copy.close()
        reader.close()
    fsync_file(target)
    return int(rows[0][0]), int(rows[0][1])


def read_database_meta(path: Path, check: bool = True) -> tuple[int, int]:
    """(applied_instance, chain) from a database file's own `_paxdb_meta`, read-only;
    with `check`, the file must also pass `PRAGMA quick_check` (which reads all of it)."""
    connection = apsw.Connection(str(path), flags=apsw.SQLITE_OPEN_READONLY)
    try:
        rows: list[Any] = connection.execute(
            "SELECT applied_instance, chain FROM _paxdb_meta"
        ).fetchall()
        result: list[Any] = connection.execute("PRAGMA quick_check").fetchall() if check else []
    finally:
        connection.close()
    if check and result != [("ok",)]:
        raise CorruptionError(f"{path} fails PRAGMA quick_check: {result[:3]}")
    if len(rows) != 1:
        raise CorruptionError(f"{path} has no paxdb metadata row")
    return int(rows[0][0]), int(rows[0][1])


class CheckpointStore:
    """The checkpoints of one database on this node. Not thread-safe: the runtime calls
    it from one place at a time (its event loop, or one worker thread it waits for)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.incoming = directory / "incoming"

    def open(self) -> list[Checkpoint]:
        """Create the directory, delete orphans, return the valid checkpoints (oldest first)."""
        self.incoming.mkdir(parents=True, exist_ok=True)
        found = self.list()
        keep = {c.path.name for c in found} | {c.path.with_suffix(".json").name for c in found}
        for leftover in self.directory.iterdir():
            if leftover.is_file() and leftover.name not in keep:
                logger.info("removing unfinished checkpoint file %s", leftover)
                leftover.unlink()
        return found

    def list(self) -> list[Checkpoint]:
        """Valid checkpoints, oldest first. A bad .json is skipped with a warning."""
        checkpoints: list[Checkpoint] = []
        if not self.directory.is_dir():
            return checkpoints
        for entry in sorted(self.directory.iterdir()):
            if not _NAME.match(entry.name):
                continue
            try:
                meta, size, digest = meta_from_json(json.loads(entry.read_text()))
            except (OSError, ValueError) as error:
                logger.warning("ignoring checkpoint %s: %s", entry, error)
                continue
            path = entry.with_suffix(".sqlite")
            if checkpoint_name(meta.instance_next) != entry.stem or not path.exists():
                logger.warning("ignoring checkpoint %s: its file is missing or misnamed", entry)
                continue
            if path.stat().st_size != size:
                logger.warning("ignoring checkpoint %s: size differs from its metadata", entry)
                continue
            checkpoints.append(Checkpoint(meta, size, digest, path))
        return checkpoints

    def newest(self) -> Checkpoint | None:
        found = self.list()
        return found[-1] if found else None

    def find(self, name: str) -> Checkpoint | None:
        for checkpoint in self.list():
            if checkpoint.name == name:
                return checkpoint
        return None

    def scratch_path(self) -> Path:
        """Where a new copy is written before it becomes a checkpoint."""
        return self.directory / "taking.sqlite.tmp"

    def commit(self, copy: Path, meta: CheckpointMeta, sha256: str | None = None) -> Checkpoint:
        """Make the fsynced file `copy` the checkpoint for `meta` (moves the file)."""
        digest = sha256 or file_sha256(copy)
        name = checkpoint_name(meta.instance_next)
        path = self.directory / f"{name}.sqlite"
        os.replace(copy, path)
        checkpoint = Checkpoint(meta, path.stat().st_size, digest, path)
        temporary = self.directory / f"{name}.json.tmp"
        temporary.write_text(json.dumps(checkpoint.to_json(), indent=2) + "\n")
        fsync_file(temporary)
        os.replace(temporary, self.directory / f"{name}.json")
        fsync_directory(self.directory)
        return checkpoint

    def prune(self, keep: int) -> None:
        """Delete all but the newest `keep` checkpoints (metadata first)."""
        assert keep >= 1
        for old in self.list()[:-keep]:
            old.path.with_suffix(".json").unlink(missing_ok=True)
            old.path.unlink(missing_ok=True)
