"""`paxdb.Node`: a node inside your own process, its event loop on a background thread.

    with paxdb.Node(id=1, data="/tmp/paxdb-dev") as node:      # a one-node cluster
        conn = paxdb.connect(node=node, database="main")

    node = paxdb.Node(id=1, data="d1", listen="127.0.0.1:7001",
                      peers="1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003")
    node.start(); ...; node.stop()

The node is the same code as `paxdb serve`; the application talks to it through the
driver over loopback, so an embedded node and a remote one behave identically. A
one-node cluster (no `peers`) is its own majority: fine for development and tests, not
for durability against losing the machine.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from paxdb.node.checkpoints import CheckpointPolicy
from paxdb.node.config import (
    ConfigError,
    NodeConfig,
    build_config,
    claim_data_dir,
    format_address,
)
from paxdb.node.runtime import NodeRuntime
from paxdb.node.server import ClientServer

logger = logging.getLogger(__name__)
T = TypeVar("T")

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0
MASTER_WAIT_S = 10.0


class Node:
    def __init__(
        self,
        id: int,  # noqa: A002 - the public keyword is `id`, as in `paxdb serve --id`.
        data: str | Path,
        listen: str | None = None,
        peers: str | None = None,
        client: str | None = None,
        secret_file: str | None = None,
        tick_ms: int | None = None,
        checkpoint_every: int | None = None,
        log_keep: int | None = None,
    ) -> None:
        if listen is None:
            if peers:
                raise ConfigError("a node with peers needs listen='HOST:PORT'")
            self.config = NodeConfig(
                node_id=id,
                data_dir=Path(data),
                listen=("127.0.0.1", 0),
                client=("127.0.0.1", 0),
                peers={id: ("127.0.0.1", 0)},
                secret=os.urandom(16),  # No peer may join a one-node cluster.
                tick_ms=tick_ms or 10,
                checkpoints=CheckpointPolicy(
                    every=checkpoint_every or CheckpointPolicy.every,
                    log_keep=CheckpointPolicy.log_keep if log_keep is None else log_keep,
                ),
            )
        else:
            self.config = build_config(
                id,
                str(data),
                listen,
                peers,
                client,
                secret_file,
                tick_ms,
                checkpoint_every=checkpoint_every,
                log_keep=log_keep,
            )
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._runtime: NodeRuntime | None = None
        self._server: ClientServer | None = None

    # Lifecycle.

    def start(self, wait_master: bool = True) -> Node:
        """Start serving; with `wait_master`, return once a master is known for "main"."""
        if self._thread is not None:
            raise RuntimeError("this node is already started")
        claim_data_dir(self.config)
        self._thread = threading.Thread(
            target=self._run, name=f"paxdb-node-{self.config.node_id}", daemon=True
        )
        self._thread.start()
        if not self._started.wait(START_TIMEOUT_S):
            raise RuntimeError(
                f"node {self.config.node_id} did not start within {START_TIMEOUT_S:.0f} s"
            )
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error
        if wait_master:
            self.wait_for_master()
        return self

    def stop(self) -> None:
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None or loop is None or stopping is None:
            return
        loop.call_soon_threadsafe(stopping.set)
        thread.join(STOP_TIMEOUT_S)
        self._thread = None

    def __enter__(self) -> Node:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # noqa: BLE001 - handed to the starting thread.
            self._error = error
            self._started.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        runtime = self._runtime = NodeRuntime(self.config, on_fatal=lambda _: self._stop_soon())
        server = self._server = ClientServer(runtime)
        try:
            await runtime.start()
            await server.start()
            self._started.set()
            await self._stopping.wait()
        finally:
            await server.stop()
            await runtime.stop()

    def _stop_soon(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def run_in_loop(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run `coroutine` on the node's own event loop and wait for its result.

        For in-process tools that talk to the node without a socket (`paxdb bench
        --embedded`); the coroutine must not block the loop.
        """
        loop = self._loop
        if loop is None or not self._started.is_set():
            raise RuntimeError("start the node first")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result()

    @property
    def server(self) -> ClientServer:
        """The node's request handler (for coroutines given to `run_in_loop`)."""
        if self._server is None:
            raise RuntimeError("start the node first")
        return self._server

    # Queries (thread-safe).

    def client_address(self) -> str:
        """Where the driver reaches this node: "host:port"."""
        if self._server is None or not self._started.is_set():
            raise RuntimeError("start the node first")
        return format_address(self._server.address)

    @property
    def url(self) -> str:
        return f"paxdb://{self.client_address()}/main"

    def is_master(self, database: str = "main") -> bool:
        runtime = self._runtime
        if runtime is None or database not in runtime.groups:
            return False
        return runtime.groups[database].replica.is_master

    def master(self, database: str = "main") -> int | None:
        runtime = self._runtime
        if runtime is None or database not in runtime.groups:
            return None
        replica = runtime.groups[database].replica
        return runtime.node_id if replica.is_master else replica.master_hint

    def wait_for_master(self, database: str = "main", timeout: float = MASTER_WAIT_S) -> int:
        """Block until some node is master of `database`; return its id."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            master = self.master(database)
            if master is not None:
                return master
            time.sleep(0.02)
        raise TimeoutError(
            f"no master for {database!r} within {timeout:.0f} s: is a majority "
            "of the cluster running?"
        )
