"""Real `paxdb serve` processes on 127.0.0.1 for integration tests.

Every process is started and stopped by its PID; nothing is killed by name. Ports are
picked free at random (peer port P, client port P + 1000, the default convention).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from client import TestClient

from paxdb.demo import pick_ports

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def free_peer_ports(count: int, avoid: Iterable[int] = ()) -> list[int]:
    """Peer ports whose client ports (+1000) are free too; the demo's own picker."""
    return pick_ports(count, avoid)


class ProcessCluster:
    def __init__(
        self,
        directory: Path,
        size: int = 3,
        secret: bool = True,
        tick_ms: int = 10,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.extra_args = extra_args
        self.size = size
        self.tick_ms = tick_ms
        self.ports = dict(zip(range(1, size + 1), free_peer_ports(size), strict=True))
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.bootstrap = sorted(self.ports)
        self.joiners: dict[int, tuple[str, ...]] = {}  # Node id -> extra flags (--learner).
        self.secret_file: Path | None = None
        if secret:
            self.secret_file = directory / "secret"
            self.secret_file.write_text(os.urandom(24).hex())

    @property
    def peers_flag(self) -> str:
        return ",".join(f"{n}=127.0.0.1:{self.ports[n]}" for n in self.bootstrap)

    @property
    def bootstrap_url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{self.ports[n] + 1000}" for n in self.bootstrap)
        return f"paxdb://{nodes}/main"

    def join(self, node_id: int, *flags: str) -> None:
        """Start a new node with an empty directory and `--join` the bootstrap nodes."""
        assert node_id not in self.ports
        (self.ports[node_id],) = free_peer_ports(1, avoid=self.ports.values())
        self.joiners[node_id] = flags
        self.start(node_id)

    def client_address(self, node_id: int) -> tuple[str, int]:
        return ("127.0.0.1", self.ports[node_id] + 1000)

    @property
    def url(self) -> str:
        nodes = ",".join(f"127.0.0.1:{p + 1000}" for p in self.ports.values())
        return f"paxdb://{nodes}/main"

    def data_dir(self, node_id: int) -> Path:
        return self.directory / f"node{node_id}"

    def db_path(self, node_id: int, database: str = "main") -> Path:
        return self.data_dir(node_id) / "groups" / database / "db.sqlite"

    def command(self, node_id: int) -> list[str]:
        command = [
            sys.executable,
            "-m",
            "paxdb",
            "serve",
            "--id",
            str(node_id),
            "--data",
            str(self.data_dir(node_id)),
            "--listen",
            f"127.0.0.1:{self.ports[node_id]}",
            *(
                ("--join", self.bootstrap_url, *self.joiners[node_id])
                if node_id in self.joiners
                else ("--peers", self.peers_flag)
            ),
            "--tick-ms",
            str(self.tick_ms),
        ]
        if self.secret_file is not None:
            command += ["--secret-file", str(self.secret_file)]
        return command + list(self.extra_args)

    def start(self, node_id: int | None = None) -> None:
        for node in [node_id] if node_id is not None else list(self.ports):
            log = open(self.directory / f"node{node}.log", "ab")  # noqa: SIM115
            self.processes[node] = subprocess.Popen(
                self.command(node), stdout=log, stderr=subprocess.STDOUT
            )
        for node in [node_id] if node_id is not None else list(self.ports):
            self.wait_serving(node)

    def wait_serving(self, node_id: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            process = self.processes[node_id]
            if process.poll() is not None:
                raise AssertionError(f"node {node_id} exited: {self.log(node_id)[-2000:]}")
            with contextlib.suppress(OSError):
                socket.create_connection(self.client_address(node_id), timeout=0.5).close()
                return
            time.sleep(0.05)
        raise AssertionError(f"node {node_id} did not start serving")

    def kill(self, node_id: int) -> None:
        process = self.processes.pop(node_id)
        process.send_signal(signal.SIGKILL)
        process.wait(STOP_TIMEOUT_S)

    def stop(self, node_id: int) -> int:
        process = self.processes.pop(node_id)
        process.send_signal(signal.SIGTERM)
        return process.wait(STOP_TIMEOUT_S)

    def close(self) -> None:
        for node_id in list(self.processes):
            with contextlib.suppress(Exception):
                self.kill(node_id)

    def log(self, node_id: int) -> str:
        return (self.directory / f"node{node_id}.log").read_text(errors="replace")

    def client(self, nodes: list[int] | None = None) -> TestClient:
        chosen = nodes or list(self.ports)
        return TestClient([self.client_address(n) for n in chosen])

    def status(self, node_id: int) -> dict[str, Any]:
        return TestClient([self.client_address(node_id)]).status()

    def master(self, database: str = "main", timeout: float = 15.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node_id in list(self.processes):
                with contextlib.suppress(Exception):
                    group = self.status(node_id)["groups"].get(database)
                    if group and group["role"] == "master":
                        return node_id
            time.sleep(0.1)
        raise AssertionError(f"no master for {database} within {timeout} s")

    def main_group(self, node_id: int) -> dict[str, Any]:
        """Node `node_id`'s status of database `main`."""
        group: dict[str, Any] = self.status(node_id)["groups"]["main"]
        return group

    def rows(self, node_id: int, sql: str, database: str = "main") -> list[tuple[Any, ...]]:
        uri = f"file:{self.db_path(node_id, database)}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            return connection.execute(sql).fetchall()

    def meta(self, node_id: int, database: str = "main") -> tuple[int, int]:
        (row,) = self.rows(node_id, "SELECT applied_instance, chain FROM _paxdb_meta", database)
        return row[0], row[1]

    def converge(self, timeout: float = 20.0) -> None:
        """Wait until every running replica applied the same instance of "main"."""
        deadline = time.monotonic() + timeout
        metas: list[tuple[int, int]] = []
        while time.monotonic() < deadline:
            metas = [self.meta(n) for n in self.processes]
            if len(set(metas)) == 1:
                return
            time.sleep(0.05)
        raise AssertionError(f"replicas did not converge: {metas}")


def wait_until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    """Poll `predicate` until it is true; a node that is restarting or busy (an
    exception) is asked again. AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")
