"""Identifiers shared by every layer: nodes, groups, instances and ballots.

A ballot is ordered first by its number and then by the proposing node's id, so two
nodes never issue the same ballot, and every node can always pick a ballot higher than
any it has seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NewType

NodeId = NewType("NodeId", int)
GroupId = NewType("GroupId", str)
InstanceId = NewType("InstanceId", int)


@dataclass(frozen=True, slots=True, order=True)
class Ballot:
    """A proposal number. `Ballot.ZERO` is below every ballot any node issues."""

    number: int
    node_id: int

    def __post_init__(self) -> None:
        assert self.number >= 0
        assert self.node_id >= 0

    def next_for(self, node_id: int) -> Ballot:
        """The smallest ballot owned by `node_id` that is above this one."""
        return Ballot(self.number + 1, node_id)

    def __str__(self) -> str:
        return f"{self.number}.{self.node_id}"


BALLOT_ZERO = Ballot(0, 0)
