"""A replica's pending output: what it decided since its runtime last took its effects.

Theory of operation. Every input (`step`, `tick`, `propose`, `transfer_master`,
`restore`) may queue records to persist, envelopes to send, chosen values to apply and
completions; they accumulate here, in the order they were decided, until
`Replica.effects()` takes them all in one `Effects` and the outbox starts empty again.
The runtime carries them out in that order (paxos/__init__.py), so a record queued
before an envelope is durable before the envelope leaves.

Invariant of `persist`: after the last queued log base, at most one acceptor record is
queued, and it is the newest acceptor state (an older one would be overwritten by the
newer in the same batch anyway). An acceptor record queued *before* a log base stays:
the base makes the store drop older acceptor records, so the promise is written again
ahead of it (`startup.rebase_log`).
"""

from __future__ import annotations

from paxdb.paxos.effects import AcceptorRecord, Completion, Envelope, LogBaseRecord, Record
from paxdb.paxos.messages import LogEntry


class Outbox:
    """Records, envelopes, chosen values and completions not yet handed to the runtime."""

    __slots__ = ("persist", "must_sync", "send", "apply", "completions", "need_checkpoint")

    def __init__(self) -> None:
        self.persist: list[Record] = []
        self.must_sync = False
        self.send: list[Envelope] = []
        self.apply: list[LogEntry] = []
        self.completions: list[Completion] = []
        self.need_checkpoint: int | None = None  # A peer to fetch a checkpoint from.

    def reset(self) -> None:
        """Empty, after `Replica.effects()` took everything."""
        self.persist = []
        self.must_sync = False
        self.send = []
        self.apply = []
        self.completions = []
        self.need_checkpoint = None

    def has_output(self) -> bool:
        return bool(
            self.persist
            or self.send
            or self.apply
            or self.completions
            or self.need_checkpoint is not None
        )

    def persist_acceptor(self, record: AcceptorRecord) -> None:
        """Queue the acceptor state, replacing any acceptor record queued after the last
        log base (one before a base stays: see the module docstring)."""
        kept = 0
        for index, queued in enumerate(self.persist):
            if isinstance(queued, LogBaseRecord):
                kept = index + 1
        tail: list[Record] = [r for r in self.persist[kept:] if not isinstance(r, AcceptorRecord)]
        self.persist = self.persist[:kept] + tail
        self.persist.append(record)
        self.must_sync = True

    def persist_log_base(self, instance: int, chain: int) -> None:
        self.persist.append(LogBaseRecord(instance, chain))
        self.must_sync = True
