"""Messages between replicas of one Paxos group. One frozen dataclass per message type.

Every message travels inside an `Envelope` (effects.py) naming group, source and target.
Messages may be lost, duplicated, delayed and reordered; nothing here relies on the
transport being reliable or ordered (STYLE.md section 5).

Phase 1 (`Prepare` -> `Promise`/`Reject`) covers every instance from `instance` on: an
acceptor votes only at its own current instance (the first it has not learned chosen),
so a promise quorum gathered at instance i also proves that no lower ballot can be
chosen at any later instance. That is what lets a master skip phase 1 afterwards.
Phase 2 is `Accept` -> `Accepted`/`Reject`; `Chosen` tells everyone the outcome.
A replica that is ahead answers a message about an instance it has already learned
with a `CatchupReply`, which is also the answer to `CatchupRequest`.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb.ids import BALLOT_ZERO, Ballot
from paxdb.paxos.values import Value


@dataclass(frozen=True, slots=True)
class Prepare:
    ballot: Ballot
    instance: int


@dataclass(frozen=True, slots=True)
class Promise:
    """A promise for `ballot` at every instance from `instance` on.

    `accepted_ballot`/`accepted_value` are the acceptor's vote at `instance`, if any.
    """

    ballot: Ballot
    instance: int
    accepted_ballot: Ballot | None
    accepted_value: Value | None


@dataclass(frozen=True, slots=True)
class Accept:
    """Phase 2 request. `chain_previous` is the proposer's chain before `instance`.

    `previous_ballot`, when known, is the ballot with which `instance - 1` was chosen:
    an acceptor that voted for that ballot there learns it from the Accept itself, so
    a lost or late `Chosen` notice does not stall the steady state.
    """

    ballot: Ballot
    instance: int
    value: Value
    chain_previous: int
    previous_ballot: Ballot | None = None


@dataclass(frozen=True, slots=True)
class Accepted:
    ballot: Ballot
    instance: int


@dataclass(frozen=True, slots=True)
class Reject:
    """`ballot` was refused at `instance` because the acceptor promised `promised`."""

    ballot: Ballot
    instance: int
    promised: Ballot


@dataclass(frozen=True, slots=True)
class Chosen:
    """The value accepted with `ballot` at `instance` is chosen; `chain` is chain[instance]."""

    ballot: Ballot
    instance: int
    chain: int


@dataclass(frozen=True, slots=True)
class CatchupRequest:
    """Send me chosen values from `instance` on.

    A nonzero `nonce` makes it a fence probe of a rejoining replica (fence.py): the
    peer answers even when it holds nothing from `instance` on, and echoes the nonce.
    """

    instance: int
    nonce: int = 0


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One chosen value with the chain after it."""

    instance: int
    value: Value
    chain: int


@dataclass(frozen=True, slots=True)
class CatchupReply:
    """Chosen values from the sender's log.

    `entries` are consecutive, starting at the requested instance when the sender still
    has it. `instance_min` is the first instance the sender still holds (below it the log
    was truncated behind a checkpoint); `instance_next` is the first instance the sender
    has not learned.

    What a rejoining replica's fence needs (fence.py): `vote_instance` is the instance of
    the sender's newest acceptor record (at least every instance where it promised or
    accepted anything; -1 if it never wrote one), `promised` its promised ballot,
    `fenced` whether it is itself still fenced, and `nonce` the nonce of the request it
    answers (0 if none).
    """

    instance_min: int
    instance_next: int
    entries: tuple[LogEntry, ...]
    vote_instance: int = -1
    promised: Ballot = BALLOT_ZERO
    fenced: bool = False
    nonce: int = 0


Message = Prepare | Promise | Accept | Accepted | Reject | Chosen | CatchupRequest | CatchupReply

MESSAGE_TYPES: tuple[type, ...] = (
    Prepare,
    Promise,
    Accept,
    Accepted,
    Reject,
    Chosen,
    CatchupRequest,
    CatchupReply,
)
