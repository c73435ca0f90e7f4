"""Membership: the voting members of a group, changed through the log itself.

A `MEMBERSHIP` value chosen at instance i governs instances from i + 1 on. That is safe
because paxdb keeps one instance in flight (alpha = 1, see proposer.py): a proposer
proposes at instance i only after it learned every instance below i, so it always
uses the configuration that governs i. `Membership.assert_governs` checks this.

Only one change may be in flight: the proposer refuses a second MEMBERSHIP proposal
while one is queued or being proposed, and a MEMBERSHIP value whose `prev_version` is
not the current version is stale and ignored when applied, exactly like master values.
After a change, the master re-runs phase 1 with the new configuration before it skips
prepare again, so promise and accept quorums always come from one configuration.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb.limits import MEMBERS_MAX, NODE_ID_MAX
from paxdb.paxos.values import Value, ValueKind

NO_VERSION = -1


def quorum_size(member_count: int) -> int:
    assert member_count > 0
    return member_count // 2 + 1


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """The payload of a MEMBERSHIP value: the complete new member list."""

    members: tuple[int, ...]
    prev_version: int

    def __post_init__(self) -> None:
        assert self.members == tuple(sorted(set(self.members))), "members sorted, unique"
        assert 0 < len(self.members) <= MEMBERS_MAX
        assert all(0 <= member <= NODE_ID_MAX for member in self.members)

    def to_value(self) -> Value:
        text = f"{self.prev_version} " + ",".join(str(member) for member in self.members)
        return Value(ValueKind.MEMBERSHIP, text.encode("ascii"))

    @staticmethod
    def from_value(value: Value) -> MembershipChange:
        """Raises ValueError if the value is not a well-formed MEMBERSHIP value."""
        if value.kind is not ValueKind.MEMBERSHIP:
            raise ValueError("not a MEMBERSHIP value")
        version_text, _, members_text = value.payload.partition(b" ")
        members = tuple(int(part) for part in members_text.split(b",") if part)
        if members != tuple(sorted(set(members))) or not 0 < len(members) <= MEMBERS_MAX:
            raise ValueError("MEMBERSHIP members must be sorted, unique and few")
        if any(not 0 <= member <= NODE_ID_MAX for member in members):
            raise ValueError("MEMBERSHIP member id out of range")
        return MembershipChange(members, int(version_text))


@dataclass(slots=True)
class Membership:
    """The configuration in force at this replica's current instance."""

    members: tuple[int, ...]
    version: int = NO_VERSION  # Instance of the MEMBERSHIP value that set `members`.

    def __post_init__(self) -> None:
        assert self.members == tuple(sorted(set(self.members)))
        assert 0 < len(self.members) <= MEMBERS_MAX

    @property
    def quorum(self) -> int:
        return quorum_size(len(self.members))

    def is_member(self, node_id: int) -> bool:
        return node_id in self.members

    def learn(self, change: MembershipChange, instance: int) -> bool:
        """Apply a chosen MEMBERSHIP value. Returns False if it was stale and ignored."""
        if change.prev_version != self.version:
            return False
        assert instance > self.version, "membership versions only increase"
        self.members = change.members
        self.version = instance
        return True

    def assert_governs(self, instance: int) -> None:
        """The configuration used at `instance` was chosen strictly before it (alpha = 1)."""
        assert self.version < instance, (self.version, instance)
