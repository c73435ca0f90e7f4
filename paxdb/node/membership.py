"""Who votes, who learns, and where they are: membership as the node layer sees it.

The core decides *who* votes (MEMBERSHIP values, paxos/membership.py). This module adds
*where*: every MEMBERSHIP value paxdb proposes carries, in its opaque `extra`, the
address book of the new configuration (node id -> peer address, for every voter and
learner), and each replica stores the value in force in its own database
(`_paxdb_members`, written in the transaction that applies it), so a checkpoint or a
backup carries the members it belongs to. Before the first change the bootstrap
members (`--peers`, cluster.json) are in force.

Changes are requested with a `MembersRequest` (`paxdb members URL add|remove`, or a
node started with `--join URL`) and carried out by the master of database `main`
(`MembersService`), one at a time, each computed from the configuration in force:
- add: the node becomes a *learner* (it receives every value but does not vote); a
  node started without `--learner` asks to be promoted once it has caught up
  (join.py), so it never weakens the quorum while it is still copying the data;
- promote: a learner becomes a voter;
- remove: a learner or voter leaves. The master never removes itself: it first hands
  the master role to another voter (`Replica.transfer_master`) and answers NotMaster
  naming it, and the client asks again there.
Every operation is idempotent (adding a node that is there at the same address, or
removing one that is gone, succeeds with nothing to do), so a client may retry freely.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paxdb import errors, limits
from paxdb.node.config import Address, ConfigError, format_address, parse_address
from paxdb.paxos.membership import MembershipChange
from paxdb.paxos.values import Value, ValueKind

if TYPE_CHECKING:
    from paxdb.node.group import Group, WriteOutcome
    from paxdb.node.runtime import NodeRuntime

logger = logging.getLogger(__name__)

ADDRESS_BOOK_BYTES_MAX = limits.MEMBERSHIP_EXTRA_MAX
MEMBERS_DATABASE = "main"  # The database whose master carries out membership changes.


def encode_addresses(addresses: dict[int, Address], follows: int = -1) -> bytes:
    """The `extra` of a MEMBERSHIP value: the address book, and for a database other
    than `main` the version of `main`'s members it follows (-1 for `main` itself)."""
    book = {str(node_id): format_address(addresses[node_id]) for node_id in sorted(addresses)}
    data = json.dumps({"a": book, "f": follows}, separators=(",", ":"), sort_keys=True).encode()
    if len(data) > ADDRESS_BOOK_BYTES_MAX:
        raise errors.ProgrammingError("the members' addresses are too long to replicate")
    return data


def decode_addresses(data: bytes) -> tuple[dict[int, Address], int]:
    """(addresses, follows). Raises ValueError unless `data` is what `encode_addresses`
    makes."""
    if len(data) > ADDRESS_BOOK_BYTES_MAX:
        raise ValueError("address book too long")
    extra = json.loads(data)
    if not isinstance(extra, dict) or not isinstance(extra.get("a"), dict):
        raise ValueError("address book is not a map")
    follows = extra.get("f")
    if type(follows) is not int or follows < -1:
        raise ValueError("address book names no version of main it follows")
    try:
        book = {
            int(key): parse_address(str(text), f"node {key}") for key, text in extra["a"].items()
        }
    except ConfigError as error:
        raise ValueError(str(error)) from None
    return book, follows


@dataclass(frozen=True, slots=True)
class ClusterMembers:
    """The configuration in force after a replica's applied instance."""

    voters: tuple[int, ...]
    learners: tuple[int, ...]
    version: int  # Instance of the MEMBERSHIP value that set it; -1 for the bootstrap.
    addresses: dict[int, Address]
    follows: int = -1  # The version of main's members it copies (databases but main).

    def role_of(self, node_id: int) -> str:
        if node_id in self.voters:
            return "voter"
        return "learner" if node_id in self.learners else "none"

    def change(
        self,
        voters: tuple[int, ...],
        learners: tuple[int, ...],
        addresses: dict[int, Address],
        follows: int | None = None,
    ) -> MembershipChange:
        kept = set(voters) | set(learners)
        book = {node_id: address for node_id, address in addresses.items() if node_id in kept}
        return MembershipChange(
            tuple(sorted(voters)),
            self.version,
            tuple(sorted(learners)),
            encode_addresses(book, self.follows if follows is None else follows),
        )


