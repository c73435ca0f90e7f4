"""The replica: one node's member of one Paxos group, composing every role.

Theory of operation. `Replica` owns all state changes; the role modules compute
decisions (acceptor.py, proposer.py, learner.py, master.py, membership.py, fence.py).
Input comes only through `step(envelope)`, `tick()`, `propose(value, token)`,
`transfer_master(target, token)` and `restore(meta)`; output accumulates in an
`Outbox` (outbox.py) until the runtime takes it with `effects()` and confirms it with
`advance(effects)` (the loop is documented in paxos/__init__.py). No input may arrive
between `effects()` and `advance()`: everything taken out in one `Effects` must be
carried out (persist, then send, then apply, then complete) before the core moves on.

Messages a replica addresses to itself are processed at once, inside the same input,
so the proposer's own promise and vote count like anyone else's; their records are in
the same `Effects` and thus durable before any message that depends on them leaves.

This module keeps the state, the public API, dispatch, and learning in order
(`_learn`). The replica's private handlers live in helper modules, as functions that
take the replica and change its state directly (they are part of this class, and use
its underscored methods; nothing outside paxdb.paxos may):
- startup.py: loading the log and checkpoint at start, rebasing the log on one;
- voting.py: the acceptor side (Prepare, Accept) and learning from votes (Chosen);
- proposing.py: what to propose at the current instance, and running the round;
- mastering.py: master claims, learning them, the hand-over;
- catchup.py: catch-up requests and replies, probes, and the rejoin fence.

What the replica decides (`proposing.maybe_propose`), at its current instance, when
idle:
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
from paxdb.paxos import catchup, mastering, proposing, startup, voting
from paxdb.paxos.acceptor import AcceptorState
from paxdb.paxos.effects import (
    CheckpointMeta,
    ChosenRecord,
    Completion,
    Effects,
    Envelope,
    Outcome,
    Role,
    Status,
)
from paxdb.paxos.fence import NONCE_MAX, Fence
from paxdb.paxos.history import ConfigEntry, ConfigHistory
from paxdb.paxos.learner import CatchupState, verify_entry
from paxdb.paxos.logview import LogReader
from paxdb.paxos.master import Handover, MasterState, drift_margin_ticks
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
from paxdb.paxos.outbox import Outbox
from paxdb.paxos.proposer import Proposer
from paxdb.paxos.stats import Stats
from paxdb.paxos.values import Value, ValueKind

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

    # Set at start-up by `startup.load`; `restore` sets all but the acceptor again.
    membership: Membership
    master: MasterState
    instance: int  # The instance this replica learns next; its acceptor votes there.
    chain: int  # chain[instance - 1].
    acceptor: AcceptorState
    replay_next: int  # Stored values from here to `replay_end` are still to be applied.
    replay_end: int

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
        self.master_issue: tuple[bytes, int] | None = None  # Our MASTER value, issue tick.
        self.handover: Handover | None = None  # While handing the master role over.
        self._kept_lease_end: int | None = None  # Only for the transfer-keeps-lease mutant.
        # An Accept at our current instance that our acceptor did not vote for (we are
        # not a voter, or fenced): its value lets us learn from Chosen or the next Accept.
        self.heard: tuple[Ballot, Value] | None = None
        self.previous_ballot: Ballot | None = None  # Ballot that chose `instance - 1`.
        self._held_apply: list[LogEntry] = []  # Learned while a replay is still running.
        self.outbox = Outbox()
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
        startup.load(self, log, applied_next, base)
        self.campaign_tick = self.now + self._election_delay()

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
            proposing.on_round_timeout(self)
        catchup.on_tick(self)
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
            reason = proposing.membership_refusal(self, value)
            if reason is not None:
                self.stats.bump("membership_refused")
                self.outbox.completions.append(Completion(token, Outcome.DROPPED, reason=reason))
                return
        if not self.proposer.enqueue(token, value):
            self.outbox.completions.append(
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
            self.outbox.completions.append(Completion(token, Outcome.DROPPED, reason=reason))
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
        startup.rebase_log(self, meta.instance_next, meta.chain)
        self.replay_next = self.replay_end = self.instance
        self.outbox.apply.clear()
        self._held_apply.clear()
        self.heard = None
        proposing.abandon_round(self)
        mastering.end_handover(self, None)
        self.stats.bump("restored_checkpoint")
        self._after_input()

    # Output.

    def effects(self) -> Effects:
        if self._effects_out:
            raise UsageError("effects() called twice without advance()")
        apply = self._take_apply()
        outbox = self.outbox
        effects = Effects(
            persist=tuple(outbox.persist),
            must_sync=outbox.must_sync,
            send=tuple(outbox.send),
            apply=apply,
            completions=tuple(outbox.completions),
            status=self._take_status(),
            need_checkpoint=outbox.need_checkpoint,
        )
        outbox.reset()
        self._effects_out = True
        return effects

    def advance(self, effects: Effects) -> None:
        if not self._effects_out:
            raise UsageError("advance() without effects()")
        self._effects_out = False

    def has_work(self) -> bool:
        """True if `effects()` would return something."""
        return (
            self.outbox.has_output()
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
            voting.on_accept(self, source, message)
        elif isinstance(message, Accepted):
            proposing.on_accepted(self, source, message)
        elif isinstance(message, Chosen):
            voting.on_chosen(self, source, message)
        elif isinstance(message, Prepare):
            voting.on_prepare(self, source, message)
        elif isinstance(message, Promise):
            proposing.on_promise(self, source, message)
        elif isinstance(message, Reject):
            proposing.on_reject(self, message)
        elif isinstance(message, CatchupRequest):
            catchup.on_catchup_request(self, source, message)
        elif isinstance(message, CatchupReply):
            catchup.on_catchup_reply(self, source, message)
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
            self.outbox.send.append(Envelope(self.group, self.node_id, member, message))
        if self.membership.is_member(self.node_id):
            self._deliver_local(message)

    def _send_to(self, target: int, message: Message) -> None:
        if target == self.node_id:
            self._deliver_local(message)
        else:
            self.outbox.send.append(Envelope(self.group, self.node_id, target, message))

    def _persist_acceptor(self) -> None:
        """Queue the acceptor state (outbox.py keeps one acceptor record per log base)."""
        self.outbox.persist_acceptor(self.acceptor.record())

    # Learning, in instance order.

    def _learn(self, entry: LogEntry, ballot: Ballot | None) -> None:
        """Learn the value chosen at our current instance, in order, and move on.

        `ballot` is the ballot that chose it, when known (None after catch-up)."""
        assert entry.instance == self.instance, (entry.instance, self.instance)
        try:
            verify_entry(self.group, self.chain, entry)
        except CorruptionError as error:
            self._halt(str(error))
        self.outbox.persist.append(ChosenRecord(entry))
        self.outbox.apply.append(entry)
        self.chain = entry.chain
        self.instance += 1
        self.previous_ballot = ballot
        self.acceptor.move_to(self.instance)
        self.heard = None
        current = self.proposer.round
        if current is not None and current.instance == entry.instance:
            self.proposer.end_round()
        issue_tick = mastering.issue_tick_for(self, entry.value)
        self._learn_system_value(entry, issue_tick)
        proposing.resolve_batch(self, entry)
        mastering.resolve_handover(self, entry)

    def _learn_system_value(self, entry: LogEntry, issue_tick: int | None) -> None:
        value = entry.value
        if value.kind is ValueKind.MASTER:
            mastering.learn_master(self, entry, issue_tick)
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

    # After every input.

    def _after_input(self) -> None:
        """Lift the fence if it may, then propose while rounds finish at once (a one-node
        group), within a bound."""
        catchup.maybe_lift_fence(self)
        catchup.maybe_end_shyness(self)
        for _ in range(SYNCHRONOUS_ROUNDS_MAX):
            if self.halted is not None:
                return
            instance = self.instance
            if not proposing.maybe_propose(self) or self.instance == instance:
                return

    def _election_delay(self) -> int:
        return 1 + self.jitter.below(self.options.election_jitter_ticks)

    # Completions, status, halting.

    def _complete_not_master(self, token: Hashable) -> None:
        self.outbox.completions.append(
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
            self._held_apply.extend(self.outbox.apply)
            return tuple(chunk)
        if self._held_apply:
            held, self._held_apply = self._held_apply, []
            return tuple(held + self.outbox.apply)
        return tuple(self.outbox.apply)

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
