"""`paxdb demo`: a local three-node cluster on loopback, with the shell open on it.

The nodes are child processes (`python -m paxdb serve`), each started and stopped by
its PID. Leaving the shell (Ctrl-D, `.quit`) or Ctrl-C stops them with SIGTERM, waits
for each, and removes the temporary data directory (a `--dir` given by the user is
kept). No process is left behind, even when the shell fails.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import click

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
CLIENT_PORT_OFFSET = 1000


def port_is_free(port: int) -> bool:
    """True if 127.0.0.1:`port` can be bound right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


EPHEMERAL_PORT_MIN = 32_768


def pick_ports(count: int, avoid: Iterable[int] = ()) -> list[int]:
    """Peer ports P whose client ports P + 1000 are free too, clear of each other's and
    of the peer ports in `avoid` (nodes already running)."""
    rng = random.Random()
    ports: list[int] = []
    for _ in range(10_000):
        # Below Linux's ephemeral range (32768 up) with its client port too, so an
        # outgoing connection never takes a stopped node's port before it restarts.
        port = rng.randint(20_000, EPHEMERAL_PORT_MIN - CLIENT_PORT_OFFSET - 1)
        near = {port - CLIENT_PORT_OFFSET, port, port + CLIENT_PORT_OFFSET}
        clear = near.isdisjoint([*ports, *avoid])
        if clear and port_is_free(port) and port_is_free(port + CLIENT_PORT_OFFSET):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise click.ClickException("could not find free loopback ports for the demo")


class DemoCluster:
    """Nodes 1..N on loopback as child processes; `external` ids are left to the caller
    (`paxdb bench --embedded` runs node 1 inside its own process)."""

    def __init__(
        self,
        directory: Path,
        nodes: int,
        external: tuple[int, ...] = (),
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.extra_args = extra_args  # More `paxdb serve` flags for every child node.
        self.ports = dict(zip(range(1, nodes + 1), pick_ports(nodes), strict=True))
        self.external = external
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        secret = directory / "secret"
        if not secret.exists():
            secret.write_text(os.urandom(24).hex())
        self.secret = secret

    @property
    def url(self) -> str:
        clients = ",".join(f"127.0.0.1:{p + CLIENT_PORT_OFFSET}" for p in self.ports.values())
        return f"paxdb://{clients}/main"

    @property
    def peers(self) -> str:
        return ",".join(f"{n}=127.0.0.1:{p}" for n, p in self.ports.items())

    def start(self) -> None:
        for node_id in self.ports:
            if node_id not in self.external:
                self.start_node(node_id)

    def start_node(self, node_id: int) -> None:
        log = open(self.directory / f"node{node_id}.log", "ab")  # noqa: SIM115
        self.processes[node_id] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "paxdb",
                "serve",
                "--id",
                str(node_id),
                "--data",
                str(self.directory / f"node{node_id}"),
                "--listen",
                f"127.0.0.1:{self.ports[node_id]}",
                "--peers",
                self.peers,
                "--secret-file",
                str(self.secret),
                *self.extra_args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order.
        )

    def restart_node(self, node_id: int) -> None:
        """Stop one child by its PID (SIGTERM, then wait) and start it again."""
        process = self.processes.pop(node_id)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.start_node(node_id)

    def wait_for_master(self, progress: Callable[[str], None]) -> int:
        from paxdb.cli import fetch_status

        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for node_id, process in self.processes.items():
                if process.poll() is not None:
                    log = (self.directory / f"node{node_id}.log").read_text(errors="replace")
                    raise click.ClickException(f"node {node_id} exited:\n{log[-1500:]}")
            with contextlib.suppress(click.ClickException):
                status = fetch_status(self.url)
                master = status["groups"].get("main", {}).get("master")
                if master is not None:
                    return int(master)
            progress(".")
            time.sleep(0.2)
        raise click.ClickException(
            f"no master elected within {START_TIMEOUT_S:.0f} s; see the logs in {self.directory}"
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for node_id, process in self.processes.items():
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                click.echo(f"node {node_id} did not stop in time; killing it", err=True)
                process.kill()
                process.wait()
        self.processes.clear()


@contextlib.contextmanager
def demo_directory(directory: str | None) -> Iterator[Path]:
    if directory is not None:
        path = Path(directory).expanduser()
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    path = Path(tempfile.mkdtemp(prefix="paxdb-demo-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def run_demo(nodes: int, directory: str | None, open_shell: Callable[[str], int]) -> int:
    with demo_directory(directory) as path:
        cluster = DemoCluster(path, nodes)
        _stop_on_hangup(cluster, None if directory is not None else path)
        try:
            click.echo(f"Starting {nodes} paxdb nodes on 127.0.0.1 (data in {path}) ", nl=False)
            cluster.start()
            master = cluster.wait_for_master(lambda dot: click.echo(dot, nl=False))
            click.echo(" ready.")
            _print_welcome(cluster, master)
            return open_shell(cluster.url)
        except KeyboardInterrupt:
            click.echo("\ninterrupted")
            return 130
        finally:
            signal.signal(signal.SIGHUP, signal.SIG_IGN)  # Stop the nodes, whatever comes.
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            with contextlib.suppress(OSError):
                click.echo("Stopping the nodes...", err=True)
            cluster.stop()


def _stop_on_hangup(cluster: DemoCluster, temporary: Path | None) -> None:
    """On SIGHUP (the terminal went away) or SIGTERM, stop the nodes and exit.

    The nodes run in their own sessions (Ctrl-C must reach the demo first), so nothing
    else would stop them. The work is done in the handler itself: an exception raised
    from it could land inside the shell's event loop, which would swallow it.
    """

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with contextlib.suppress(Exception):
            cluster.stop()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
        os._exit(128 + signum)

    for signum in (signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, handler)


def _print_welcome(cluster: DemoCluster, master: int) -> None:
    click.echo(f"\nURL: {cluster.url}")
    for node_id, port in cluster.ports.items():
        role = "master" if node_id == master else "follower"
        pid = cluster.processes[node_id].pid
        click.echo(
            f"  node {node_id}: peers 127.0.0.1:{port}, clients 127.0.0.1:"
            f"{port + CLIENT_PORT_OFFSET}, pid {pid} ({role})"
        )
    click.echo("\nTry:")
    click.echo(
        "  CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, at DEFAULT CURRENT_TIMESTAMP);"
    )
    click.echo("  .status        who is master, and how far each replica has applied")
    click.echo(
        f"  kill -9 {cluster.processes[master].pid}   (in another terminal) stop the "
        "master and keep typing: a new master takes over"
    )
    click.echo("Ctrl-D leaves the shell and stops the cluster.\n")
