"""Blocking administrative calls on a cluster: its status, and membership changes.

Used by `paxdb members`, by a node started with `--join` (paxdb/node/join.py) and by
the membership benchmark. Both go through `Cluster`, so they retry across the nodes
of the URL and follow the master as the driver does.
"""

from __future__ import annotations

from typing import Any

from paxdb.client.protocol import ExecuteReply, MembersRequest, StatusReply, StatusRequest, encode
from paxdb.client.transport import Cluster
from paxdb.client.url import parse_url

ADMIN_TIMEOUT_S = 15.0


def cluster_status(url: str, timeout_s: float = ADMIN_TIMEOUT_S) -> dict[str, Any]:
    """The status map of the first node of `url` that answers. Raises InterfaceError
    for a bad URL, Unavailable when no node answers within `timeout_s`."""
    cluster = Cluster(parse_url(url).addresses, timeout_s)
    try:
        reply = cluster.call(
            lambda request_id: encode(StatusRequest(request_id)), to_master=False, is_write=False
        )
    finally:
        cluster.close()
    assert isinstance(reply, StatusReply)
    return reply.status


def request_change(url: str, operation: str, node_id: int, address: str = "") -> str:
    """Ask the master of `main` (found through `url`) for a membership change; returns
    what happened, one sentence. Raises the node's error (errors.Error)."""
    cluster = Cluster(parse_url(url).addresses, ADMIN_TIMEOUT_S)
    try:
        reply = cluster.call(
            lambda request_id: encode(MembersRequest(request_id, operation, node_id, address)),
            to_master=True,
            is_write=False,  # Idempotent: no "may or may not have been applied" caveat.
        )
    finally:
        cluster.close()
    assert isinstance(reply, ExecuteReply)
    rows = reply.results[0].rows if reply.results else ()
    return str(rows[0][1]) if rows else "done"
