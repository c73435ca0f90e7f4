"""Relaying client requests to the master, over the master's own client port.

A node that is not master relays a write (or a master/linearizable read) to the node it
believes is master, marked `forwarded` so that node never relays it again: a request
makes at most two hops, and a stale belief ends in a NotMaster reply that the driver
follows by itself. One multiplexed connection per master address; requests in flight
fail with `NotMaster` (retryable) if that connection breaks.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from dataclasses import replace

from paxdb.client.protocol import ExecuteReply, ExecuteRequest, decode, encode
from paxdb.errors import NotMaster, RemoteProtocolError
from paxdb.node.config import Address
from paxdb.wire import FrameDecoder

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 2.0
READ_CHUNK_BYTES = 256 * 1024


class _Link:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.pending: dict[int, asyncio.Future[ExecuteReply]] = {}
        self.task = asyncio.create_task(self._read_replies())

    async def _read_replies(self) -> None:
        decoder = FrameDecoder()
        try:
            while data := await self.reader.read(READ_CHUNK_BYTES):
                for mapping in decoder.feed(data):
                    reply = decode(mapping)
                    if isinstance(reply, ExecuteReply):
                        future = self.pending.pop(reply.request_id, None)
                        if future is not None and not future.done():
                            future.set_result(reply)
        except (OSError, RemoteProtocolError) as error:
            logger.warning("relay connection to the master failed: %s", error)
        finally:
            self.close()

    def close(self) -> None:
        for future in self.pending.values():
            if not future.done():
                future.set_exception(
                    NotMaster("lost the connection to the master; retry at another node")
                )
        self.pending.clear()
        with contextlib.suppress(Exception):
            self.writer.close()

    @property
    def is_open(self) -> bool:
        return not self.task.done()


class Forwarder:
    def __init__(self) -> None:
        self._links: dict[Address, _Link] = {}
        self._ids = itertools.count(1)

    async def forward(
        self, address: Address, request: ExecuteRequest, timeout: float
    ) -> ExecuteReply:
        link = await self._link(address)
        request_id = next(self._ids)
        future: asyncio.Future[ExecuteReply] = asyncio.get_running_loop().create_future()
        link.pending[request_id] = future
        link.writer.write(encode(replace(request, request_id=request_id, forwarded=True)))
        try:
            reply = await asyncio.wait_for(future, timeout)
        finally:
            link.pending.pop(request_id, None)
        return replace(reply, request_id=request.request_id)

    async def _link(self, address: Address) -> _Link:
        link = self._links.get(address)
        if link is not None and link.is_open:
            return link
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(*address), CONNECT_TIMEOUT_S
            )
        except (OSError, TimeoutError) as error:
            raise NotMaster(
                f"this node is not master and cannot reach the master at "
                f"{address[0]}:{address[1]} ({error}); retry at another node"
            ) from None
        link = self._links[address] = _Link(reader, writer)
        return link

    async def close(self) -> None:
        for link in self._links.values():
            link.close()
            link.task.cancel()
        await asyncio.gather(*(link.task for link in self._links.values()), return_exceptions=True)
        self._links.clear()
