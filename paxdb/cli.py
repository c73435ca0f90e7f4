"""The `paxdb` command line (DESIGN.md, "Fixed: command line")."""

from __future__ import annotations

import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

import click

from paxdb import __version__
from paxdb.client.protocol import MEMBERS_OPERATIONS


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paxdb")
def main() -> None:
    """paxdb: a replicated embedded SQL database (SQLite + multi-Paxos)."""


@main.command()
@click.option("--nodes", type=click.IntRange(1, 7), default=3, show_default=True)
@click.option("--dir", "directory", help="Keep the data here (default: a temporary directory).")
def demo(nodes: int, directory: str | None) -> None:
    """Start a local cluster on loopback and open the shell on it; Ctrl-D stops it."""
    from paxdb.demo import run_demo

    sys.exit(run_demo(nodes, directory, _open_shell))


def _open_shell(url: str) -> int:
    from paxdb_shell.main import run

    return run(url)


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def shell(ctx: click.Context) -> None:
    """The interactive SQL shell (same as `paxdb-shell`; `paxdb shell --help`)."""
    from paxdb_shell.main import main as shell_main  # prompt_toolkit loads only here.

    shell_main.main(args=ctx.args, prog_name="paxdb shell")


@main.command()
@click.option("--id", "node_id", type=int, help="This node's id (1, 2, ...).")
@click.option("--data", help="Data directory (created if missing).")
@click.option("--listen", help="Peer (Paxos) address HOST:PORT.")
@click.option("--peers", help="Every member: ID=HOST:PORT,ID=HOST:PORT,...")
@click.option("--client", help="Client address HOST:PORT (default: peer port + 1000).")
@click.option("--secret-file", help="File holding the cluster's shared secret.")
@click.option("--tick-ms", type=int, help="Milliseconds per Paxos tick (default 10).")
@click.option(
    "--checkpoint-every",
    type=int,
    help="Take a checkpoint of a database after this many instances (default 20000).",
)
@click.option(
    "--checkpoint-log-mb",
    type=int,
    help="... or after this many megabytes of values, whichever first (default 64).",
)
@click.option(
    "--log-keep",
    type=int,
    help="Instances of Paxos log kept below the newest checkpoint (default 2000).",
)
@click.option(
    "--election-jitter-ticks",
    type=click.IntRange(1, 100_000),
    hidden=True,  # For benchmarks and tests: a large value makes a node campaign last.
)
@click.option(
    "--join",
    metavar="URL",
    help="Join the running cluster at URL (with an empty --data; instead of --peers).",
)
@click.option(
    "--learner",
    is_flag=True,
    default=None,
    help="With --join: receive everything and serve local reads, but never vote.",
)
@click.option("--config", "config_file", help="A TOML file with the same keys.")
def serve(
    node_id: int | None,
    data: str | None,
    listen: str | None,
    peers: str | None,
    client: str | None,
    secret_file: str | None,
    tick_ms: int | None,
    checkpoint_every: int | None,
    checkpoint_log_mb: int | None,
    log_keep: int | None,
    election_jitter_ticks: int | None,
    join: str | None,
    learner: bool | None,
    config_file: str | None,
) -> None:
    """Run one node until SIGTERM or SIGINT."""
    from paxdb.errors import PaxdbError
    from paxdb.node.config import build_config
    from paxdb.node.main import ServeError, configure_logging
    from paxdb.node.main import serve as run

    try:
        config = build_config(
            node_id,
            data,
            listen,
            peers,
            client,
            secret_file,
            tick_ms,
            config_file,
            checkpoint_every=checkpoint_every,
            log_keep=log_keep,
            checkpoint_log_mb=checkpoint_log_mb,
            election_jitter_ticks=election_jitter_ticks,
            join=join,
            learner=learner,
        )
        configure_logging(config.node_id)
        run(config)
    except (PaxdbError, ServeError) as error:  # Config, storage, corruption: one line.
        raise click.ClickException(str(error)) from None


@main.command()
@click.argument("url")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(url: str, as_json: bool) -> None:
    """Show a node's view of the cluster: master, instances, peers."""
    report = fetch_status(url)
    if as_json:
        click.echo(json.dumps(report, indent=2, sort_keys=True))
        return
    click.echo(f"node {report['node']}  cluster {report['cluster']}  up {report['uptime_s']} s")
    if report.get("fatal"):
        click.echo(f"STOPPED: {report['fatal']}")
    rows = [("database", "role", "master", "chosen", "applied", "chain", "lease")]
    for name, group in report["groups"].items():
        rows.append(
            (
                name,
                group["role"],
                str(group["master"]),
                str(group["chosen"]),
                str(group["applied"]),
                group["chain"],
                str(group["lease_ticks_left"]),
            )
        )
    _table(rows)
    for name, group in report["groups"].items():
        if group.get("halted"):
            click.echo(f"database {name} is halted on this node: {group['halted']}")
    click.echo("")
    peer_rows = [("peer", "address", "client", "up")]
    for peer_id, peer in report["peers"].items():
        peer_rows.append((peer_id, peer["address"], peer["client"], "yes" if peer["up"] else "no"))
    _table(peer_rows)


