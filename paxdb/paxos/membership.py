"""Membership: the voters and learners of a group, changed through the log itself.

A `MEMBERSHIP` value chosen at instance i governs instances from i + 1 on. That is safe
because paxdb keeps one instance in flight (alpha = 1, see proposer.py): a proposer
proposes at instance i only after it learned every instance below i, so it always
uses the configuration that governs i, and so does every acceptor voting at i (an
acceptor votes only at its own current instance, having learned everything below).
`Membership.assert_governs` checks this. Because each instance is decided under exactly
one configuration, a change may replace any number of voters at once: no two quorums of
different configurations ever decide the same instance.

Voters and learners. `members` are the voters: their promises and votes make the
quorums. `learners` receive every Accept and Chosen notice the master sends, so they
learn in the steady state as fast as a voter, but they never vote (their acceptor drops
Prepare and Accept at an instance where they are not voters), never count toward a
quorum, never propose and never campaign. A node in neither list is an *outsider*: a
joiner still catching up from its bootstrap configuration, or a removed node; it learns
only by catch-up. A new node comes in as a learner, is promoted to voter once it caught
up, and a voter is removed (or demoted to learner) by another change.

Only one change may be in flight: the master refuses a MEMBERSHIP proposal while one is
queued or being proposed, and one whose `prev_version` is not the version in force (it
checks again when it takes the value from its queue). A MEMBERSHIP value chosen with a
stale `prev_version` changes nothing, exactly like master values. The master also
refuses a change that would leave it without a vote (transfer the master role first,
replica.py `transfer_master`). After a change, the master re-runs phase 1 with the new
configuration before it skips prepare again, so promise and accept quorums always come
from one configuration.

Payload. `to_value` writes `prev_version`, the voters and the learners as ASCII
(`"-1 1,2,3 4 "`) followed by `extra`, opaque bytes the runtime uses (the address
book). `from_value` reads untrusted bytes: it raises ValueError on anything but exactly
the canonical encoding of a valid change.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb.limits import LEARNERS_MAX, MEMBERS_MAX, MEMBERSHIP_EXTRA_MAX, NODE_ID_MAX
from paxdb.paxos.values import Value, ValueKind

NO_VERSION = -1


def quorum_size(member_count: int) -> int:
    assert member_count > 0
    return member_count // 2 + 1


def _is_id_list(ids: tuple[int, ...]) -> bool:
    return ids == tuple(sorted(set(ids))) and all(0 <= i <= NODE_ID_MAX for i in ids)


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """The payload of a MEMBERSHIP value: the complete new voter and learner lists."""

    members: tuple[int, ...]
    prev_version: int
    learners: tuple[int, ...] = ()
    extra: bytes = b""

    def __post_init__(self) -> None:
        problem = _problem(self.members, self.prev_version, self.learners, self.extra)
        assert problem is None, problem

    def to_value(self) -> Value:
        header = "{} {} {} ".format(
            self.prev_version,
            ",".join(str(member) for member in self.members),
            ",".join(str(learner) for learner in self.learners),
        )
        return Value(ValueKind.MEMBERSHIP, header.encode("ascii") + self.extra)

    @staticmethod
    def from_value(value: Value) -> MembershipChange:
        """Raises ValueError unless the value is a well-formed MEMBERSHIP value."""
        if value.kind is not ValueKind.MEMBERSHIP:
            raise ValueError("not a MEMBERSHIP value")
        parts = value.payload.split(b" ", 3)
        if len(parts) != 4:
            raise ValueError("MEMBERSHIP payload needs a version, voters, learners and extra")
        version_text, members_text, learners_text, extra = parts
        prev_version = int(version_text)
        members = _ids(members_text)
        learners = _ids(learners_text)
        problem = _problem(members, prev_version, learners, extra)
        if problem is not None:
            raise ValueError(f"MEMBERSHIP change invalid: {problem}")
        change = MembershipChange(members, prev_version, learners, extra)
        if change.to_value() != value:  # "+1", "01", "1_0": not how we write them.
            raise ValueError("MEMBERSHIP payload is not in canonical form")
        return change


def _ids(text: bytes) -> tuple[int, ...]:
    if len(text) > 12 * max(MEMBERS_MAX, LEARNERS_MAX):
        raise ValueError("MEMBERSHIP id list too long")
    return tuple(int(part) for part in text.split(b",")) if text else ()


def _problem(
    members: tuple[int, ...], prev_version: int, learners: tuple[int, ...], extra: bytes
) -> str | None:
    """Why these fields are not a valid change, or None."""
    if not members:
        return "a change must leave at least one voter"
    if len(members) > MEMBERS_MAX:
        return f"more than {MEMBERS_MAX} voters"
    if len(learners) > LEARNERS_MAX:
        return f"more than {LEARNERS_MAX} learners"
    if not _is_id_list(members) or not _is_id_list(learners):
        return "node ids must be sorted, unique and in range"
    if set(members) & set(learners):
        return "a node cannot be both voter and learner"
    if prev_version < NO_VERSION:
        return "prev_version out of range"
    if len(extra) > MEMBERSHIP_EXTRA_MAX:
        return f"extra is longer than {MEMBERSHIP_EXTRA_MAX} bytes"
    return None


@dataclass(slots=True)
class Membership:
    """The configuration in force at this replica's current instance."""

    members: tuple[int, ...]  # The voters.
    version: int = NO_VERSION  # Instance of the MEMBERSHIP value that set it.
    learners: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        assert self.members == tuple(sorted(set(self.members)))
        assert 0 < len(self.members) <= MEMBERS_MAX
        assert self.learners == tuple(sorted(set(self.learners)))
        assert len(self.learners) <= LEARNERS_MAX
        assert not set(self.members) & set(self.learners), "voter or learner, not both"

    @property
    def quorum(self) -> int:
        return quorum_size(len(self.members))

    def is_member(self, node_id: int) -> bool:
        """True for a voter."""
        return node_id in self.members

    def is_learner(self, node_id: int) -> bool:
        return node_id in self.learners

    def learn(self, change: MembershipChange, instance: int) -> bool:
        """Apply a chosen MEMBERSHIP value. Returns False if it was stale and ignored."""
        if change.prev_version != self.version:
            return False
        assert instance > self.version, "membership versions only increase"
        self.members = change.members
        self.learners = change.learners
        self.version = instance
        self.check()
        return True

    def assert_governs(self, instance: int) -> None:
        """The configuration used at `instance` was chosen strictly before it (alpha = 1)."""
        assert self.version < instance, (self.version, instance)
