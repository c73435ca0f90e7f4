"""The client side of `paxdb backup`: fetch a copy in chunks, verify it, move it in place."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable
from pathlib import Path

from paxdb.client.protocol import (
    BackupReply,
    BackupRequest,
    ExecuteReply,
    decode,
    encode,
)
from paxdb.client.url import parse_url, split_address
from paxdb.errors import Error
from paxdb.wire import FrameDecoder

CONNECT_TIMEOUT_S = 5.0
CHUNK_TIMEOUT_S = 120.0  # The first chunk waits for the copy to be taken.
PROGRESS_EVERY_BYTES = 16 * 1024 * 1024


def fetch_backup(url: str, file: str, database: str | None, progress: Callable[[str], None]) -> str:
    """Copy `database` to `file`; returns the one-line report. Raises ValueError."""
    try:
        target = parse_url(url)
    except Error as error:
        raise ValueError(str(error)) from None
    name = database or target.database
    tried: list[str] = []
    for address in target.addresses:
        host, port = split_address(address)
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as sock:
                sock.settimeout(CHUNK_TIMEOUT_S)
                return _fetch(sock, name, Path(file), progress)
        except OSError as error:
            tried.append(f"{address} ({error.strerror or error})")
    raise ValueError("no node answered: tried " + ", ".join(tried))


def _fetch(sock: socket.socket, database: str, file: Path, progress: Callable[[str], None]) -> str:
    decoder = FrameDecoder()
    temporary = file.with_name(file.name + ".part")
    token, offset, size, request_id = "", 0, -1, 0
    instance = chain = 0
    reported = 0
    with open(temporary, "wb") as handle:
        while offset != size:
            request_id += 1
            sock.sendall(encode(BackupRequest(request_id, database, token, offset)))
            reply = _reply(sock, decoder)
            if isinstance(reply, ExecuteReply):
                assert reply.error is not None
                raise ValueError(f"{reply.error.class_name}: {reply.error.message}")
            assert isinstance(reply, BackupReply)
            if reply.offset != offset or (token and reply.token != token):
                raise ValueError("the node sent a chunk of another copy; try again")
            token, size, instance, chain = reply.token, reply.size, reply.instance, reply.chain
            handle.write(reply.data)
            offset += len(reply.data)
            if not reply.data and offset != size:
                raise ValueError("the node sent an empty chunk before the end")
            if offset - reported >= PROGRESS_EVERY_BYTES:
                progress(f"{offset * 100 // max(size, 1)}% of {size:,} bytes")
                reported = offset
        handle.flush()
        os.fsync(handle.fileno())
    _verify(temporary)
    os.replace(temporary, file)
    return (
        f"backed up database {database} at instance {instance} (chain {chain:08x}): "
        f"{size:,} bytes to {file}"
    )


def _reply(sock: socket.socket, decoder: FrameDecoder) -> object:
    while True:
        data = sock.recv(1 << 20)
        if not data:
            raise OSError("the node closed the connection")
        frames = decoder.feed(data)
        if frames:
            return decode(frames[0])


def _verify(path: Path) -> None:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        result = connection.execute("PRAGMA integrity_check").fetchall()
    if result != [("ok",)]:
        path.unlink(missing_ok=True)
        raise ValueError(f"the copy failed PRAGMA integrity_check: {result[:3]}")
