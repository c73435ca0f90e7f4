"""Joining a running cluster: `paxdb serve --join URL [--learner]`.

A node started with an empty `--data` and `--join URL` first asks a node of that
cluster for its status (`join_status`): the bootstrap members and timing give it
the cluster id (config.joined_config), the members in force tell it where everyone is.
Then, running, it asks the master of `main` to add it as a learner (`Joiner`): it
receives every value from then on and catches up on the past from its peers' logs, or
by a checkpoint when their logs are cut short (catchup.py), behind the rejoin fence
(paxos/fence.py). Once it has caught up (fence lifted, within `PROMOTE_LAG` instances
of the cluster) it asks to be promoted to voter, unless it was started with
`--learner`. Every request is idempotent, so a restart with the same flags simply
carries on.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from paxdb import errors
from paxdb.client.admin import cluster_status, request_change
from paxdb.client.url import parse_url, split_address
from paxdb.node.catchup import CheckpointFetcher, FetchError
from paxdb.node.checkpoints import Checkpoint, CheckpointStore
from paxdb.node.config import ConfigError, NodeConfig, format_address
from paxdb.node.membership import MEMBERS_DATABASE, members_in_force
from paxdb.node.runtime import NodeRuntime

logger = logging.getLogger(__name__)

JOIN_POLL_S = 0.5  # How often a joining node looks at its progress.
PROMOTE_LAG = 64  # A learner this close to the cluster's newest instance asks to vote.
MEMBER_MARKER = "member"  # In the data directory once this node was seen as a member.
FIRST_FETCH_ATTEMPTS = 3  # Per node of the URL; a young cluster has no checkpoint yet.


def join_status(url: str) -> dict[str, Any]:
    """The status of a node of the `--join` URL; ConfigError (one line) if none answers."""
    try:
        return cluster_status(url)
    except errors.Error as error:
        raise ConfigError(f"--join {url}: {error}") from None


async def fetch_first_checkpoint(config: NodeConfig) -> Checkpoint | None:
    """Before a joining node first starts: the newest checkpoint of `main` from a node of
    the `--join` URL, if one has any. The node then starts from it (Group.open), with
    the members and addresses in force there rather than the bootstrap ones, so it can
    catch up even once every bootstrap member is gone."""
    assert config.join is not None
    store = CheckpointStore(config.data_dir / "groups" / MEMBERS_DATABASE / "checkpoints")
    store.open()
    for address in parse_url(config.join).addresses:
        fetcher = CheckpointFetcher(
            split_address(address), MEMBERS_DATABASE, store, attempts_max=FIRST_FETCH_ATTEMPTS
        )
        try:
            checkpoint = await fetcher.fetch()
        except FetchError as error:
            logger.info("no checkpoint from %s (%s)", address, error)
            continue
        logger.info(
            "received %s's checkpoint of %s at instance %d (%d bytes)",
            address,
            MEMBERS_DATABASE,
            checkpoint.applied_instance,
            checkpoint.size,
        )
        return checkpoint
    return None


class Joiner:
    """The background task of a node started with `--join`."""

    def __init__(self, runtime: NodeRuntime, url: str) -> None:
        self.runtime = runtime
        self.url = url
        self.config: NodeConfig = runtime.config
        self.added = False
        self.promote_asked = False

    async def run(self) -> None:
        while not await self._step():
            await asyncio.sleep(JOIN_POLL_S)

    async def _step(self) -> bool:
        """One look at our progress; True once there is nothing left to do."""
        node_id = self.config.node_id
        group = self.runtime.group(MEMBERS_DATABASE)
        role = members_in_force(group, self.config.peers).role_of(node_id)
        marker = self.config.data_dir / MEMBER_MARKER
        if role != "none" and not marker.exists():
            marker.touch()
        if role == "none" and marker.exists():
            # It was a member and is not any more: removed by an operator. A restart
            # with the same flags must not undo that.
            logger.warning(
                "this node was removed from the cluster; to add it again: "
                "paxdb members URL add %d=%s",
                node_id,
                format_address(self.config.listen),
            )
            return True
        try:
            if not self.added and role == "none":
                listen = format_address(self.config.listen)
                outcome = await self._blocking(request_change, self.url, "add", node_id, listen)
                logger.info("asked to join the cluster as a learner: %s", outcome)
            self.added = True
            if role == "voter" or (self.config.learner and role == "learner"):
                logger.info("joined the cluster as a %s", role)
                return True
            if role == "learner" and await self._caught_up():
                outcome = await self._blocking(request_change, self.url, "promote", node_id)
                if not self.promote_asked:
                    logger.info("caught up; asked to vote: %s", outcome)
                self.promote_asked = True
        except (errors.PaxdbError, KeyError, ValueError, TypeError) as error:
            logger.warning("joining: %s; trying again", error)
        return False

    async def _caught_up(self) -> bool:
        replica = self.runtime.group(MEMBERS_DATABASE).replica
        if replica.fenced:
            return False
        status = await self._blocking(cluster_status, self.url)
        newest = int(status["groups"][MEMBERS_DATABASE]["chosen"])
        return replica.instance - 1 >= newest - PROMOTE_LAG

    async def _blocking(self, function: Any, *args: Any) -> Any:
        """Run a blocking client call off the loop, so the node keeps serving."""
        return await asyncio.get_running_loop().run_in_executor(None, function, *args)
