"""Checkpoint scheduling, log truncation, and catch-up by checkpoint transfer.

Theory of operation, per group:
- After each apply the runtime calls `after_apply`. When the database applied
  `checkpoint_every` instances, or `checkpoint_log_mb` megabytes of values, past its
  newest checkpoint, a checkpoint is taken off
  the loop (checkpoints.snapshot_copy), its metadata asked from the core for the
  instance the copy holds (`Replica.checkpoint_meta`), committed, old ones pruned, and
  the Paxos log cut below `instance_next - log_keep`.
- When the core reports `need_checkpoint = peer` (that peer's log starts past what this
  replica needs), `need_checkpoint` fetches the peer's newest checkpoint over its client
  port in chunks: each chunk carries a CRC32 that is checked, the file grows under
  checkpoints/incoming/NAME.part, and a broken connection resumes at the part's size.
  The whole file must match the sha256 in its metadata and its own `_paxdb_meta` row;
  then it becomes a local checkpoint and is installed in this process (Group.install).

Invariants:
- At most one checkpoint task (take or fetch) runs per group, so a copy is never taken
  from a database that is being replaced.
- The log is cut only below a checkpoint that is durable (committed) on this node, and
  never at or above the database's applied instance + 1 (the checkpoint is a copy of the
  database, so it is never ahead of it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from paxdb import errors
from paxdb.client.protocol import (
    CheckpointReply,
    CheckpointRequest,
    ExecuteReply,
    decode,
    encode,
)
from paxdb.node.checkpoints import (
    Checkpoint,
    CheckpointFormatError,
    CheckpointPolicy,
    CheckpointStore,
    copy_synced,
    file_sha256,
    fsync_file,
    meta_from_json,
    read_database_meta,
    snapshot_copy,
)
from paxdb.node.group import Group
from paxdb.wire import FrameDecoder

logger = logging.getLogger(__name__)

FETCH_ATTEMPTS_MAX = 30
FETCH_BACKOFF_S = (0.1, 2.0)  # First and largest pause between attempts.
CONNECT_TIMEOUT_S = 5.0
CHUNK_TIMEOUT_S = 30.0
READ_BYTES = 1 << 20
PROGRESS_EVERY_BYTES = 64 * 1024 * 1024
FRAME_BYTES_MAX = 2 * 1024 * 1024 + 64 * 1024  # One chunk and its metadata.


class FetchError(Exception):
    """A checkpoint transfer failed in a way that retrying the same bytes cannot fix."""


class CheckpointFetcher:
    """The client side of a checkpoint transfer from one peer, resumable."""

    def __init__(
        self,
        address: tuple[str, int],
        database: str,
        store: CheckpointStore,
        on_chunk: Callable[[int], None] | None = None,
        attempts_max: int = FETCH_ATTEMPTS_MAX,
    ) -> None:
        self.address = address
        self.attempts_max = attempts_max
        self.database = database
        self.store = store
        self.on_chunk = on_chunk  # Told each chunk's offset (tests break the link here).
        self.name = ""
        self.meta: dict[str, object] = {}
        self.attempts = 0
        self.resumed_at: list[int] = []

    async def fetch(self) -> Checkpoint:
        pause = FETCH_BACKOFF_S[0]
        while True:
            self.attempts += 1
            try:
                return await self._attempt()
            except (OSError, TimeoutError, errors.RemoteProtocolError, FetchError) as error:
                if self.attempts >= self.attempts_max:
                    raise FetchError(
                        f"checkpoint of {self.database!r} from {self.address[0]}:"
                        f"{self.address[1]} failed {self.attempts} times; last: {error}"
                    ) from error
                logger.info("checkpoint transfer interrupted (%s); resuming", error)
                await asyncio.sleep(pause)
                pause = min(pause * 2, FETCH_BACKOFF_S[1])

    async def _attempt(self) -> Checkpoint:
        host, port = self.address
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), CONNECT_TIMEOUT_S
        )
        try:
            return await self._transfer(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _transfer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> Checkpoint:
        decoder = FrameDecoder(FRAME_BYTES_MAX)
        part = self._part_path()
        offset = part.stat().st_size if part is not None and part.exists() else 0
        if offset:
            self.resumed_at.append(offset)
        request_id = 0
        size = -1
        reported = 0
        while offset != size:
            request_id += 1
            writer.write(encode(CheckpointRequest(request_id, self.database, self.name, offset)))
            reply = await asyncio.wait_for(_read_reply(reader, decoder), CHUNK_TIMEOUT_S)
            if isinstance(reply, ExecuteReply):
                self._forget()  # Pruned on the peer: start again from its newest.
                message = reply.error.message if reply.error is not None else "no checkpoint"
                raise FetchError(message)
            if not isinstance(reply, CheckpointReply) or reply.offset != offset:
                raise errors.RemoteProtocolError("the peer answered another chunk")
            if zlib.crc32(reply.data) != reply.crc:
                raise FetchError(f"chunk at byte {offset} failed its CRC32")
            if not self.name:
                self._adopt(reply)
            elif reply.name != self.name or reply.meta != self.meta:
                self._forget()
                raise FetchError("the peer's checkpoint changed during the transfer")
            _, size, _ = meta_from_json(self.meta)
            if not reply.data and offset != size:
                self._forget()
                raise FetchError("the peer's checkpoint is gone")
            if offset + len(reply.data) > size:
                raise errors.RemoteProtocolError("a chunk runs past the checkpoint's size")
            part = self._part_path()
            assert part is not None
            with open(part, "r+b" if offset else "wb") as handle:
                handle.seek(offset)
                handle.write(reply.data)
            offset += len(reply.data)
            if self.on_chunk is not None:
                self.on_chunk(offset)
            if offset - reported >= PROGRESS_EVERY_BYTES:
                logger.info("checkpoint %s: %d of %d bytes", self.name, offset, size)
                reported = offset
        return await asyncio.get_running_loop().run_in_executor(None, self._finish)

    def _adopt(self, reply: CheckpointReply) -> None:
        try:
            meta_from_json(reply.meta)
        except CheckpointFormatError as error:
            raise errors.RemoteProtocolError(f"bad checkpoint metadata: {error}") from None
        self.name, self.meta = reply.name, reply.meta
        for stale in self.store.incoming.glob("*.part"):
            if stale.name != f"{self.name}.part":
                stale.unlink()

    def _forget(self) -> None:
        part = self._part_path()
        if part is not None:
            part.unlink(missing_ok=True)
        self.name, self.meta = "", {}

    def _part_path(self) -> Path | None:
        return self.store.incoming / f"{self.name}.part" if self.name else None

    def _finish(self) -> Checkpoint:
        """Verify the whole file (digest, then its own metadata row) and commit it."""
        part = self._part_path()
        assert part is not None
        meta, size, digest = meta_from_json(self.meta)
        fsync_file(part)
        if part.stat().st_size != size or file_sha256(part) != digest:
            self._forget()
            raise FetchError("the received checkpoint does not match its sha256; fetching again")
        try:
            applied, chain = read_database_meta(part)
        except (errors.CorruptionError, OSError, Exception) as error:  # noqa: BLE001
            self._forget()
            raise FetchError(f"the received checkpoint is not a sound database: {error}") from None
        if (applied, chain) != (meta.instance_next - 1, meta.chain):
            self._forget()
            raise FetchError("the received checkpoint's own metadata row disagrees with it")
        return self.store.commit(part, meta, digest)


async def _read_reply(reader: asyncio.StreamReader, decoder: FrameDecoder) -> object:
    while True:
        data = await reader.read(READ_BYTES)
        if not data:
            raise ConnectionResetError("the peer closed the connection")
        frames = decoder.feed(data)
        if frames:
            return decode(frames[0])


class Checkpointer:
    """Takes checkpoints, cuts the log, and installs peers' checkpoints, for every group."""

    def __init__(
        self,
        policy: CheckpointPolicy,
        truncate_below: Callable[[str, int], None],
        client_address_of: Callable[[int], tuple[str, int]],
        schedule_flush: Callable[[], None],
    ) -> None:
        self.policy = policy
        self._truncate_below = truncate_below
        self._client_address_of = client_address_of
        self._schedule_flush = schedule_flush
        self._busy: dict[str, asyncio.Task[None]] = {}

    def after_apply(self, group: Group) -> None:
        if group.name in self._busy or group.halted is not None:
            return
        newest = group.newest_checkpoint
        since = group.applied_instance + 1 - (newest.meta.instance_next if newest else 0)
        log_bytes = group.applied_bytes - group.checkpoint_bytes_mark
        if since >= self.policy.every or log_bytes >= self.policy.log_mb * 1_000_000:
            self._spawn(group, self._take(group))

    def need_checkpoint(self, group: Group, peer: int) -> None:
        if group.name not in self._busy and group.halted is None:
            self._spawn(group, self._fetch_and_install(group, peer))

    def busy(self, name: str) -> bool:
        return name in self._busy

    async def stop(self) -> None:
        for task in list(self._busy.values()):
            task.cancel()
        await asyncio.gather(*self._busy.values(), return_exceptions=True)

    def _spawn(self, group: Group, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(work)
        self._busy[group.name] = task
        task.add_done_callback(lambda _: self._busy.pop(group.name, None))

    async def _take(self, group: Group) -> None:
        loop = asyncio.get_running_loop()
        scratch = group.checkpoints.scratch_path()
        mark = group.applied_bytes
        try:
            applied, chain = await loop.run_in_executor(
                None, snapshot_copy, group.database_path, scratch
            )
            meta = group.replica.checkpoint_meta(applied + 1)
            if meta is None or meta.chain != chain:
                logger.warning(
                    "group %s: no exact core state for instance %d; checkpoint skipped",
                    group.name,
                    applied,
                )
                scratch.unlink(missing_ok=True)
                return
            checkpoint = await loop.run_in_executor(None, group.checkpoints.commit, scratch, meta)
            await loop.run_in_executor(None, group.checkpoints.prune, self.policy.kept)
        except Exception:
            logger.exception("group %s: taking a checkpoint failed", group.name)
            scratch.unlink(missing_ok=True)
            return
        group.newest_checkpoint = checkpoint
        group.checkpoint_bytes_mark = mark
        group.checkpoints_taken += 1
        logger.info("group %s: checkpoint at instance %d", group.name, applied)
        self._cut_log(group, checkpoint)

    def _cut_log(self, group: Group, checkpoint: Checkpoint) -> None:
        below = max(0, checkpoint.meta.instance_next - self.policy.log_keep)
        assert below <= group.applied_instance + 1, "the log must keep what is not applied"
        try:
            self._truncate_below(group.name, below)
        except (errors.StorageError, OSError) as error:
            logger.error("group %s: cutting the log failed: %s", group.name, error)

    async def _fetch_and_install(self, group: Group, peer: int) -> None:
        loop = asyncio.get_running_loop()
        logger.info(
            "group %s: the log of node %d starts past this replica; fetching its checkpoint",
            group.name,
            peer,
        )
        fetcher = CheckpointFetcher(self._client_address_of(peer), group.name, group.checkpoints)
        try:
            checkpoint = await fetcher.fetch()
            if checkpoint.meta.instance_next <= group.replica.instance:
                return
            staged = group.database_path.with_name("db.sqlite.installing")
            await loop.run_in_executor(None, copy_synced, checkpoint.path, staged)
            if group.install(checkpoint, staged):
                group.newest_checkpoint = checkpoint
                group.checkpoint_bytes_mark = group.applied_bytes
                group.checkpoints_installed += 1
                logger.info(
                    "group %s: installed node %d's checkpoint at instance %d (%d bytes)",
                    group.name,
                    peer,
                    checkpoint.applied_instance,
                    checkpoint.size,
                )
                self._schedule_flush()
        except errors.CorruptionError as error:
            group.halt(str(error))
        except (FetchError, OSError) as error:
            logger.error("group %s: %s; will try again when asked", group.name, error)
