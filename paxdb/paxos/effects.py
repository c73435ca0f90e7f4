"""What the core hands back to its runtime: records, envelopes, chosen values, completions.

The runtime's contract (see paxos/__init__.py): persist `persist` (fsync if
`must_sync`), then send `send`, then apply `apply` in order, then resolve
`completions`, then call `advance(effects)`.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from enum import Enum

from paxdb.ids import Ballot
from paxdb.paxos.messages import Accept, Chosen, LogEntry, Message, Prepare
from paxdb.paxos.values import Value

# Records: what must reach the disk.


@dataclass(frozen=True, slots=True)
class AcceptorRecord:
    """The whole durable acceptor state of a group; each one replaces the previous.

    `promised` covers every instance from `instance` on; `accepted_*` is the vote at
    `instance` (None if none). Invariant: accepted_ballot <= promised.
    """

    promised: Ballot
    instance: int
    accepted_ballot: Ballot | None
    accepted_value: Value | None

    def __post_init__(self) -> None:
        assert (self.accepted_ballot is None) == (self.accepted_value is None)
        if self.accepted_ballot is not None:
            assert self.accepted_ballot <= self.promised


@dataclass(frozen=True, slots=True)
class ChosenRecord:
    """A chosen value, stored so it can be re-applied and served to lagging peers."""

    entry: LogEntry


@dataclass(frozen=True, slots=True)
class LogBaseRecord:
    """The log of this group now starts at `instance`; `chain` is chain[instance - 1].

    Written after a checkpoint is installed: every stored chosen value and acceptor
    vote below `instance` is dropped, and chosen values continue from `instance`.
    """

    instance: int
    chain: int


Record = AcceptorRecord | ChosenRecord | LogBaseRecord


@dataclass(frozen=True, slots=True)
class Envelope:
    group: str
    source: int
    target: int
    message: Message

    @property
    def may_precede_persist(self) -> bool:
        """True for messages a runtime may send before the records of the same Effects
        are durable (etcd's doc.go allows the same): a Prepare, an Accept or a Chosen
        notice claims nothing about this node's own acceptor state. Its own promise or
        vote only counts once a later input arrives, by which time the records of this
        Effects are durable; if it crashes first, that vote was never shown to anyone.
        Promise and Accepted replies, and everything else, wait for the persist."""
        return isinstance(self.message, Prepare | Accept | Chosen)


class Outcome(Enum):
    CHOSEN = "chosen"  # The request is in the value chosen at `instance`, item `index`.
    NOT_MASTER = "not_master"  # Refused: this node is not master; see `master_hint`.
    DROPPED = "dropped"  # Certainly not chosen (queue full, lost the instance); retry.


@dataclass(frozen=True, slots=True)
class Completion:
    token: Hashable
    outcome: Outcome
    instance: int = -1
    index: int = -1
    master_hint: int | None = None
    reason: str = ""


class Role(Enum):
    """What a replica is now. HALTED wins over everything, then MASTER; a voter is
    otherwise CANDIDATE or FOLLOWER; a non-voter is LEARNER (in the learners of the
    configuration in force at its instance) or OUTSIDER (in neither list: a joiner still
    catching up from its bootstrap configuration, or a removed node)."""

    FOLLOWER = "follower"
    CANDIDATE = "candidate"  # Trying to get a MASTER value naming itself chosen.
    MASTER = "master"  # Holds a valid lease.
    HALTED = "halted"
    LEARNER = "learner"
    OUTSIDER = "outsider"


@dataclass(frozen=True, slots=True)
class Status:
    role: Role
    master: int | None
    lease_ticks_left: int
    instance_next: int
    members: tuple[int, ...]
    learners: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Effects:
    persist: tuple[Record, ...] = ()
    must_sync: bool = False
    send: tuple[Envelope, ...] = ()
    apply: tuple[LogEntry, ...] = ()
    completions: tuple[Completion, ...] = ()
    status: Status | None = None
    need_checkpoint: int | None = None  # A peer whose log starts past ours: fetch its checkpoint.
    serial: int = field(default=0, compare=False)

    def is_empty(self) -> bool:
        return not (
            self.persist
            or self.send
            or self.apply
            or self.completions
            or self.status is not None
            or self.need_checkpoint is not None
        )


@dataclass(frozen=True, slots=True)
class CheckpointMeta:
    """What the core needs to start from a checkpoint instead of instance 0.

    The checkpoint holds the state machine after applying every instance below
    `instance_next`; `chain` is chain[instance_next - 1]; membership (voters and
    learners) and master are the ones in force at `instance_next`.
    """

    instance_next: int
    chain: int
    members: tuple[int, ...]
    members_version: int
    master: int | None
    master_version: int
    learners: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        assert self.instance_next >= 0
        assert self.members == tuple(sorted(set(self.members)))
        assert self.learners == tuple(sorted(set(self.learners)))
        assert not set(self.members) & set(self.learners)
        assert self.members_version < self.instance_next
        assert self.master_version < self.instance_next
