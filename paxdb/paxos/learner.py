"""The learner role: chosen detection, in-order learning with the CRC chain, catch-up.

Theory of operation. A replica learns instance i only after it learned i - 1, so what
it learned is always a gap-free prefix 0..instance_next-1, and it hands values to the
state machine in exactly that order. It learns a value in one of three ways:
- as the proposer that saw a quorum accept it;
- from a `Chosen` notice for a ballot its own acceptor voted for (the value is local);
- from a `CatchupReply` carrying the values themselves, many per message.

Every learned value extends the chain: chain[i] = crc32(value[i], chain[i-1]). A value
whose chain, as sent by a peer, differs from the one computed here means the replicas
diverged or a disk lied: the replica raises `CorruptionError` and stops for good.

A replica notices it is behind when a message names a later instance, and every
`catchup_probe_ticks` it asks a peer anyway (round robin), so a replica that missed
every notice still catches up. At most one catch-up request is outstanding; it is
re-sent to the next peer after `catchup_timeout_ticks`. A peer whose log no longer
holds the instance we need (it was truncated behind a checkpoint) answers with its
`instance_min`, and the learner asks the runtime for that peer's checkpoint.

A fenced replica (fence.py) probes every other member instead of one, with a nonce,
and learns from the answers like from any other catch-up reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb.errors import CorruptionError
from paxdb.paxos.acceptor import AcceptorState
from paxdb.paxos.chain import chain_next
from paxdb.paxos.logview import LogReader
from paxdb.paxos.messages import CatchupReply, LogEntry


def verify_entry(group: str, chain_previous: int, entry: LogEntry) -> None:
    """Raise CorruptionError unless `entry.chain` extends `chain_previous` by its value."""
    expected = chain_next(chain_previous, entry.value)
    if expected != entry.chain:
        raise CorruptionError(
            f"group {group!r}: CRC chain mismatch at instance {entry.instance} "
            f"(computed {expected:#010x}, peer has {entry.chain:#010x}); this replica "
            "diverged and has stopped: restore it from a healthy peer"
        )


def build_reply(
    log: LogReader,
    group: str,
    instance: int,
    values_max: int,
    bytes_max: int,
    acceptor: AcceptorState,
    fenced: bool,
    nonce: int,
) -> CatchupReply:
    """Chosen values from `instance` on, bounded, with this log's bounds, and what a
    rejoining peer's fence needs to know about our acceptor (fence.py)."""
    assert instance >= 0
    assert nonce >= 0
    bounds = log.chosen_bounds(group)
    entries: list[LogEntry] = []
    if bounds.instance_min <= instance < bounds.instance_next:
        high = min(bounds.instance_next, instance + values_max)
        entries = log.chosen_range(group, instance, high, bytes_max)
        assert entries and entries[0].instance == instance
    return CatchupReply(
        bounds.instance_min,
        bounds.instance_next,
        tuple(entries),
        acceptor.vote_instance,
        acceptor.promised,
        fenced,
        nonce,
    )


@dataclass(slots=True)
class CatchupState:
    """The one outstanding catch-up request, and the probe schedule."""

    peer: int | None = None
    sent_tick: int = 0
    probe_cursor: int = 0
    next_probe_tick: int = 0

    def may_request(self, now: int, timeout_ticks: int) -> bool:
        return self.peer is None or now - self.sent_tick >= timeout_ticks

    def requested(self, peer: int, now: int) -> None:
        self.peer = peer
        self.sent_tick = now

    def answered(self, peer: int) -> None:
        if self.peer == peer:
            self.peer = None

    def next_probe_peer(self, peers: list[int]) -> int | None:
        if not peers:
            return None
        peer = peers[self.probe_cursor % len(peers)]
        self.probe_cursor += 1
        return peer
