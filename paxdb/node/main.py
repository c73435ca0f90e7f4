"""`paxdb serve`: run one node until SIGTERM or SIGINT.

Exit status 0 on a clean stop; 1 with a one-line reason on a bad flag, a data directory
of another cluster, a port in use, or a fatal storage error.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import sys

from paxdb.node.config import (
    ConfigError,
    NodeConfig,
    claim_data_dir,
    format_address,
    joined_config,
)
from paxdb.node.join import Joiner, fetch_first_checkpoint, join_status
from paxdb.node.runtime import NodeRuntime
from paxdb.node.server import ClientServer

logger = logging.getLogger("paxdb.node")


class ServeError(Exception):
    """Why the node could not start or had to stop; one line."""


def install_uvloop() -> None:
    """uvloop when present (Linux); installed here, never on import (STYLE.md section 5).
    PAXDB_UVLOOP=0 keeps asyncio's own loop (to compare, or to debug)."""
    if os.environ.get("PAXDB_UVLOOP") == "0":
        return
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def configure_logging(node_id: int, level: int = logging.INFO) -> None:
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s %(levelname)s node {node_id}: %(message)s",
        stream=sys.stderr,
    )


def serve(config: NodeConfig) -> None:
    """Run the node in this thread until a signal; raises ServeError or ConfigError."""
    if not __debug__:
        raise ServeError("paxdb refuses to run with assertions off (python -O)")
    first_join = config.join is not None and not config.peers
    if config.join is not None and first_join:
        logger.info("asking %s for the cluster to join (up to 15 s)", config.join)
        config = joined_config(config, join_status(config.join))
        logger.info(
            "joining cluster %s (bootstrap members %s)", config.cluster_id, config.peers_spec
        )
    claim_data_dir(config)
    if first_join:
        asyncio.run(fetch_first_checkpoint(config))
    install_uvloop()
    asyncio.run(_serve(config))


async def _serve(config: NodeConfig) -> None:
    stopping = asyncio.Event()
    fatal: list[str] = []

    def on_fatal(reason: str) -> None:
        fatal.append(reason)
        stopping.set()

    runtime = NodeRuntime(config, on_fatal=on_fatal)
    server = ClientServer(runtime)
    joiner: asyncio.Task[None] | None = None
    try:
        await _start(runtime, server)
        if config.join is not None:
            joiner = asyncio.create_task(Joiner(runtime, config.join).run())
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stopping.set)
        await stopping.wait()
        logger.info("stopping")
    finally:
        if joiner is not None:
            joiner.cancel()
            await asyncio.gather(joiner, return_exceptions=True)
        await server.stop()
        await runtime.stop()
    if fatal:
        raise ServeError(fatal[0])


async def _start(runtime: NodeRuntime, server: ClientServer) -> None:
    config = runtime.config
    try:
        await runtime.start()
    except OSError as error:
        raise ServeError(_address_error("--listen", config.listen, error)) from None
    try:
        await server.start()
    except OSError as error:
        raise ServeError(_address_error("--client", config.client, error)) from None


def _address_error(flag: str, address: tuple[str, int], error: OSError) -> str:
    where = format_address(address)
    if error.errno == errno.EADDRINUSE:
        return f"{flag} {where}: port {address[1]} is already in use (another paxdb node?)"
    return f"{flag} {where}: cannot listen: {error.strerror or error}"


__all__ = ["ConfigError", "NodeConfig", "ServeError", "configure_logging", "serve"]