def members_in_force(group: Group, bootstrap: dict[int, Address]) -> ClusterMembers:
    """What `group`'s database says is in force (the bootstrap members before any change)."""
    version, payload = group.machine.members
    if payload is None:
        return ClusterMembers(tuple(sorted(bootstrap)), (), -1, dict(bootstrap))
    change = MembershipChange.from_value(Value(ValueKind.MEMBERSHIP, payload))
    addresses, follows = decode_addresses(change.extra)
    return ClusterMembers(change.members, change.learners, version, addresses, follows)


def plan(
    current: ClusterMembers, operation: str, node_id: int, address: Address | None
) -> MembershipChange | None:
    """The change that carries out `operation` on `current`; None if there is nothing to
    do. Raises ProgrammingError for a request that cannot be carried out."""
    voters, learners = list(current.voters), list(current.learners)
    addresses = dict(current.addresses)
    present = current.role_of(node_id)
    if operation == "add":
        if address is None:
            raise errors.ProgrammingError("add needs the node's peer address: ID=HOST:PORT")
        if present != "none":
            known = current.addresses.get(node_id)
            if known != address:
                raise errors.ProgrammingError(
                    f"node {node_id} is already a {present} at "
                    f"{format_address(known) if known else 'an unknown address'}; remove it "
                    "first to move it"
                )
            return None
        clash = [n for n, a in current.addresses.items() if a == address and n != node_id]
        if clash:
            raise errors.ProgrammingError(
                f"{format_address(address)} is node {clash[0]}'s address; remove node "
                f"{clash[0]} first"
            )
        learners.append(node_id)
        addresses[node_id] = address
    elif operation == "promote":
        if present == "voter":
            return None
        if present == "none":
            raise errors.ProgrammingError(f"node {node_id} is not a learner; add it first")
        learners.remove(node_id)
        voters.append(node_id)
    elif operation == "remove":
        if present == "none":
            return None
        if present == "voter":
            if len(voters) == 1:
                raise errors.ProgrammingError(
                    f"node {node_id} is the only voter; add another first"
                )
            voters.remove(node_id)
        else:
            learners.remove(node_id)
    else:
        raise errors.ProgrammingError(f"unknown membership operation {operation!r}")
    return current.change(tuple(voters), tuple(learners), addresses)


def _describe(node_id: int, members: ClusterMembers) -> str:
    role = members.role_of(node_id)
    if role == "none":
        return f"node {node_id} is not a member"
    return f"node {node_id} is a {role}"


Submit = Callable[["Group", Callable[[object], None]], Awaitable["WriteOutcome"]]


class MembersService:
    """Carries out membership requests on the master of `main`.

    `submit(group, start)` registers a waiter under a fresh token, calls `start(token)`
    (which hands the token to the core) and returns the outcome; the client server
    provides it, so this module needs no knowledge of its waiters or timeouts."""

    def __init__(
        self,
        node_id: int,
        bootstrap: dict[int, Address],
        submit: Submit,
        is_up: Callable[[int], bool],
    ) -> None:
        self.node_id = node_id
        self.bootstrap = bootstrap
        self.submit = submit
        self._is_up = is_up

    async def carry_out(
        self, group: Group, operation: str, node_id: int, address: Address | None
    ) -> tuple[int, str]:
        """(instance, what happened). Raises NotMaster (with the master to ask),
        ProposalDropped (retry), or ProgrammingError (the request cannot be done)."""
        replica = group.replica
        if not replica.is_master:
            raise errors.NotMaster(master_hint=replica.master_hint)
        current = members_in_force(group, self.bootstrap)
        if current.version != replica.membership.version:
            raise errors.ProposalDropped("a membership change is being applied; retry")
        change = plan(current, operation, node_id, address)
        if change is None:
            return current.version, f"nothing to do: {_describe(node_id, current)}"
        self._check_quorum_stays_up(change, current)
        if node_id == self.node_id and node_id not in change.members:
            await self.hand_over(group, current, keep=change.members)  # Raises NotMaster.
        value = change.to_value()
        outcome = await self.submit(group, lambda token: replica.propose(value, token))
        if outcome.refused is not None:
            if outcome.master_hint is not None or not replica.is_master:
                raise errors.NotMaster(master_hint=outcome.master_hint)
            raise errors.ProposalDropped(f"the change was not made ({outcome.reason}); retry")
        now = members_in_force(group, self.bootstrap)
        if now.version != outcome.instance:
            raise errors.ProposalDropped("another membership change came first; retry")
        done = {"add": "added as a learner", "promote": "promoted to voter", "remove": "removed"}
        return outcome.instance, (
            f"node {node_id} {done[operation]}, from instance {outcome.instance + 1}"
        )

    def _check_quorum_stays_up(self, change: MembershipChange, current: ClusterMembers) -> None:
        """Refuse a change after which fewer than a majority of the voters are up (as far
        as this node's links tell): the cluster would stop, and nodes behind the rejoin
        fence could never lift it. Removing a dead voter, or adding a learner, passes."""
        if change.members == current.voters:
            return
        up = [v for v in change.members if v == self.node_id or self._is_up(v)]
        needed = len(change.members) // 2 + 1
        if len(up) < needed:
            raise errors.ProgrammingError(
                f"after this change the voters would be {list(change.members)}, of which "
                f"only {sorted(up)} are up; {needed} must be: start the others first"
            )

    async def hand_over(self, group: Group, current: ClusterMembers, keep: tuple[int, ...]) -> None:
        """Move the master role to another voter (one in `keep` if any, one that is up
        if any), then raise NotMaster naming it, so the client asks there."""
        others = [voter for voter in current.voters if voter != self.node_id]
        staying = [voter for voter in others if voter in keep]
        others = staying or others
        if not others:
            raise errors.ProgrammingError(
                f"node {self.node_id} is the only voter; add another first"
            )
        target = min(others, key=lambda voter: (not self._is_up(voter), voter))
        replica = group.replica
        outcome = await self.submit(group, lambda token: replica.transfer_master(target, token))
        if outcome.refused is not None:
            raise errors.ProposalDropped(
                f"could not hand the master role to node {target} ({outcome.reason}); retry"
            )
        raise errors.NotMaster(
            f"node {self.node_id} was the master; it handed the role to node {target} "
            "before leaving: ask there",
            master_hint=target,
        )


