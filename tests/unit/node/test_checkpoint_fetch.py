"""The checkpoint transfer: chunks checked, a broken connection resumed, the file verified."""

from __future__ import annotations

import asyncio
import zlib
from pathlib import Path

import pytest

from paxdb.client.protocol import (
    BACKUP_CHUNK_BYTES,
    CheckpointReply,
    CheckpointRequest,
    decode,
    encode,
)
from paxdb.node import catchup
from paxdb.node.catchup import CheckpointFetcher, FetchError
from paxdb.node.checkpoints import Checkpoint, CheckpointStore, read_database_meta, snapshot_copy
from paxdb.paxos.effects import CheckpointMeta
from paxdb.sql.requests import Request, Statement, encode_request
from paxdb.sql.statemachine import StateMachine
from paxdb.wire import FrameDecoder


def _served_checkpoint(tmp_path: Path) -> Checkpoint:
    """A ~3.5 MB checkpoint (four chunks) at instance 39."""
    machine = StateMachine(str(tmp_path / "source.sqlite"))
    create = Statement("CREATE TABLE t(id INTEGER PRIMARY KEY, v BLOB)", ())
    machine.apply_batch(0, 1, [encode_request(Request("c", 1, (create,)))], 0, 0)
    for instance in range(1, 40):
        rows = tuple(
            Statement("INSERT INTO t(v) VALUES (?)", (bytes([instance]) * 9000,)) for _ in range(10)
        )
        machine.apply_batch(
            instance, 100 + instance, [encode_request(Request("c", instance + 1, rows))], 0, 0
        )
    machine.close()
    store = CheckpointStore(tmp_path / "served")
    store.open()
    applied, chain = snapshot_copy(tmp_path / "source.sqlite", store.scratch_path())
    assert (applied, chain) == (39, 139)
    return store.commit(store.scratch_path(), CheckpointMeta(40, 139, (1, 2, 3), -1, 1, 35))


class _Peer:
    """Serves one checkpoint; can break the link or spoil a chunk, once each."""

    def __init__(self, checkpoint: Checkpoint, break_after: int = 0, spoil: int = -1) -> None:
        self.checkpoint = checkpoint
        self.break_after = break_after  # Close the first connection after N chunks.
        self.spoil = spoil  # Send a wrong CRC for the chunk at this index, once.
        self.offsets: list[int] = []
        self.connections = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        decoder = FrameDecoder()
        sent = 0
        while data := await reader.read(65536):
            for mapping in decoder.feed(data):
                request = decode(mapping)
                assert isinstance(request, CheckpointRequest)
                self.offsets.append(request.offset)
                with open(self.checkpoint.path, "rb") as handle:
                    handle.seek(request.offset)
                    chunk = handle.read(BACKUP_CHUNK_BYTES)
                crc = zlib.crc32(chunk)
                if len(self.offsets) - 1 == self.spoil:
                    crc ^= 1
                reply = CheckpointReply(
                    request.request_id,
                    self.checkpoint.name,
                    request.offset,
                    chunk,
                    crc,
                    self.checkpoint.to_json(),
                )
                writer.write(encode(reply))
                sent += 1
                if self.connections == 1 and sent == self.break_after:
                    writer.close()
                    return


async def _fetch(peer: _Peer, store: CheckpointStore) -> tuple[Checkpoint, CheckpointFetcher]:
    server = await asyncio.start_server(peer.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    fetcher = CheckpointFetcher(("127.0.0.1", port), "main", store)
    try:
        return await fetcher.fetch(), fetcher
    finally:
        server.close()
        await server.wait_closed()


def test_a_broken_transfer_resumes_where_it_stopped(tmp_path: Path) -> None:
    served = _served_checkpoint(tmp_path)
    assert served.size > 3 * BACKUP_CHUNK_BYTES
    peer = _Peer(served, break_after=2)
    store = CheckpointStore(tmp_path / "local")
    store.open()
    got, fetcher = asyncio.run(_fetch(peer, store))
    assert peer.connections == 2
    assert fetcher.resumed_at == [2 * BACKUP_CHUNK_BYTES]
    # The second connection asked only for what was missing.
    assert peer.offsets.count(0) == 1
    assert peer.offsets[2] == 2 * BACKUP_CHUNK_BYTES
    assert got.meta == served.meta and got.sha256 == served.sha256
    assert got.path.read_bytes() == served.path.read_bytes()
    assert read_database_meta(got.path) == (39, 139)
    assert store.newest() == got
    assert list(store.incoming.iterdir()) == []


def test_a_chunk_with_a_bad_crc_is_fetched_again(tmp_path: Path) -> None:
    served = _served_checkpoint(tmp_path)
    peer = _Peer(served, spoil=1)
    store = CheckpointStore(tmp_path / "local")
    store.open()
    got, fetcher = asyncio.run(_fetch(peer, store))
    assert fetcher.attempts == 2
    assert peer.offsets[1] == peer.offsets[2] == BACKUP_CHUNK_BYTES
    assert got.path.read_bytes() == served.path.read_bytes()


def test_a_checkpoint_whose_bytes_do_not_match_its_digest_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = _served_checkpoint(tmp_path)
    lying = Checkpoint(served.meta, served.size, "00" * 32, served.path)
    monkeypatch.setattr(catchup, "FETCH_ATTEMPTS_MAX", 2)
    monkeypatch.setattr(catchup, "FETCH_BACKOFF_S", (0.01, 0.01))
    store = CheckpointStore(tmp_path / "local")
    store.open()
    with pytest.raises(FetchError, match="sha256"):
        asyncio.run(_fetch(_Peer(lying), store))
    assert store.list() == []
    assert list(store.incoming.iterdir()) == []
