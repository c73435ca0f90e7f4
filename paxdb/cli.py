"""The `paxdb` command line (DESIGN.md, "Fixed: command line")."""

from __future__ import annotations

import click

from paxdb import __version__


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="paxdb")
def main() -> None:
    """paxdb: a replicated embedded SQL database (SQLite + multi-Paxos)."""


def _not_built_yet(name: str) -> None:
    raise click.ClickException(
        f"`paxdb {name}` is not part of this build yet; see the open issues in README.md"
    )


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def demo(ctx: click.Context) -> None:
    """Start a local 3-node cluster on loopback and open the shell on it."""
    _not_built_yet("demo")


@main.command()
@click.option("--seed", type=int, default=None, help="Replay one seed.")
@click.option("--seeds", default="0-199", show_default=True, help="A range A-B of seeds.")
def sim(seed: int | None, seeds: str) -> None:
    """Run the deterministic Paxos simulator (same as `python -m paxdb.sim`)."""
    from paxdb.sim.__main__ import main as sim_main

    args = ["--seed", str(seed)] if seed is not None else ["--seeds", seeds]
    raise SystemExit(sim_main(args))
