"""The node runtime: one asyncio loop drives every group's core, the log, the network.

Theory of operation (the loop of paxos/__init__.py, for N groups at once):
- Input arrives as callbacks on the loop: envelopes from the transport, ticks from a
  timer, proposals from client handlers. Each feeds one group's replica and schedules a
  flush with `call_soon`, so everything that arrived in the same loop turn is flushed
  together.
- `_flush` takes the effects of every group with work, writes all their records in one
  `write_batch` with **one fsync** if any of them needs it (group commit across groups),
  then sends, applies, completes and advances each. It runs synchronously: no input can
  slip between a group's `effects()` and `advance()`.
- The fsync blocks the loop for its duration (~0.3-0.5 ms here). Messages that arrive
  meanwhile wait in the kernel and form the next batch, which is what batching wants.

A group halts on a CRC chain mismatch or an environmental apply failure; the node keeps
serving every other group. A storage failure stops the whole node: nothing can be made
durable any more.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from paxdb.errors import CorruptionError, OperationalError, ReplicaHalted, StorageError
from paxdb.net.transport import Transport
from paxdb.node.catchup import Checkpointer
from paxdb.node.config import CLIENT_PORT_OFFSET, Address, NodeConfig, format_address
from paxdb.node.group import Group
from paxdb.node.membership import MEMBERS_DATABASE, members_in_force
from paxdb.paxos.effects import Effects, Envelope, Record, Role
from paxdb.paxos.replica import ReplicaConfig
from paxdb.storage.file_log import FileLogStore

logger = logging.getLogger(__name__)

GROUPS_MAX = 256  # Databases one node will host.
DEFAULT_DATABASE = "main"  # Opened at start, so a fresh cluster elects its master at once.
FLUSH_ROUNDS_MAX = 64  # Effects rounds one flush may run before yielding to the loop.
TICK_BURST_MAX_LEASES = 2  # Ticks fed at once after a stall, in leases.


class NodeRuntime:
    def __init__(self, config: NodeConfig, on_fatal: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.node_id = config.node_id
        self.store = FileLogStore(config.data_dir / "log")
        self.groups: dict[str, Group] = {}
        # Where every node is: the bootstrap members, overridden by what the databases'
        # membership says (membership.py); `refresh_peers` keeps the transport in step.
        self.peers: dict[int, Address] = {**config.known, **config.peers}
        self.transport = Transport(
            config.node_id,
            config.cluster_id,
            config.listen,
            self.peers,
            config.secret,
            self._on_envelope,
        )
        self._flush_scheduled = False
        self._tick_origin = time.monotonic()
        self._ticks_done = 0
        self._ticker: asyncio.Task[None] | None = None
        self._on_fatal = on_fatal
        self.fatal: str | None = None
        self.client_address: tuple[str, int] | None = None  # Set once clients are served.
        self.started_at = time.time()
        self._seed = int.from_bytes(os.urandom(8), "big")
        self.checkpointer = Checkpointer(
            config.checkpoints,
            self.store.truncate_below,
            self.client_address_of,
            self.schedule_flush,
        )
        for name in sorted({DEFAULT_DATABASE, *self._existing_groups()}):
            self.group(name)
        self.refresh_peers(retain=False)

    def _existing_groups(self) -> list[str]:
        names = set(self.store.groups())
        groups_dir = self.config.data_dir / "groups"
        if groups_dir.is_dir():
            names.update(p.name for p in groups_dir.iterdir() if (p / "db.sqlite").exists())
        return sorted(names)

    # Lifecycle.

    async def start(self) -> None:
        await self.transport.start()
        self._ticker = asyncio.create_task(self._tick_forever())
        members = members_in_force(self.group(MEMBERS_DATABASE), self.config.peers)
        logger.info(
            "node %d serving peers on %s, clients on %s, voters %s, learners %s",
            self.node_id,
            format_address(self.config.listen),
            format_address(self.config.client),
            list(members.voters),
            list(members.learners),
        )

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        await self.transport.stop()
        await self.checkpointer.stop()
        if self.fatal is None:
            self._flush()
        for group in self.groups.values():
            group.fail_waiters(OperationalError("the node is stopping; retry at another node"))
            group.close()
        self.store.close()

    # Groups.

    def group(self, name: str) -> Group:
        """The group of database `name`, created on first use."""
        group = self.groups.get(name)
        if group is not None:
            return group
        if len(self.groups) >= GROUPS_MAX:
            raise StorageError(f"this node already hosts {GROUPS_MAX} databases")
        config = ReplicaConfig(
            self.node_id, name, self.config.members, self.config.options, self._seed
        )
        group = Group.open(config, self.store, self.config.data_dir / "groups" / name)
        self.groups[name] = group
        logger.info("group %s opened at instance %d", name, group.replica.instance)
        self.schedule_flush()
        return group

    # Input.

    def _on_envelope(self, envelope: Envelope) -> None:
        if self.fatal is not None:
            return
        try:
            group = self.group(envelope.group)
        except (StorageError, ValueError, OSError) as error:
            logger.warning("dropped a message for group %r: %s", envelope.group, error)
            return
        if group.halted is None:
            self._guard(group, lambda: group.replica.step(envelope))
            self.schedule_flush()

    async def _tick_forever(self) -> None:
        interval = self.config.tick_ms / 1000
        while True:
            next_tick = self._tick_origin + (self._ticks_done + 1) * interval
            await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
            self.catch_up_ticks()

    def catch_up_ticks(self) -> None:
        """Feed every tick real time says is due, before anything reads the lease.

        Lease safety needs the holder to never count *fewer* ticks than have passed: after
        the loop stalled (GC, swap, a paused VM), the missed ticks are fed at once, and
        the client server calls this before it trusts the lease. A burst is capped at
        `TICK_BURST_MAX_LEASES` leases: past that every lease has run out anyway.
        """
        interval = self.config.tick_ms / 1000
        due = int((time.monotonic() - self._tick_origin) / interval) - self._ticks_done
        if due <= 0:
            return
        self._ticks_done += due
        burst = min(due, TICK_BURST_MAX_LEASES * self.config.options.lease_ticks)
        for group in list(self.groups.values()):
            if group.halted is None:
                for _ in range(burst):
                    self._guard(group, group.replica.tick)
        self.schedule_flush()

    def _guard(self, group: Group, action: Callable[[], None]) -> None:
        try:
            action()
        except CorruptionError as error:
            group.halt(str(error))

    def schedule_flush(self) -> None:
        if not self._flush_scheduled and self.fatal is None:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    # Carrying out effects.

    def _flush(self) -> None:
        self._flush_scheduled = False
        for _ in range(FLUSH_ROUNDS_MAX):
            batch = [
                (group, group.replica.effects())
                for group in self.groups.values()
                if group.halted is None and group.replica.has_work()
            ]
            if not batch:
                return
            for _, effects in batch:  # The master's fsync overlaps its followers'.
                for envelope in effects.send:
                    if envelope.may_precede_persist:
                        self.transport.send(envelope)
            try:
                self._persist(batch)
            except (StorageError, OSError) as error:
                self._die(f"the Paxos log failed: {error}")
                return
            for group, effects in batch:
                self._carry_out(group, effects)
        self.schedule_flush()

    def _persist(self, batch: list[tuple[Group, Effects]]) -> None:
        records: list[tuple[str, Record]] = []
        sync = False
        for group, effects in batch:
            records.extend((group.name, record) for record in effects.persist)
            sync = sync or effects.must_sync
        if records:
            self.store.write_batch(records, sync)

    def _carry_out(self, group: Group, effects: Effects) -> None:
        for envelope in effects.send:
            if not envelope.may_precede_persist:
                self.transport.send(envelope)
        try:
            group.apply(effects.apply)
        except (ReplicaHalted, CorruptionError) as error:
            group.halt(str(error))
            return
        if group.members_changed:
            group.members_changed = False
            self.refresh_peers()
        group.complete(effects.completions)
        if effects.status is not None:
            self._log_status(group, effects)
        group.replica.advance(effects)
        if effects.apply:
            self.checkpointer.after_apply(group)
        if effects.need_checkpoint is not None:
            self.checkpointer.need_checkpoint(group, effects.need_checkpoint)

    def _log_status(self, group: Group, effects: Effects) -> None:
        """One line when the role, the master or the members change."""
        status = effects.status
        assert status is not None
        seen = (status.role, status.master)
        members = (status.members, status.learners)
        if group.logged_members != members:
            if group.logged_members is not None:
                logger.info(
                    "group %s: voters %s, learners %s",
                    group.name,
                    list(status.members),
                    list(status.learners),
                )
            group.logged_members = members
        if group.logged_role == seen:
            return
        group.logged_role = seen
        if status.role is Role.LEARNER:
            logger.info(
                "group %s: this node is a learner; master is node %s", group.name, status.master
            )
        elif status.role is Role.OUTSIDER:
            logger.info("group %s: this node is not a member", group.name)
        elif status.role is Role.MASTER:
            logger.info("group %s: this node is master", group.name)
        elif status.role is Role.FOLLOWER and status.master is None:
            logger.info("group %s: no master known; an election will follow", group.name)
        elif status.role is Role.FOLLOWER:
            logger.info("group %s: master is node %s", group.name, status.master)

    def _die(self, reason: str) -> None:
        self.fatal = reason
        logger.critical("node %d stops: %s", self.node_id, reason)
        for group in self.groups.values():
            group.halt(reason)
        if self._on_fatal is not None:
            self._on_fatal(reason)

    # Where the nodes are.

    def refresh_peers(self, retain: bool = True) -> None:
        """Rebuild the address book from the members in force in every database (`main`
        last, so it wins) and hand it to the transport: a node added by a membership
        change is dialled, and accepted when it dials us. A removed node is dropped at
        the next start (then it is refused when it dials us)."""
        # Nodes removed while this process runs stay: one that missed the value removing
        # it still learns it from us (its probes and our answers need the link).
        peers = {n: a for n, a in self.peers.items() if n != self.node_id and retain}
        main = self.groups.get(MEMBERS_DATABASE)
        if main is None or main.machine.members[1] is None:
            peers.update(self.config.known)  # Joining: what the cluster told us at start.
        for name in sorted(self.groups, key=lambda name: name == MEMBERS_DATABASE):
            try:
                peers.update(members_in_force(self.groups[name], self.config.peers).addresses)
            except ValueError as error:
                logger.error("group %s: unreadable members in force: %s", name, error)
        peers.pop(self.node_id, None)
        if peers != {n: a for n, a in self.peers.items() if n != self.node_id}:
            logger.info(
                "peers: %s",
                ", ".join(f"{n}={format_address(a)}" for n, a in sorted(peers.items())),
            )
            self.peers = peers
            self.transport.set_peers(peers)

    def client_address_of(self, node_id: int) -> Address:
        """Where node `node_id` serves clients (peer port + 1000 unless told otherwise)."""
        if node_id == self.node_id:
            return self.config.client
        host, port = self.peers[node_id]
        return host, port + CLIENT_PORT_OFFSET

    def client_address_text(self, node_id: int) -> str | None:
        if node_id == self.node_id and self.client_address is not None:
            return format_address(self.client_address)  # The bound port, even for port 0.
        if node_id != self.node_id and node_id not in self.peers:
            return None
        return format_address(self.client_address_of(node_id))

    # Queries.

    def master_client_address(self, group: Group) -> str | None:
        master = group.replica.master_hint
        if master is None and group.replica.is_master:
            master = self.node_id
        return None if master is None else self.client_address_text(master)

    def group_path(self, name: str) -> Path:
        return self.config.data_dir / "groups" / name / "db.sqlite"
