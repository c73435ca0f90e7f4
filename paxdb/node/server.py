"""The client server: the node's side of the client protocol (paxdb/client/protocol.py).

Writes: the master checks determinism (`StateMachine.check_write`, cached sqlglot verdict
plus SQLite's own judgement), stamps time and a random seed, proposes, and answers once
the value is chosen and applied, with the request's real results. A non-master relays
the write to the master once (see forward.py), or answers NotMaster with the master's
client address.

Reads, by consistency level:
- `local`: this replica, after it applied at least `min_instance` (bounded wait);
- `master`: the master, while its lease holds, after applying everything it learned;
- `linearizable`: the master, after a read barrier (an empty request) is chosen and
  applied, which proves a quorum still follows it.

Each connection may carry many requests at once; each request runs in its own task and
replies carry the request id.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import time
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from paxdb import errors
from paxdb.client.protocol import (
    BACKUP_CHUNK_BYTES,
    BackupReply,
    BackupRequest,
    CheckpointReply,
    CheckpointRequest,
    Consistency,
    ExecuteReply,
    ExecuteRequest,
    MembersRequest,
    StatusReply,
    StatusRequest,
    decode,
    encode,
    request_id_of,
)
from paxdb.node.backup import BackupService
from paxdb.node.config import ConfigError, parse_address
from paxdb.node.forward import Forwarder
from paxdb.node.group import BARRIER, Group, WriteOutcome, stamp_item
from paxdb.node.membership import MEMBERS_DATABASE, MembersFollower, MembersService
from paxdb.node.runtime import NodeRuntime
from paxdb.node.status import node_status
from paxdb.paxos.effects import Outcome
from paxdb.paxos.values import Value, ValueKind
from paxdb.sql.determinism import classify
from paxdb.sql.requests import ErrorInfo, Request, StatementResult, encode_request
from paxdb.sql.verdict import Kind
from paxdb.wire import FrameDecoder

logger = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 10.0  # A write not chosen by then is answered ProposalTimeout.
READ_WAIT_S = 5.0  # How long a read waits for its replica to catch up.
READ_CHUNK_BYTES = 256 * 1024
CLIENT_FRAME_BYTES_MAX = 64 * 1024 * 1024


def error_reply(request_id: int, error: BaseException, master: str | None = None) -> ExecuteReply:
    info = ErrorInfo(type(error).__name__, str(error), getattr(error, "sqlite_errorcode", 0))
    return ExecuteReply(request_id, error=info, master=master)


class ClientServer:
    def __init__(self, runtime: NodeRuntime) -> None:
        self.runtime = runtime
        self.forwarder = Forwarder()
        self.backups = BackupService(runtime.config.data_dir)
        self._server: asyncio.Server | None = None
        self._tokens = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self.requests_served = 0
        self._writers: set[asyncio.StreamWriter] = set()
        # Reads run off the loop, so a long SELECT never delays ticks, votes or leases.
        # One thread: the state machine has one read connection.
        self._readers = ThreadPoolExecutor(1, thread_name_prefix="paxdb-read")
        self.members = MembersService(
            runtime.node_id, runtime.config.peers, self._submit, runtime.transport.peer_is_up
        )

    async def start(self) -> None:
        host, port = self.runtime.config.client
        self._server = await asyncio.start_server(self._on_client, host, port)
        bound = self._server.sockets[0].getsockname()
        self.address: tuple[str, int] = (host, int(bound[1]))
        self.runtime.client_address = self.address
        self._spawn(MembersFollower(self.runtime, self.members).run())

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):  # Handlers see EOF and end on their own.
            writer.transport.abort()
        await asyncio.sleep(0)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.forwarder.close()
        self.backups.close()
        self._readers.shutdown(wait=True, cancel_futures=True)

    # Connections.

    async def _on_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        decoder = FrameDecoder(CLIENT_FRAME_BYTES_MAX)
        peer = writer.get_extra_info("peername")
        try:
            while data := await reader.read(READ_CHUNK_BYTES):
                for mapping in decoder.feed(data):
                    self._spawn(self._serve_frame(mapping, writer))
        except errors.RemoteProtocolError as error:
            logger.warning("client %s sent a bad frame, closing: %s", peer, error)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            with contextlib.suppress(Exception):
                writer.close()

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve_frame(self, mapping: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        try:
            message = decode(mapping)
        except errors.RemoteProtocolError as error:
            request_id = request_id_of(mapping)
            if request_id is None:
                writer.close()
                return
            reply: ServerReply = error_reply(
                request_id, errors.InterfaceError(f"malformed request: {error}")
            )
        else:
            reply = await self.handle(message)
        if not writer.is_closing():
            writer.write(encode(reply))

    async def handle(self, message: object) -> ServerReply:
        self.requests_served += 1
        if isinstance(message, StatusRequest):
            return StatusReply(message.request_id, node_status(self.runtime))
        if isinstance(message, CheckpointRequest):
            try:
                return await self._checkpoint_chunk(message)
            except errors.DatabaseError as error:
                return error_reply(message.request_id, error)
        if isinstance(message, BackupRequest):
            try:
                return await self.backups.handle(message, self.runtime.group_path(message.database))
            except errors.DatabaseError as error:
                return error_reply(message.request_id, error)
        if isinstance(message, MembersRequest):
            return await self._members(message)
        if not isinstance(message, ExecuteRequest):
            return error_reply(0, errors.InterfaceError("nodes only answer requests"))
        try:
            return await self._execute(message)
        except errors.DatabaseError as error:
            return error_reply(message.request_id, error, self._master_of(message.database))
        except (errors.ReplicaHalted, errors.CorruptionError, errors.StorageError) as error:
            return error_reply(
                message.request_id,
                errors.OperationalError(
                    f"database {message.database!r} is halted on this node: {error}"
                ),
            )

    async def _checkpoint_chunk(self, request: CheckpointRequest) -> CheckpointReply:
        """A chunk of one of this replica's checkpoints, for a peer catching up."""
        group = self.runtime.groups.get(request.database)
        if group is None:
            raise errors.OperationalError(f"no database {request.database!r} on this node")
        checkpoint = (
            group.checkpoints.find(request.name) if request.name else group.checkpoints.newest()
        )
        if checkpoint is None:
            raise errors.OperationalError(
                f"checkpoint {request.name or '(newest)'} of {request.database!r} is not on "
                "this node (pruned or never taken); ask again for the newest"
            )
        if not 0 <= request.offset <= checkpoint.size:
            raise errors.ProgrammingError(f"offset {request.offset} is outside the checkpoint")
        data = await asyncio.get_running_loop().run_in_executor(
            None, _read_chunk, checkpoint.path, request.offset
        )
        return CheckpointReply(
            request.request_id,
            checkpoint.name,
            request.offset,
            data,
            zlib.crc32(data),
            checkpoint.to_json(),
        )

    async def _members(self, request: MembersRequest) -> ExecuteReply:
        """A membership change, carried out by the master of `main` (membership.py)."""
        self.runtime.catch_up_ticks()
        group = self.runtime.group(MEMBERS_DATABASE)
        try:
            address = parse_address(request.address, "address") if request.address else None
            instance, outcome = await self.members.carry_out(
                group, request.operation, request.node_id, address
            )
        except errors.NotMaster as error:
            hint = error.master_hint
            master = self.runtime.client_address_text(hint) if hint is not None else None
            return error_reply(request.request_id, error, master)
        except errors.DatabaseError as error:
            return error_reply(request.request_id, error, self._master_of(MEMBERS_DATABASE))
        except ConfigError as error:  # A malformed address.
            return error_reply(request.request_id, errors.ProgrammingError(str(error)))
        except (errors.ReplicaHalted, errors.CorruptionError, errors.StorageError) as error:
            return error_reply(
                request.request_id,
                errors.OperationalError(f"database {MEMBERS_DATABASE!r} is halted here: {error}"),
            )
        result = StatementResult(-1, None, ("instance", "outcome"), ((instance, outcome),))
        return ExecuteReply(request.request_id, (result,), instance=instance)

    def _master_of(self, database: str) -> str | None:
        group = self.runtime.groups.get(database)
        return None if group is None else self.runtime.master_client_address(group)

    # Requests.

    async def _execute(self, request: ExecuteRequest) -> ExecuteReply:
        if self.runtime.fatal is not None:
            raise errors.OperationalError(f"this node has stopped: {self.runtime.fatal}")
        self.runtime.catch_up_ticks()  # Never judge the lease on a stale tick count.
        group = self.runtime.group(request.database)
        if group.halted is not None:
            raise errors.OperationalError(
                f"database {group.name!r} is halted on this node: {group.halted}"
            )
        is_write = request.write
        if is_write is None:
            is_write = not all(classify(s.sql).kind is Kind.READ for s in request.statements)
        if is_write:
            return await self._write(group, request)
        return await self._read(group, request)

    async def _write(self, group: Group, request: ExecuteRequest) -> ExecuteReply:
        if not group.replica.is_master:
            return await self._relay(group, request)
        for statement in request.statements:
            group.machine.check_write(statement.sql)
        client_id = request.client_id or os.urandom(16).hex()
        payload = encode_request(Request(client_id, request.seq, request.statements))
        seed = int.from_bytes(os.urandom(8), "big", signed=True)
        outcome = await self._propose(group, stamp_item(payload, time.time_ns() // 1_000_000, seed))
        if outcome.refused is not None:
            return self._refused(group, request, outcome)
        result = outcome.result
        assert result is not None, "a chosen request has a result"
        if result.error is not None:
            return ExecuteReply(request.request_id, error=result.error, instance=outcome.instance)
        return ExecuteReply(request.request_id, result.results, instance=outcome.instance)

    async def _propose(self, group: Group, item: bytes) -> WriteOutcome:
        value = Value(ValueKind.SQL_BATCH, item)
        return await self._submit(group, lambda token: group.replica.propose(value, token))

    async def _submit(self, group: Group, start: Callable[[object], None]) -> WriteOutcome:
        """Hand the core a request under a fresh token (`start(token)`) and wait for its
        completion, or raise ProposalTimeout."""
        token = next(self._tokens)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WriteOutcome] = loop.create_future()
        group.waiters[token] = future
        start(token)
        self.runtime.schedule_flush()
        # A timer on the future itself: cheaper than wait_for's extra waiter per write.
        timer = loop.call_later(WRITE_TIMEOUT_S, _expire, future)
        try:
            return await future
        except _Expired:
            group.waiters.pop(token, None)
            raise errors.ProposalTimeout(
                f"the write was not chosen within {WRITE_TIMEOUT_S:.0f} s; it may still be "
                "applied: retry it with the same sequence number"
            ) from None
        finally:
            timer.cancel()

    def _refused(
        self, group: Group, request: ExecuteRequest, outcome: WriteOutcome
    ) -> ExecuteReply:
        if outcome.refused is Outcome.NOT_MASTER:
            raise errors.NotMaster(master_hint=outcome.master_hint)
        raise errors.ProposalDropped(
            f"the write was not applied ({outcome.reason or 'the master changed'}); retry it"
        )

    async def _relay(self, group: Group, request: ExecuteRequest) -> ExecuteReply:
        master = group.replica.master_hint
        address = self.runtime.master_client_address(group)
        if request.forwarded or master is None or address is None:
            raise errors.NotMaster(master_hint=master)
        host, _, port = address.rpartition(":")
        reply = await self.forwarder.forward(
            (host.strip("[]"), int(port)), request, WRITE_TIMEOUT_S + 1
        )
        if reply.master is None:
            # Name the master, so the driver sends its next writes there directly
            # instead of through this node (a relay costs a hop and this node's CPU).
            reply = dataclasses.replace(reply, master=address)
        return reply

    async def _read(self, group: Group, request: ExecuteRequest) -> ExecuteReply:
        wanted = request.min_instance
        if request.consistency is not Consistency.LOCAL:
            if not group.replica.is_master:
                return await self._relay(group, request)
            wanted = max(wanted, group.replica.instance - 1)
            if request.consistency is Consistency.LINEARIZABLE:
                outcome = await self._propose(group, BARRIER)
                if outcome.refused is not None:
                    return self._refused(group, request, outcome)
                wanted = max(wanted, outcome.instance)
        if not await group.wait_applied(wanted, READ_WAIT_S):
            raise errors.OperationalError(
                f"this replica has applied up to {group.applied_instance}, not {wanted}, "
                f"after {READ_WAIT_S:.0f} s; read from the master or retry"
            )
        applied = group.applied_instance
        results = await asyncio.get_running_loop().run_in_executor(
            self._readers, _run_queries, group, request
        )
        return ExecuteReply(request.request_id, results, instance=applied)


ServerReply = ExecuteReply | StatusReply | BackupReply | CheckpointReply


def _read_chunk(path: Path, offset: int) -> bytes:
    """A chunk of a checkpoint file; empty if it was pruned meanwhile (the peer retries)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            return handle.read(BACKUP_CHUNK_BYTES)
    except FileNotFoundError:
        return b""


class _Expired(Exception):
    """A write's waiter ran out of time (internal to `_propose`)."""


def _expire(future: asyncio.Future[WriteOutcome]) -> None:
    if not future.done():
        future.set_exception(_Expired())


def _run_queries(group: Group, request: ExecuteRequest) -> tuple[StatementResult, ...]:
    """On the read thread: every statement of a read request, in order."""
    with group.read_lock:  # A checkpoint install swaps the database under this lock.
        return tuple(group.machine.query(s.sql, s.params) for s in request.statements)