@main.command()
@click.argument("url")
@click.argument("operation", type=click.Choice(["list", *MEMBERS_OPERATIONS]), default="list")
@click.argument("node", required=False)
def members(url: str, operation: str, node: str | None) -> None:
    """List or change the cluster's members, through the log.

    \b
      paxdb members URL list                  voters, learners, addresses
      paxdb members URL add ID=HOST:PORT      add a node as a learner
      paxdb members URL promote ID            make a learner a voter
      paxdb members URL remove ID             remove a node (the master hands over first)

    A node started with `paxdb serve --join URL` adds itself and asks to vote once it
    has caught up (unless started with --learner); `add` and `promote` are for doing
    it by hand. One change at a time; each takes effect from the instance it prints.
    """
    if operation == "list":
        _list_members(fetch_status(url))
        return
    node_id, address = _member_argument(operation, node)
    from paxdb.client.admin import request_change
    from paxdb.errors import Error

    fetch_status(url)  # A bad URL, or no node up, fails here at once, with one line.
    try:
        outcome = request_change(url, operation, node_id, address)
    except Error as error:
        raise click.ClickException(str(error)) from None
    click.echo(outcome)


def _member_argument(operation: str, node: str | None) -> tuple[int, str]:
    if node is None:
        shape = "ID=HOST:PORT" if operation == "add" else "ID"
        raise click.UsageError(f"{operation} needs the node: paxdb members URL {operation} {shape}")
    node_text, _, address = node.partition("=")
    if not node_text.strip().isdigit() or not 0 < int(node_text) < 2**31:
        raise click.UsageError(f"{node_text!r} is not a node id (1, 2, ...)")
    if operation == "add" and not address:
        raise click.UsageError("add needs the node's peer address: ID=HOST:PORT")
    if operation != "add" and address:
        raise click.UsageError(f"{operation} takes the node id only, not an address")
    if address:
        from paxdb.node.config import ConfigError, parse_address

        try:
            parse_address(address, f"node {node_text}'s address")
        except ConfigError as error:
            raise click.UsageError(str(error)) from None
    return int(node_text), address.strip()


def _list_members(report: dict[str, Any]) -> None:
    main_group = report["groups"].get("main", {})
    voters = set(main_group.get("members", ()))
    learners = set(main_group.get("learners", ()))
    master = main_group.get("master")
    rows = [("node", "role", "address", "client", "up")]
    for peer_id, peer in report["peers"].items():
        node_id = int(peer_id)
        role = "voter" if node_id in voters else "learner" if node_id in learners else "none"
        if node_id == master:
            role += " (master)"
        up = "yes" if peer["up"] else "no"
        rows.append((peer_id, role, peer["address"], peer["client"], up))
    _table(rows)
    version = main_group.get("members_version", -1)
    since = "as created" if version == -1 else f"as changed at instance {version}"
    click.echo(f"members {since}, as node {report['node']} has applied them")


