"""The replica: one node's member of one Paxos group, composing every role.

Theory of operation. `Replica` owns all state changes; the role modules compute
decisions (acceptor.py, proposer.py, learner.py, master.py, membership.py). Input comes
only through `step(envelope)`, `tick()`, `propose(value, token)` and `restore(meta)`;
output accumulates until the runtime takes it with `effects()` and confirms it with
`advance(effects)` (the loop is documented in paxos/__init__.py). No input may arrive
between `effects()` and `advance()`: everything taken out in one `Effects` must be
carried out (persist, then send, then apply, then complete) before the core moves on.

Messages a replica addresses to itself are processed at once, inside the same input,
so the proposer's own promise and vote count like anyone else's; their records are in
the same `Effects` and thus durable before any message that depends on them leaves.

What the replica decides (`_maybe_propose`), at its current instance, when idle:
1. as the master whose lease is due for renewal (or lapsed): a MASTER value for itself;
2. as the master: the next batch of queued requests;
3. as a voting member that believes in no master, after a seeded random delay: a
   MASTER value for itself (campaigning); at once if a hand-over named it master.
As the master handing its role over (`transfer_master`), it proposes nothing but the
hand-over (master.py). A replica that is not a voter at its current instance (a learner
or an outsider, membership.py) proposes nothing and votes for nothing: it learns from
the Accept and Chosen messages it is sent (keeping the value of an Accept it heard, so a
Chosen notice or the next Accept names it), and by catch-up.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field

from paxdb.errors import CorruptionError, StorageError, UsageError
from paxdb.ids import BALLOT_ZERO, Ballot
from paxdb.paxos import acceptor as acceptor_rules
from paxdb.paxos.acceptor import AcceptorState
from paxdb.paxos.chain import CHAIN_START, chain_next
from paxdb.paxos.effects import (
    AcceptorRecord,
    CheckpointMeta,
    ChosenRecord,
    Completion,
    Effects,
    Envelope,
    LogBaseRecord,
    Outcome,
    Record,
    Role,
    Status,
)
from paxdb.paxos.fence import NONCE_MAX, Fence
from paxdb.paxos.history import ConfigEntry, ConfigHistory
from paxdb.paxos.learner import CatchupState, build_reply, verify_entry
from paxdb.paxos.logview import LogReader
from paxdb.paxos.master import Handover, MasterClaim, MasterState, drift_margin_ticks
from paxdb.paxos.membership import Membership, MembershipChange
from paxdb.paxos.messages import (
    Accept,
    Accepted,
    CatchupReply,
    CatchupRequest,
    Chosen,
    LogEntry,
    Message,
    Prepare,
    Promise,
    Reject,
)
from paxdb.paxos.options import Options
from paxdb.paxos.proposer import Batch, Phase, Proposer
from paxdb.paxos.stats import Stats
from paxdb.paxos.values import Value, ValueKind, decode_batch

_MASK64 = (1 << 64) - 1
SYNCHRONOUS_ROUNDS_MAX = 64  # Rounds one input may finish when no peer is needed.


class Jitter:
    """A tiny seeded PRNG (splitmix64): the core's only source of randomness."""

    __slots__ = ("_state",)

    def __init__(self, seed: int) -> None:
        self._state = seed & _MASK64

    def below(self, bound: int) -> int:
        assert bound > 0
        self._state = (self._state + 0x9E3779B97F4A7C15) & _MASK64
        z = self._state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        return (z ^ (z >> 31)) % bound


@dataclass(frozen=True, slots=True)
class ReplicaConfig:
    node_id: int
    group: str
    members: tuple[int, ...]  # The bootstrap configuration, identical on every node.
    options: Options = field(default_factory=Options)
    seed: int = 0

    def __post_init__(self) -> None:
        assert self.node_id >= 0
        assert self.group
        assert self.members == tuple(sorted(set(self.members)))


