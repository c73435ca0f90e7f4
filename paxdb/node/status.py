"""The status map a node reports (`paxdb status --json`, the shell's `.status`)."""

from __future__ import annotations

import time
from typing import Any

from paxdb import __version__
from paxdb.node.config import format_address
from paxdb.node.membership import MEMBERS_DATABASE, members_in_force
from paxdb.node.runtime import NodeRuntime


def node_status(runtime: NodeRuntime) -> dict[str, Any]:
    config = runtime.config
    groups: dict[str, Any] = {}
    for name, group in sorted(runtime.groups.items()):
        replica = group.replica
        status = replica.status()
        groups[name] = {
            "role": _role(group.halted, replica.fenced, status.role.value),
            "master": status.master,
            "master_client": runtime.master_client_address(group),
            "chosen": replica.instance - 1,
            "applied": group.applied_instance,
            "chain": f"{group.machine.chain:08x}",
            "lease_ticks_left": status.lease_ticks_left,
            "members": list(status.members),
            "learners": list(status.learners),
            "members_version": replica.membership.version,
            "halted": group.halted,
            "fenced": replica.fenced,
            "log_first": runtime.store.chosen_bounds(name).instance_min,
            "checkpoint": (
                group.newest_checkpoint.applied_instance
                if group.newest_checkpoint is not None
                else None
            ),
            "checkpoints_taken": group.checkpoints_taken,
            "checkpoints_installed": group.checkpoints_installed,
        }
    main = runtime.groups.get(MEMBERS_DATABASE)
    book = dict(runtime.peers)
    if main is not None:  # The members in force, not every node ever known.
        book = members_in_force(main, config.peers).addresses
    book[config.node_id] = config.listen
    peers = {
        str(node_id): {
            "address": format_address(address),
            "client": format_address(runtime.client_address_of(node_id)),
            "up": node_id == config.node_id or runtime.transport.peer_is_up(node_id),
        }
        for node_id, address in sorted(book.items())
    }
    return {
        "node": config.node_id,
        "cluster": config.cluster_id,
        "bootstrap": config.peers_spec,  # What a joining node needs (config.joined_config).
        "lease_ticks": config.options.lease_ticks,
        "version": __version__,
        "uptime_s": round(time.time() - runtime.started_at, 1),
        "tick_ms": config.tick_ms,
        "fatal": runtime.fatal,
        "groups": groups,
        "peers": peers,
    }


def _role(halted: str | None, fenced: bool, role: str) -> str:
    """`halted`, then `fenced` (a rejoining replica that may not vote yet), then the core's."""
    if halted:
        return "halted"
    return "fenced" if fenced else role