def _table(rows: Sequence[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def fetch_status(url: str) -> dict[str, Any]:
    from paxdb.client.protocol import StatusReply, StatusRequest, decode, encode
    from paxdb.wire import FrameDecoder

    addresses = _addresses(url)
    tried = []
    for host, port in addresses:
        try:
            with socket.create_connection((host, port), timeout=3) as sock:
                sock.sendall(encode(StatusRequest(1)))
                decoder = FrameDecoder()
                while True:
                    data = sock.recv(65536)
                    if not data:
                        raise OSError("connection closed")
                    for mapping in decoder.feed(data):
                        reply = decode(mapping)
                        if isinstance(reply, StatusReply):
                            return reply.status
        except OSError as error:
            tried.append(f"{host}:{port} ({error.strerror or error})")
    raise click.ClickException("no node answered: tried " + ", ".join(tried))


def _addresses(url: str) -> list[tuple[str, int]]:
    from paxdb.client.url import parse_url
    from paxdb.errors import InterfaceError

    try:
        target = parse_url(url)
    except InterfaceError as error:
        raise click.ClickException(str(error)) from None
    addresses = []
    for address in target.addresses:
        host, _, port = address.rpartition(":")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


@main.command()
@click.argument("url", required=False)
@click.option(
    "--local",
    "local_nodes",
    type=click.IntRange(1, 7),
    help="Start (and stop) a local cluster of this many nodes instead of URL.",
)
@click.option(
    "--workload",
    type=click.Choice(["insert", "update", "point-read", "mixed", "batch"]),
    default="insert",
    show_default=True,
)
@click.option("--clients", type=click.IntRange(1, 4096), default=8, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(0.1, 3600),
    default=10.0,
    show_default=True,
    help="Seconds of load.",
)
@click.option("--value-size", type=click.IntRange(0, 1 << 20), default=100, show_default=True)
@click.option(
    "--consistency",
    type=click.Choice(["local", "master", "linearizable"]),
    default="master",
    show_default=True,
    help="For reads.",
)
@click.option(
    "--databases",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Spread the clients over this many databases (Paxos groups).",
)
@click.option(
    "--batch",
    type=click.IntRange(1, 10_000),
    default=100,
    show_default=True,
    help="Rows per executemany for the batch workload.",
)
@click.option(
    "--read-ratio",
    type=click.FloatRange(0, 1),
    default=0.9,
    show_default=True,
    help="Share of reads in the mixed workload.",
)
@click.option(
    "--dir",
    "directory",
    help="With --local: keep the cluster's data here (default: a temporary directory, "
    "removed afterwards).",
)
@click.option(
    "--embedded",
    is_flag=True,
    help="With --local: run node 1 inside the bench process, make it master, and run "
    "the clients as coroutines on its event loop (no client network hop, no driver).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def bench(
    url: str | None,
    local_nodes: int | None,
    directory: str | None,
    embedded: bool,
    as_json: bool,
    **settings: Any,
) -> None:
    """Load a cluster and report throughput, latency percentiles and errors."""
    from paxdb.bench.load import BenchOptions, run
    from paxdb.demo import DemoCluster, demo_directory

    if (url is None) == (local_nodes is None):
        raise click.UsageError("give a URL, or --local N to start a local cluster")
    if directory is not None and local_nodes is None:
        raise click.UsageError("--dir goes with --local N")
    if embedded and local_nodes is None:
        raise click.UsageError("--embedded needs --local N: the master must run in this process")
    if embedded and settings["databases"] != 1:
        raise click.UsageError(
            "--embedded runs one database: its master must be the node in this process"
        )
    progress = None if as_json else (lambda line: click.echo(line, err=True))
    if embedded:
        from paxdb.bench.embedded import BenchError, run_embedded

        with demo_directory(directory) as path:
            try:
                report = run_embedded(
                    BenchOptions(url="", **settings), local_nodes or 3, path, progress
                )
            except BenchError as error:
                raise click.ClickException(str(error)) from None
    elif url is not None:
        report = run(BenchOptions(url=url, **settings), progress)
    else:
        with demo_directory(directory) as path:
            cluster = DemoCluster(path, local_nodes or 3)
            try:
                cluster.start()
                cluster.wait_for_master(lambda _: None)
                report = run(BenchOptions(url=cluster.url, **settings), progress)
            finally:
                cluster.stop()
    click.echo(report.json() if as_json else report.text())


@main.command()
@click.argument("url")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--database", help="The database to copy (default: the URL's).")
def backup(url: str, file: str, database: str | None) -> None:
    """Write a consistent SQLite copy of one database to FILE.

    The copy is taken on the first node of URL that answers, with the SQLite backup
    API, at a known applied instance, which is printed with its CRC chain. It is a
    plain SQLite file (paxdb's own _paxdb_* tables included) and is checked with
    PRAGMA integrity_check before it is moved into place.
    """
    from paxdb.client.backup import fetch_backup

    try:
        report = fetch_backup(url, file, database, progress=lambda line: click.echo(line, err=True))
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from None
    click.echo(report)


@main.command()
@click.option("--data", "data_dir", required=True, help="The new node's data directory.")
@click.option("--database", default="main", show_default=True, help="The database to seed.")
@click.argument("file", type=click.Path(dir_okay=False))
def restore(data_dir: str, database: str, file: str) -> None:
    """Seed a new node's data directory from a SQLite file (a paxdb backup or any other).

    Restore every node of the new cluster from the same FILE, then start them.
    """
    from pathlib import Path

    from paxdb.client.protocol import check_database_name
    from paxdb.errors import PaxdbError
    from paxdb.node.restore import restore as seed

    try:
        check_database_name(database)
        click.echo(seed(Path(data_dir).expanduser(), Path(file), database))
    except PaxdbError as error:
        raise click.ClickException(str(error)) from None


@main.command()
@click.option("--seed", type=int, default=None, help="Replay one seed.")
@click.option("--seeds", default="0-199", show_default=True, help="A range A-B of seeds.")
def sim(seed: int | None, seeds: str) -> None:
    """Run the deterministic Paxos simulator (same as `python -m paxdb.sim`)."""
    from paxdb.sim.__main__ import main as sim_main

    args = ["--seed", str(seed)] if seed is not None else ["--seeds", seeds]
    sys.exit(sim_main(args))