class Replica:
    """One node's replica of one group. Synchronous, pure, deterministic given its inputs."""

    def __init__(
        self,
        config: ReplicaConfig,
        log: LogReader,
        applied_next: int = 0,
        base: CheckpointMeta | None = None,
        rejoining: bool = False,
    ) -> None:
        """`rejoining`: this node's data directory was created empty, so it may have
        forgotten promises and votes of an earlier life under the same node id; the
        replica stays fenced until that cannot matter (fence.py). Pass it on every start
        of such a directory: once the fence lifted, the acceptor record on disk says so
        and the flag is ignored."""
        self.config = config
        self.node_id = config.node_id
        self.group = config.group
        self.options = config.options
        self.log = log
        self.stats = Stats()
        self.now = 0
        self.jitter = Jitter(config.seed * 1_000_003 + config.node_id)
        self.margin_ticks = drift_margin_ticks(self.options.lease_ticks, self.options.drift_ppm)
        self.proposer = Proposer(self.node_id, self.options, self.stats)
        self.history = ConfigHistory(self.options.config_history_max)
        self.catchup = CatchupState()
        self.halted: CorruptionError | None = None
        self._master_issue: tuple[bytes, int] | None = None  # Our MASTER value, issue tick.
        self.handover: Handover | None = None  # While handing the master role over.
        self._kept_lease_end: int | None = None  # Only for the transfer-keeps-lease mutant.
        # An Accept at our current instance that our acceptor did not vote for (we are
        # not a voter, or fenced): its value lets us learn from Chosen or the next Accept.
        self.heard: tuple[Ballot, Value] | None = None
        self.previous_ballot: Ballot | None = None  # Ballot that chose `instance - 1`.
        self._held_apply: list[LogEntry] = []  # Learned while a replay is still running.
        self._persist: list[Record] = []
        self._must_sync = False
        self._send: list[Envelope] = []
        self._apply: list[LogEntry] = []
        self._completions: list[Completion] = []
        self._need_checkpoint: int | None = None
        self._effects_out = False
        self._last_status: tuple[object, ...] | None = None
        self.fence: Fence | None = None  # While fenced (fence.py).
        self.shy: Fence | None = None  # After a bootstrap lift, until a majority is in.
        record = log.load_acceptor(self.group)
        if rejoining and self.options.mutant != "rejoin-without-fence":
            if record is None:  # Only a lift writes a record while rejoining.
                self.fence = Fence(1 + self.jitter.below(NONCE_MAX))
            elif record.promised == BALLOT_ZERO:  # Lifted by bootstrap, no promise yet.
                self.shy = Fence(1 + self.jitter.below(NONCE_MAX))
        self._load(log, applied_next, base)
        self.campaign_tick = self.now + self._election_delay()

    # Start-up.

    def _load(self, log: LogReader, applied_next: int, base: CheckpointMeta | None) -> None:
        bounds = log.chosen_bounds(self.group)
        # A log that starts at 0 may still start from a seeded chain (paxdb restore).
        first_chain = bounds.chain_before if bounds.instance_min == 0 else CHAIN_START
        start = base or CheckpointMeta(0, first_chain, self.config.members, -1, None, -1, ())
        if bounds.instance_min > start.instance_next:
            raise StorageError(
                f"group {self.group!r}: the log starts at {bounds.instance_min} but no "
                "checkpoint covers what came before; restore this node from a peer"
            )
        if applied_next < min(bounds.instance_min, start.instance_next):
            raise StorageError(
                f"group {self.group!r}: the database applied up to {applied_next - 1} but "
                f"the log starts at {bounds.instance_min}; restore this node from a peer"
            )
        self.membership = Membership(start.members, start.members_version, start.learners)
        self.master = MasterState(start.master, start.master_version)
        if start.master is not None:
            self.master.view_end_tick = self.options.lease_ticks + self.margin_ticks
        self.history.reset(self._config_from(start.instance_next))
        is_empty = bounds.instance_min == bounds.instance_next
        reseeded = is_empty and start.chain != bounds.chain_before
        rebase = start.instance_next > bounds.instance_next or reseeded
        if rebase:
            self.instance = start.instance_next
            self.chain = start.chain
        else:
            self.instance, self.chain = self._scan_log(log, start, bounds.instance_next)
        self.acceptor = AcceptorState.from_record(log.load_acceptor(self.group), self.instance)
        if rebase:
            self._rebase_log(start.instance_next, start.chain)
        self.proposer.observe_ballot(self.acceptor.promised)
        self.proposer.ballot = self.acceptor.promised
        self.replay_next = min(max(applied_next, start.instance_next), self.instance)
        self.replay_end = self.instance

    def _scan_log(self, log: LogReader, start: CheckpointMeta, end: int) -> tuple[int, int]:
        """Re-learn master and membership from the stored values after the checkpoint."""
        instance, chain = start.instance_next, start.chain
        if instance > 0:
            previous = log.chosen_range(self.group, instance - 1, instance, 1)
            if previous:
                assert previous[0].chain == chain, "checkpoint chain disagrees with the log"
        while instance < end:
            chunk = log.chosen_range(self.group, instance, end, self.options.catchup_bytes_max)
            assert chunk and chunk[0].instance == instance, "stored log has a gap"
            for entry in chunk:
                verify_entry(self.group, chain, entry)
                chain = entry.chain
                self._learn_system_value(entry, issue_tick=None)
            instance = chunk[-1].instance + 1
        return instance, chain

    # Public input.

    def step(self, envelope: Envelope) -> None:
        """Input from a peer. Bad input is dropped and counted, never raised."""
        self._require_input()
        if envelope.group != self.group or envelope.target != self.node_id:
            self.stats.bump("drop_misaddressed")
            return
        if envelope.source == self.node_id:
            self.stats.bump("drop_from_self")
            return
        self._dispatch(envelope.source, envelope.message)
        self._after_input()

    def tick(self) -> None:
        self._require_input()
        self.now += 1
        if not self._holds_lease() and self.proposer.queue:
            self._refuse_queue()
        if self.proposer.timed_out(self.now):
            self._on_round_timeout()
        if self.catchup.peer is not None and self.catchup.may_request(
            self.now, self.options.catchup_timeout_ticks
        ):
            self.catchup.peer = None
            self.stats.bump("catchup_timeout")
        if self.now >= self.catchup.next_probe_tick:
            self.catchup.next_probe_tick = self.now + self.options.catchup_probe_ticks
            fence = self.fence or self.shy
            if fence is not None:
                self._probe_fence(fence)
            else:
                self._probe()
        self._after_input()

    def propose(self, value: Value, token: Hashable) -> None:
        """A local request; its outcome arrives as a `Completion` with this token."""
        self._require_input()
        if value.kind not in (ValueKind.SQL_BATCH, ValueKind.MEMBERSHIP, ValueKind.NOOP):
            raise UsageError(f"only the core proposes {value.kind.name} values")
        if not self._holds_lease():
            self._complete_not_master(token)
            return
        if value.kind is ValueKind.MEMBERSHIP:
            reason = self._membership_refusal(value)
            if reason is not None:
                self.stats.bump("membership_refused")
                self._completions.append(Completion(token, Outcome.DROPPED, reason=reason))
                return
        if not self.proposer.enqueue(token, value):
            self._completions.append(
                Completion(token, Outcome.DROPPED, reason="proposal queue is full")
            )
            return
        self._after_input()

    def transfer_master(self, target: int, token: Hashable) -> None:
        """Hand the master role to voter `target` (master.py says why it is safe).

        Only the lease holder may: otherwise the outcome is NOT_MASTER. A target that is
        this node or not a voter is refused (DROPPED, with the reason). Otherwise this
        replica stops holding its lease at once (queued requests are refused NOT_MASTER
        with hint `target`) and proposes a MASTER value naming `target`; the outcome is
        CHOSEN when that value is chosen, DROPPED if it certainly was not and cannot be
        any more (another master was chosen first, or the target left the voters: then
        an unexpired lease of ours is ours again, master.py).
        """
        self._require_input()
        if not self._holds_lease():
            self._complete_not_master(token)
            return
        reason = None
        if target == self.node_id:
            reason = f"node {target} is already the master"
        elif not self.membership.is_member(target):
            reason = f"node {target} is not a voter, so it cannot be master"
        if reason is not None:
            self.stats.bump("handover_refused")
            self._completions.append(Completion(token, Outcome.DROPPED, reason=reason))
            return
        self.handover = Handover(token, target)
        self.stats.bump("handover_started")
        if self.options.mutant == "transfer-keeps-lease":
            self._kept_lease_end = self.master.lease_end_tick
        assert not self._holds_lease() or self.options.mutant == "transfer-keeps-lease"
        self._refuse_queue()
        self._after_input()

    def restore(self, meta: CheckpointMeta) -> None:
        """Jump to a checkpoint the runtime installed (fetched from a peer)."""
        self._require_input()
        if meta.instance_next <= self.instance:
            raise UsageError(
                f"checkpoint at {meta.instance_next} is not ahead of instance {self.instance}"
            )
        self.instance = meta.instance_next
        self.chain = meta.chain
        self.membership = Membership(meta.members, meta.members_version, meta.learners)
        master_version = meta.master_version
        if self.options.mutant == "restore-ignores-master-version":
            master_version = self.master.version
        self.master = MasterState(meta.master, master_version)
        if meta.master is not None:
            self.master.view_end_tick = self.now + self.options.lease_ticks + self.margin_ticks
        self.history.reset(self._config_from(meta.instance_next))
        self.acceptor.move_to(meta.instance_next)
        self._rebase_log(meta.instance_next, meta.chain)
        self.replay_next = self.replay_end = self.instance
        self._apply.clear()
        self._held_apply.clear()
        self.heard = None
        self._abandon_round()
        self._end_handover(None)
        self.stats.bump("restored_checkpoint")
        self._after_input()

    # Output.

    def effects(self) -> Effects:
        if self._effects_out:
            raise UsageError("effects() called twice without advance()")
        apply = self._take_apply()
        effects = Effects(
            persist=tuple(self._persist),
            must_sync=self._must_sync,
            send=tuple(self._send),
            apply=apply,
            completions=tuple(self._completions),
            status=self._take_status(),
            need_checkpoint=self._need_checkpoint,
        )
        self._reset_outputs()
        self._effects_out = True
        return effects

    def advance(self, effects: Effects) -> None:
        if not self._effects_out:
            raise UsageError("advance() without effects()")
        self._effects_out = False

    def has_work(self) -> bool:
        """True if `effects()` would return something."""
        return bool(
            self._persist
            or self._send
            or self._apply
            or self._completions
            or self._need_checkpoint is not None
            or self.replay_next < self.replay_end
            or self._status_key() != self._last_status
        )

    # Queries.

    @property
    def is_master(self) -> bool:
        return self.halted is None and self._holds_lease()

    @property
    def master_hint(self) -> int | None:
        if self.handover is not None:
            return self.handover.target
        return self.master.hint(self.node_id, self.now)

    def _holds_lease(self) -> bool:
        """The lease as this replica may use it: held, not being handed over, and held
        by a voter (a master removed from the voters gives its lease up at once; the
        holder may always err early, master.py)."""
        if self._kept_lease_end is not None and self.now < self._kept_lease_end:
            return True  # The transfer-keeps-lease mutant.
        if not self.master.holds_lease(self.node_id, self.now):
            return False  # First: the simulator asks every node after every event.
        return self.handover is None and self.membership.is_member(self.node_id)

    @property
    def fenced(self) -> bool:
        """True while this rejoining replica may not vote, propose or campaign."""
        return self.fence is not None

    @property
    def role(self) -> Role:
        if self.halted is not None:
            return Role.HALTED
        if self.is_master:
            return Role.MASTER
        if not self.membership.is_member(self.node_id):
            return Role.LEARNER if self.membership.is_learner(self.node_id) else Role.OUTSIDER
        current = self.proposer.round
        is_claim = current is not None and current.wanted.kind is ValueKind.MASTER
        if is_claim and self.handover is None:
            return Role.CANDIDATE
        return Role.FOLLOWER

    def checkpoint_meta(self, instance_next: int) -> CheckpointMeta | None:
        """The metadata of a checkpoint of the state machine after every value below
        `instance_next` was applied: chain[instance_next - 1], and the membership and
        master in force at `instance_next`, exactly (see history.py).

        Valid for any `instance_next` from the start of the configuration history (the
        replica's base, its last restored checkpoint, or `config_history_max` changes
        ago) up to `self.instance`. Returns None outside that range, and when the log no
        longer holds chain[instance_next - 1] (it was truncated, or a value learned in
        this very input is not stored yet): the runtime then tries again later.
        """
        if instance_next < 0:
            raise UsageError(f"no checkpoint at instance {instance_next}")
        if instance_next > self.instance:
            return None
        config = self.history.at(instance_next)
        if self.options.mutant == "checkpoint-meta-off-by-one" and instance_next > 0:
            config = self.history.at(instance_next - 1)
        if config is None:
            self.stats.bump("checkpoint_meta_beyond_history")
            return None
        chain = self._chain_before(instance_next)
        if chain is None:
            self.stats.bump("checkpoint_meta_beyond_log")
            return None
        return CheckpointMeta(
            instance_next,
            chain,
            config.members,
            config.members_version,
            config.master,
            config.master_version,
            config.learners,
        )

    def _chain_before(self, instance_next: int) -> int | None:
        """chain[instance_next - 1], from memory or the stored log; None if unknown."""
        if instance_next == self.instance:
            return self.chain
        bounds = self.log.chosen_bounds(self.group)
        if instance_next == bounds.instance_min:
            return bounds.chain_before
        if not bounds.instance_min < instance_next <= bounds.instance_next:
            return None
        entries = self.log.chosen_range(self.group, instance_next - 1, instance_next, 1)
        assert entries and entries[0].instance == instance_next - 1
        return entries[0].chain

    def status(self) -> Status:
        return Status(
            self.role,
            self.master.master if self.master.believes_in_master(self.now) else None,
            self.master.lease_ticks_left(self.node_id, self.now),
            self.instance,
            self.membership.members,
            self.membership.learners,
        )

    # Dispatch.

    def _dispatch(self, source: int, message: Message) -> None:
        if isinstance(message, Accept):
            self._on_accept(source, message)
        elif isinstance(message, Accepted):
            self._on_accepted(source, message)
        elif isinstance(message, Chosen):
            self._on_chosen(source, message)
        elif isinstance(message, Prepare):
            self._on_prepare(source, message)
        elif isinstance(message, Promise):
            self._on_promise(source, message)
        elif isinstance(message, Reject):
            self._on_reject(message)
        elif isinstance(message, CatchupRequest):
            self._on_catchup_request(source, message)
        elif isinstance(message, CatchupReply):
            self._on_catchup_reply(source, message)
        else:
            self.stats.bump("drop_unknown_message")

    def _deliver_local(self, message: Message) -> None:
        """A message to ourselves: processed now, as if received."""
        self._dispatch(self.node_id, message)

    def _broadcast(self, message: Message, to_learners: bool = False) -> None:
        """To every voter, ourselves included (processed at once), and to every learner
        if `to_learners` (Accept: learners learn from it, they never answer)."""
        targets = self.membership.members
        if to_learners:
            targets = targets + self.membership.learners
        for member in targets:
            if member == self.node_id:
                continue
            self._send.append(Envelope(self.group, self.node_id, member, message))
        if self.membership.is_member(self.node_id):
            self._deliver_local(message)

    def _send_to(self, target: int, message: Message) -> None:
        if target == self.node_id:
            self._deliver_local(message)
        else:
            self._send.append(Envelope(self.group, self.node_id, target, message))

    # Acceptor.

    def _on_prepare(self, source: int, prepare: Prepare) -> None:
        if not self._at_current_instance(source, prepare.instance):
            return
        if self.fence is not None:
            self.stats.bump("fence_dropped_prepare")
            return
        if not self.membership.is_member(self.node_id):
            self.stats.bump("non_voter_dropped_prepare")
            return
        if source != self.node_id and self._defers_to_master(source):
            self.stats.bump("prepare_refused_lease")
            return
        decision = acceptor_rules.decide_prepare(self.acceptor, prepare)
        if decision.persist and self.options.mutant != "acceptor-forgets-promise":
            self._persist_acceptor()
        assert decision.reply is not None
        self._send_to(source, decision.reply)

    def _defers_to_master(self, source: int) -> bool:
        """While we believe a master's lease runs, only that master may run phase 1."""
        return self.master.believes_in_master(self.now) and source != self.master.master

    def _on_accept(self, source: int, accept: Accept) -> None:
        if accept.instance == self.instance + 1:
            self._learn_from_accept(accept)
        if not self._at_current_instance(source, accept.instance):
            return
        if accept.chain_previous != self.chain:
            self._halt(
                f"group {self.group!r}: node {source} proposes instance {accept.instance} "
                f"after chain {accept.chain_previous:#010x}, ours is {self.chain:#010x}; "
                "this replica diverged and has stopped: restore it from a healthy peer"
            )
        if self.fence is not None or not self._votes_here():
            self._hear(accept)
            self.stats.bump("fence_dropped_accept" if self.fence else "non_voter_heard_accept")
            return
        decision = acceptor_rules.decide_accept(self.acceptor, accept)
        if decision.reply is None:
            self.stats.bump("drop_conflicting_accept")
            return
        if decision.persist:
            self._persist_acceptor()
        self._send_to(source, decision.reply)

    def _votes_here(self) -> bool:
        """Whether our acceptor votes at our current instance: only a voter of the
        configuration in force there does (membership.py). Under the learner-votes-count
        mutant, learners vote too."""
        if self.membership.is_member(self.node_id):
            return True
        mutant = self.options.mutant == "learner-votes-count"
        return mutant and self.membership.is_learner(self.node_id)

    def _hear(self, accept: Accept) -> None:
        """Keep the value of an Accept at our current instance we did not vote for."""
        assert accept.instance == self.instance
        if self.heard is None or self.heard[0] <= accept.ballot:
            self.heard = (accept.ballot, accept.value)

    def _value_of(self, ballot: Ballot) -> Value | None:
        """The value proposed with `ballot` at our current instance, if we know it: our
        acceptor's vote, or an Accept we heard. A proposer sends one value per ballot
        and instance, so a ballot that chose the instance names its value."""
        if self.acceptor.accepted_ballot == ballot:
            return self.acceptor.accepted_value
        if self.heard is not None and self.heard[0] == ballot:
            return self.heard[1]
        return None

    def _learn_from_accept(self, accept: Accept) -> None:
        """An Accept for the next instance says which ballot chose the current one."""
        ballot = accept.previous_ballot
        if ballot is None:
            return
        value = self._value_of(ballot)
        if value is None:
            return
        entry = LogEntry(self.instance, value, chain_next(self.chain, value))
        if entry.chain != accept.chain_previous:
            self._halt(
                f"group {self.group!r}: instance {self.instance} was chosen with ballot "
                f"{ballot}, whose value gives chain {entry.chain:#010x}, but the proposer "
                f"has {accept.chain_previous:#010x}; this replica has stopped"
            )
        self.stats.bump("learned_from_accept")
        self._learn(entry, ballot)

    def _at_current_instance(self, source: int, instance: int) -> bool:
        """Acceptors vote only at their current instance (see acceptor.py)."""
        if instance < self.instance:
            self.stats.bump("peer_behind")
            self._send_catchup_reply(source, instance)
            return False
        if instance > self.instance:
            self.stats.bump("self_behind")
            self._request_catchup(source)
            return False
        return True

    def _persist_acceptor(self) -> None:
        """Queue the acceptor state, replacing any acceptor record queued after the last
        log base (one before a base stays: see `_rebase_log`)."""
        kept = 0
        for index, record in enumerate(self._persist):
            if isinstance(record, LogBaseRecord):
                kept = index + 1
        tail = [r for r in self._persist[kept:] if not _is_acceptor_record(r)]
        self._persist = self._persist[:kept] + tail
        self._persist.append(self.acceptor.record())
        self._must_sync = True

    def _rebase_log(self, instance: int, chain: int) -> None:
        """The stored log now starts at `instance` (a checkpoint covers what is below).

        A log base makes the store drop acceptor records of older instances, which would
        forget our promise: so the promise is written again, at the new instance, first.
        Written in that order and synced together, no crash can keep the base without
        the promise (a crash keeps a prefix of unsynced writes, never a later one alone).
        """
        assert self.acceptor.instance == instance
        if self.fence is None:  # A fenced replica writes no record until it lifts.
            self._persist_acceptor()
        self._persist.append(LogBaseRecord(instance, chain))
        self._must_sync = True

    # Proposer.

    def _on_promise(self, source: int, promise: Promise) -> None:
        self.proposer.observe_ballot(promise.ballot)
        if not self.membership.is_member(source):
            self.stats.bump("drop_non_member")
            return
        value = self.proposer.on_promise(
            source, promise, self.membership.quorum, self.membership.version
        )
        if value is not None:
            self._send_accept(value)

    def _send_accept(self, value: Value) -> None:
        current = self.proposer.round
        assert current is not None and current.phase is Phase.ACCEPT
        assert current.instance == self.instance
        self.membership.assert_governs(current.instance)
        assert self.membership.is_member(self.node_id), "only a voter proposes"
        if value.kind is ValueKind.MEMBERSHIP and value is current.wanted:
            # Our own change: checked against the version in force when taken.
            change = MembershipChange.from_value(value)
            assert change.prev_version == self.membership.version, "one change in flight"
        current.value = value
        self._broadcast(
            Accept(current.ballot, current.instance, value, self.chain, self.previous_ballot),
            to_learners=True,
        )

    def _on_accepted(self, source: int, accepted: Accepted) -> None:
        counts = self.membership.is_member(source)
        if self.options.mutant == "learner-votes-count":
            counts = counts or self.membership.is_learner(source)
        if not counts:
            self.stats.bump("drop_non_member")
            return
        if not self.proposer.on_accepted(source, accepted, self.membership.quorum):
            return
        current = self.proposer.round
        assert current is not None and current.value is not None
        entry = LogEntry(current.instance, current.value, chain_next(self.chain, current.value))
        notice = Chosen(current.ballot, current.instance, entry.chain)
        self._learn(entry, current.ballot)
        for member in self.membership.members + self.membership.learners:
            if member != self.node_id:
                self._send.append(Envelope(self.group, self.node_id, member, notice))

    def _on_reject(self, reject: Reject) -> None:
        current = self.proposer.round
        self.proposer.on_reject(reject, self.now, self._retry_delay())
        if current is not None and self.proposer.round is None:
            self._round_failed()

    def _on_round_timeout(self) -> None:
        if self.proposer.on_timeout(self.now, self._retry_delay()):
            self._resend_phase()
        else:
            self._round_failed()

    def _resend_phase(self) -> None:
        current = self.proposer.round
        assert current is not None
        if current.phase is Phase.PREPARE:
            message: Message = Prepare(current.ballot, current.instance)
            answered = set(current.promises)
        else:
            assert current.value is not None
            message = Accept(
                current.ballot, current.instance, current.value, self.chain, self.previous_ballot
            )
            answered = current.accepted_by
        for member in self.membership.members:
            if member not in answered and member != self.node_id:
                self._send.append(Envelope(self.group, self.node_id, member, message))

    def _round_failed(self) -> None:
        """Our round ended without a decision; the instance stays open."""
        self.campaign_tick = max(self.campaign_tick, self.proposer.retry_tick)

    def _abandon_round(self) -> None:
        if self.proposer.round is not None:
            self.proposer.end_round()
        self._resolve_batch(None)

    def _retry_delay(self) -> int:
        """Randomized backoff after a failed round, over at least a round's timeout, so
        duelling candidates separate whatever the election jitter is."""
        if self.is_master:
            return 1 + self.jitter.below(3)
        spread = max(self.options.election_jitter_ticks, 2 * self.options.phase_timeout_ticks)
        return 1 + self.jitter.below(spread)

    def _election_delay(self) -> int:
        return 1 + self.jitter.below(self.options.election_jitter_ticks)

    # Learner.

    def _on_chosen(self, source: int, chosen: Chosen) -> None:
        if chosen.instance < self.instance:
            return
        if chosen.instance > self.instance:
            self._request_catchup(source)
            return
        value = self._value_of(chosen.ballot)
        if value is None:
            self.stats.bump("chosen_unknown_value")
            self._request_catchup(source)
            return
        self._learn(LogEntry(chosen.instance, value, chosen.chain), chosen.ballot)

    def _on_catchup_request(self, source: int, request: CatchupRequest) -> None:
        is_probe = request.nonce != 0
        if is_probe or request.instance < self.log.chosen_bounds(self.group).instance_next:
            self._send_catchup_reply(source, request.instance, request.nonce)

    def _send_catchup_reply(self, target: int, instance: int, nonce: int = 0) -> None:
        reply = build_reply(
            self.log,
            self.group,
            instance,
            self.options.catchup_values_max,
            self.options.catchup_bytes_max,
            self.acceptor,
            self.fence is not None,
            nonce,
        )
        self.stats.bump("catchup_reply_sent")
        self._send_to(target, reply)

    def _on_catchup_reply(self, source: int, reply: CatchupReply) -> None:
        """Learn what the reply holds. Only a reply that taught us something (or says
        there is nothing more) settles the outstanding request and asks for more: a
        duplicated or late reply must not, or every duplicate would fork another chain
        of requests, and a node far behind would flood the network."""
        fence = self.fence or self.shy
        if fence is not None and fence.on_reply(source, reply):
            self.stats.bump("fence_report")
        if reply.instance_min > self.instance and (
            not reply.entries or reply.entries[0].instance > self.instance
        ):
            self.catchup.answered(source)
            self.stats.bump("need_checkpoint")
            self._need_checkpoint = source
            return
        before = self.instance
        for entry in reply.entries:
            if entry.instance < self.instance:
                continue
            if entry.instance > self.instance:
                self.stats.bump("drop_catchup_gap")
                break
            self._learn(entry, None)
        if self.instance == before and reply.instance_next > self.instance:
            self.stats.bump("catchup_reply_stale")
            return
        self.catchup.answered(source)
        if reply.instance_next > self.instance:
            self._request_catchup(source)

    def _request_catchup(self, peer: int) -> None:
        if peer == self.node_id:
            return
        if not self.catchup.may_request(self.now, self.options.catchup_timeout_ticks):
            return
        self.catchup.requested(peer, self.now)
        self.stats.bump("catchup_request_sent")
        self._send.append(Envelope(self.group, self.node_id, peer, CatchupRequest(self.instance)))

    def _probe(self) -> None:
        peers = [member for member in self.membership.members if member != self.node_id]
        peer = self.catchup.next_probe_peer(peers)
        if peer is not None and self.catchup.peer is None:
            self._send.append(
                Envelope(self.group, self.node_id, peer, CatchupRequest(self.instance))
            )

    def _probe_fence(self, fence: Fence) -> None:
        """A fenced replica asks every other member, with its nonce (fence.py)."""
        probe = CatchupRequest(self.instance, fence.nonce)
        for member in self.membership.members:
            if member != self.node_id:
                self._send.append(Envelope(self.group, self.node_id, member, probe))

    def _maybe_lift_fence(self) -> None:
        fence = self.fence
        if fence is None:
            return
        lift = fence.decide(
            self.node_id, self.membership.members, self.membership.version, self.instance
        )
        if lift is None:
            return
        self.fence = None
        self.acceptor.promised = max(self.acceptor.promised, lift.floor)
        self.acceptor.check()
        self.proposer.observe_ballot(lift.floor)
        self._persist_acceptor()  # Synced before any vote this replica gives.
        self.campaign_tick = max(self.campaign_tick, self.now + self._election_delay())
        self.stats.bump("fence_lifted_bootstrap" if lift.bootstrap else "fence_lifted")
        if lift.bootstrap:
            self.shy = fence

    def _maybe_end_shyness(self) -> None:
        shy = self.shy
        if shy is not None and shy.has_majority_unfenced(self.node_id, self.membership.members):
            self.shy = None
            self.stats.bump("fence_shy_ended")

    def _learn(self, entry: LogEntry, ballot: Ballot | None) -> None:
        """Learn the value chosen at our current instance, in order, and move on.

        `ballot` is the ballot that chose it, when known (None after catch-up)."""
        assert entry.instance == self.instance, (entry.instance, self.instance)
        try:
            verify_entry(self.group, self.chain, entry)
        except CorruptionError as error:
            self._halt(str(error))
        self._persist.append(ChosenRecord(entry))
        self._apply.append(entry)
        self.chain = entry.chain
        self.instance += 1
        self.previous_ballot = ballot
        self.acceptor.move_to(self.instance)
        self.heard = None
        current = self.proposer.round
        if current is not None and current.instance == entry.instance:
            self.proposer.end_round()
        issue_tick = self._issue_tick_for(entry.value)
        self._learn_system_value(entry, issue_tick)
        self._resolve_batch(entry)
        self._resolve_handover(entry)

    def _issue_tick_for(self, value: Value) -> int | None:
        if value.kind is not ValueKind.MASTER or self._master_issue is None:
            return None
        payload, issue_tick = self._master_issue
        if payload != value.payload:
            return None
        self._master_issue = None
        if self.options.mutant == "lease-from-learn-tick":
            return self.now
        return issue_tick

    def _learn_system_value(self, entry: LogEntry, issue_tick: int | None) -> None:
        value = entry.value
        if value.kind is ValueKind.MASTER:
            self._learn_master(entry, issue_tick)
        elif value.kind is ValueKind.MEMBERSHIP:
            try:
                change = MembershipChange.from_value(value)
            except ValueError:
                self.stats.bump("ignored_bad_membership")
                return
            if self.membership.learn(change, entry.instance):
                self.proposer.forget_quorum()
                self.stats.bump("membership_changed")
                self.history.record(self._config_from(entry.instance + 1))

    def _learn_master(self, entry: LogEntry, issue_tick: int | None) -> None:
        try:
            claim = MasterClaim.from_value(entry.value)
        except ValueError:
            self.stats.bump("ignored_bad_master")
            return
        was_master = self.master.master == self.node_id
        if not self.master.learn(
            claim, entry.instance, self.now, self.node_id, issue_tick, self.margin_ticks
        ):
            self.stats.bump("ignored_stale_master")
            return
        self.history.record(self._config_from(entry.instance + 1))
        if was_master and claim.node_id != self.node_id:
            self._refuse_queue()
        if self.master.is_handed_to(self.node_id):
            self.campaign_tick = self.now  # A hand-over named us: campaign at once.
            self.stats.bump("handover_received")
        elif claim.node_id != self.node_id:
            self.campaign_tick = self.master.view_end_tick + self._election_delay()

    def _config_from(self, instance: int) -> ConfigEntry:
        """The current membership and master, as in force from `instance` on."""
        return ConfigEntry(
            instance,
            self.membership.members,
            self.membership.version,
            self.master.master,
            self.master.version,
            self.membership.learners,
        )

    def _resolve_handover(self, entry: LogEntry) -> None:
        """After learning `entry`: complete the hand-over, or propose it again at the
        next instance, or give it up once it cannot be chosen and is moot."""
        handover = self.handover
        if handover is None:
            return
        if handover.value is not None and entry.instance == handover.instance:
            if entry.value == handover.value:
                self.stats.bump("handover_chosen")
                self._end_handover(entry.instance)
                return
            handover.value = None  # Lost that instance; rebuilt at the next one if we may.
        if handover.value is None and not self._may_hand_over():
            self.stats.bump("handover_dropped")
            self._end_handover(None)

    def _may_hand_over(self) -> bool:
        """We are still the master in force and a voter, and the target is a voter."""
        target = self.handover.target if self.handover is not None else None
        return (
            self.master.master == self.node_id
            and self.membership.is_member(self.node_id)
            and target is not None
            and self.membership.is_member(target)
        )

    def _end_handover(self, instance: int | None) -> None:
        """Complete the hand-over: CHOSEN at `instance`, or DROPPED (None). A DROPPED
        hand-over was never proposed, or lost its instance to another value; a restore
        jumps past it, so its fate is unknown there: NOT_MASTER, ask the cluster."""
        handover = self.handover
        if handover is None:
            return
        self.handover = None
        if instance is not None:
            self._completions.append(Completion(handover.token, Outcome.CHOSEN, instance, 0))
        elif handover.value is not None:
            self._complete_not_master(handover.token)
        else:
            reason = "the master role changed hands, or the target left the voters, first"
            self._completions.append(Completion(handover.token, Outcome.DROPPED, reason=reason))

    def _resolve_batch(self, entry: LogEntry | None) -> None:
        """Our batch's instance was decided (or abandoned): complete or re-queue it."""
        batch = self.proposer.batch
        if batch is None:
            return
        if entry is not None and entry.instance != self.proposer.batch_instance:
            return
        self.proposer.batch = None
        if entry is not None and entry.value == batch.value:
            for index, token in enumerate(batch.tokens):
                self._completions.append(Completion(token, Outcome.CHOSEN, entry.instance, index))
            return
        self.stats.bump("batch_lost_instance")
        if self._holds_lease():
            self._requeue(batch)
        else:
            for token in batch.tokens:
                self._complete_not_master(token)

    def _requeue(self, batch: Batch) -> None:
        if batch.value.kind is not ValueKind.SQL_BATCH:
            assert len(batch.tokens) == 1
            self.proposer.enqueue(batch.tokens[0], batch.value, front=True)
            return
        items = decode_batch(batch.value.payload)
        for token, item in reversed(list(zip(batch.tokens, items, strict=True))):
            self.proposer.enqueue(token, Value(ValueKind.SQL_BATCH, item), front=True)

    # Deciding what to propose.

    def _after_input(self) -> None:
        """Lift the fence if it may, then propose while rounds finish at once (a one-node
        group), within a bound."""
        self._maybe_lift_fence()
        self._maybe_end_shyness()
        for _ in range(SYNCHRONOUS_ROUNDS_MAX):
            if self.halted is not None:
                return
            instance = self.instance
            if not self._maybe_propose() or self.instance == instance:
                return

    def _maybe_propose(self) -> bool:
        if self.fence is not None or self.shy is not None:
            return False
        if not self.membership.is_member(self.node_id):
            assert self.proposer.is_idle, "a round ends when its instance is learned"
            return False  # Learners and outsiders never propose.
        if not self.proposer.is_idle or self.now < self.proposer.retry_tick:
            return False
        wanted = self._wanted_value()
        if wanted is None:
            return False
        # Our own acceptor's promise is a ballot we have seen: a round below it would
        # only be rejected by ourselves (it matters to a hand-over's target, which has
        # voted for the old master's ballot but seen no Promise or Reject of it).
        self.proposer.observe_ballot(self.acceptor.promised)
        message = self.proposer.start(self.instance, wanted, self.now, self.membership.version)
        if message is None:
            self._send_accept(wanted)
        else:
            self._broadcast(message)
        return True

    def _wanted_value(self) -> Value | None:
        if self.handover is not None:
            return self._handover_value(self.handover)
        is_master = self._holds_lease()
        if self._lease_due() or (not is_master and self._may_campaign()):
            return self._master_claim()
        batch = self.proposer.batch
        if batch is not None:
            # Our batch's instance is undecided: the master retries it, others wait.
            assert self.proposer.batch_instance == self.instance
            return batch.value if is_master else None
        if is_master:
            self._drop_stale_membership()
        if is_master and self.proposer.queue:
            batch = self.proposer.take_batch()
            assert batch is not None
            self.proposer.batch = batch
            self.proposer.batch_instance = self.instance
            return batch.value
        return None

    def _master_claim(self) -> Value:
        """A MASTER value for ourselves, remembering the tick it was issued.

        The claim names the ballot of its round, so no two claims are alike (see
        master.py); only the latest is remembered, and an older one, if chosen after
        all, gives this node no lease (safe: the holder may only err early).
        """
        ballot = self.proposer.next_ballot(self.instance, self.membership.version)
        claim = MasterClaim(
            self.node_id, self.options.lease_ticks, self.master.version, ballot.number, self.node_id
        )
        value = claim.to_value()
        self._master_issue = (value.payload, self.now)
        return value

    def _handover_value(self, handover: Handover) -> Value | None:
        """The MASTER value naming the target: the same one again while the instance we
        proposed it at is undecided, else a new one based on the master in force."""
        if handover.value is not None:
            assert handover.instance == self.instance, "resolved when its instance is learned"
            return handover.value
        assert self._may_hand_over(), "dropped as soon as it became moot"
        ballot = self.proposer.next_ballot(self.instance, self.membership.version)
        claim = MasterClaim(
            handover.target,
            self.options.lease_ticks,
            self.master.version,
            ballot.number,
            self.node_id,
        )
        handover.value = claim.to_value()
        handover.instance = self.instance
        self.stats.bump("handover_proposed")
        return handover.value

    def _drop_stale_membership(self) -> None:
        """A queued membership change whose version is no longer in force (another change
        was chosen meanwhile, proposed by an earlier master) is refused, never proposed:
        so our own changes are current when chosen (asserted in `_send_accept`)."""
        queue = self.proposer.queue
        while queue and queue[0][1].kind is ValueKind.MEMBERSHIP:
            change = MembershipChange.from_value(queue[0][1])  # Checked when proposed.
            if change.prev_version == self.membership.version:
                return
            token = self.proposer.pop_front()
            self.stats.bump("membership_refused")
            reason = self._stale_reason(change.prev_version)
            self._completions.append(Completion(token, Outcome.DROPPED, reason=reason))

    def _stale_reason(self, prev_version: int) -> str:
        return (
            f"the change is based on membership version {prev_version}, but version "
            f"{self.membership.version} is in force; read the membership again and retry"
        )

    def _membership_refusal(self, value: Value) -> str | None:
        """Why the master refuses to propose this MEMBERSHIP value, or None."""
        try:
            change = MembershipChange.from_value(value)
        except ValueError as error:
            return f"malformed membership change: {error}"
        if change.prev_version != self.membership.version:
            return self._stale_reason(change.prev_version)
        if self.node_id not in change.members:
            return (
                f"the change takes the vote from node {self.node_id}, the master: transfer "
                "the master role to another voter first"
            )
        if self.proposer.has_membership_queued():
            return "a membership change is in flight"
        return None

    def _lease_due(self) -> bool:
        """The master renews once `lease_renew_ticks` or less are left, or just lapsed."""
        master = self.master
        if master.master != self.node_id or master.lease_end_tick is None:
            return False
        if not self.membership.is_member(self.node_id):
            return False
        return master.lease_end_tick - self.now <= self.options.lease_renew_ticks

    def _may_campaign(self) -> bool:
        """A voter campaigns once it believes in no master, after its election delay;
        the target of a hand-over at once (master.py)."""
        if not self.membership.is_member(self.node_id) or self.now < self.campaign_tick:
            return False
        if self.master.is_handed_to(self.node_id):
            return True
        return not self.master.believes_in_master(self.now)

    # Completions, status, halting.

    def _complete_not_master(self, token: Hashable) -> None:
        self._completions.append(
            Completion(token, Outcome.NOT_MASTER, master_hint=self.master_hint)
        )

    def _refuse_queue(self) -> None:
        for token in self.proposer.drain():
            self._complete_not_master(token)

    def _halt(self, reason: str) -> None:
        self.halted = CorruptionError(reason)
        raise self.halted

    def _require_input(self) -> None:
        if self.halted is not None:
            raise self.halted
        if self._effects_out:
            raise UsageError("input between effects() and advance()")

    def _reset_outputs(self) -> None:
        self._persist = []
        self._must_sync = False
        self._send = []
        self._apply = []
        self._completions = []
        self._need_checkpoint = None

    def _take_apply(self) -> tuple[LogEntry, ...]:
        """Replayed values from the log come first, then newly learned ones, in order."""
        if self.replay_next < self.replay_end:
            chunk = self.log.chosen_range(
                self.group,
                self.replay_next,
                min(self.replay_end, self.replay_next + self.options.catchup_values_max),
                self.options.catchup_bytes_max,
            )
            if not chunk or chunk[0].instance != self.replay_next:
                raise StorageError(f"group {self.group!r}: log lost instance {self.replay_next}")
            self.replay_next = chunk[-1].instance + 1
            self._held_apply.extend(self._apply)
            return tuple(chunk)
        if self._held_apply:
            held, self._held_apply = self._held_apply, []
            return tuple(held + self._apply)
        return tuple(self._apply)

    def _status_key(self) -> tuple[object, ...]:
        """(role, master, members) of `status()`, without building it: `has_work` asks
        on every turn of the runtime's loop."""
        master = self.master.master if self.master.believes_in_master(self.now) else None
        return (self.role, master, self.membership.members, self.membership.learners)

    def _take_status(self) -> Status | None:
        key = self._status_key()
        if key == self._last_status:
            return None
        self._last_status = key
        return self.status()


def _is_acceptor_record(record: Record) -> bool:
    return isinstance(record, AcceptorRecord)