FOLLOW_EVERY_S = 0.5  # How often a master compares its database's members with main's.


class MembersFollower:
    """Keeps every other database's members equal to `main`'s.

    Membership requests change `main` only. On each node, for each database this node
    is master of, this task compares the database's members with `main`'s (as this node
    applied them) and proposes one change at a time towards them: a node new to the
    database joins it as a learner first and is promoted in the next step, so a voter
    never counts before it received the database's values; a master that is leaving
    the database hands the master role to a voter that stays first. Every database thus
    ends with `main`'s voters, learners and addresses, whichever node is master where.
    """

    def __init__(self, runtime: NodeRuntime, service: MembersService) -> None:
        self.runtime = runtime
        self.service = service

    async def run(self) -> None:
        while True:
            await asyncio.sleep(FOLLOW_EVERY_S)
            for name, group in list(self.runtime.groups.items()):
                if name == MEMBERS_DATABASE or group.halted is not None:
                    continue
                try:
                    await self._follow(group)
                except (errors.DatabaseError, ValueError) as error:
                    logger.info("database %s: following main's members: %s", name, error)

    async def _follow(self, group: Group) -> None:
        main = self.runtime.groups.get(MEMBERS_DATABASE)
        replica = group.replica
        if main is None or not replica.is_master:
            return
        bootstrap = self.runtime.config.peers
        wanted = members_in_force(main, bootstrap)
        current = members_in_force(group, bootstrap)
        if current.version != replica.membership.version:
            return  # A change is being applied.
        step = next_step(current, wanted)
        if step is None:
            return
        node_id = self.runtime.node_id
        if node_id in current.voters and node_id not in step.members:
            await self.service.hand_over(group, current, keep=step.members)
            return
        outcome = await self.service.submit(
            group, lambda token: replica.propose(step.to_value(), token)
        )
        if outcome.refused is None:
            logger.info(
                "database %s follows main: voters %s, learners %s",
                group.name,
                list(step.members),
                list(step.learners),
            )


def next_step(current: ClusterMembers, wanted: ClusterMembers) -> MembershipChange | None:
    """The next change taking `current` towards `wanted` (main's members, version
    `wanted.version`); None when they agree, or when `wanted` is older than what
    `current` already follows (this node's `main` lags: following it would undo a
    newer step). Nodes new to `current` come in as learners; a step never leaves no
    voter."""
    if wanted.version < current.follows:
        return None
    present = set(current.voters) | set(current.learners)
    newcomers = (set(wanted.voters) | set(wanted.learners)) - present
    if newcomers:
        learners = tuple(sorted(set(current.learners) | newcomers))
        addresses = {**current.addresses, **{n: wanted.addresses[n] for n in newcomers}}
        return current.change(current.voters, learners, addresses, wanted.version)
    same = (
        current.voters == wanted.voters
        and current.learners == wanted.learners
        and current.addresses == wanted.addresses
    )
    if same or not wanted.voters:
        return None
    return current.change(wanted.voters, wanted.learners, wanted.addresses, wanted.version)
