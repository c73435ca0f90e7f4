"""Consistent copies of a database for `paxdb backup`, sent to the client in chunks.

A copy is taken with the SQLite backup API from this replica's file, off the event
loop, into DIR/backups/. Because the copy is one consistent snapshot, its own
`_paxdb_meta` row says exactly which instance it holds and the CRC chain there. The
client then fetches chunks by (token, offset); the last chunk deletes the copy, and a
copy nobody finished is deleted after `COPY_TTL_S`.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from paxdb import errors
from paxdb.client.protocol import BACKUP_CHUNK_BYTES, BackupReply, BackupRequest
from paxdb.node.checkpoints import snapshot_copy

COPY_TTL_S = 600.0
COPIES_MAX = 8


@dataclass
class _Copy:
    path: Path
    size: int
    instance: int
    chain: int
    created: float


class BackupService:
    def __init__(self, data_dir: Path) -> None:
        self.directory = data_dir / "backups"
        self._copies: dict[str, _Copy] = {}

    async def handle(self, request: BackupRequest, source: Path) -> BackupReply:
        self._expire()
        if not request.token:
            if len(self._copies) >= COPIES_MAX:
                raise errors.OperationalError("too many backups in progress on this node")
            token = secrets.token_hex(8)
            loop = asyncio.get_running_loop()
            copy = await loop.run_in_executor(None, self._take, source, token)
            self._copies[token] = copy
        else:
            token = request.token
            found = self._copies.get(token)
            if found is None:
                raise errors.OperationalError(
                    "this backup copy is gone (finished or expired); start the backup again"
                )
            copy = found
        if not 0 <= request.offset <= copy.size:
            raise errors.ProgrammingError(f"offset {request.offset} is outside the copy")
        with open(copy.path, "rb") as handle:
            handle.seek(request.offset)
            data = handle.read(BACKUP_CHUNK_BYTES)
        if request.offset + len(data) >= copy.size:
            self._drop(token)
        return BackupReply(
            request.request_id, token, copy.size, request.offset, data, copy.instance, copy.chain
        )

    def _take(self, source: Path, token: str) -> _Copy:
        if not source.exists():
            raise errors.ProgrammingError(f"no database {source.parent.name!r} on this node")
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{token}.sqlite"
        # One pinned read snapshot, as for checkpoints: the copy never restarts under load.
        instance, chain = snapshot_copy(source, path)
        return _Copy(path, path.stat().st_size, instance, chain, time.monotonic())

    def _drop(self, token: str) -> None:
        copy = self._copies.pop(token, None)
        if copy is not None:
            copy.path.unlink(missing_ok=True)

    def _expire(self) -> None:
        now = time.monotonic()
        for token, copy in list(self._copies.items()):
            if now - copy.created > COPY_TTL_S:
                self._drop(token)

    def close(self) -> None:
        for token in list(self._copies):
            self._drop(token)
        if self.directory.is_dir():
            for leftover in self.directory.glob("*.sqlite"):
                os.unlink(leftover)
