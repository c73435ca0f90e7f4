"""Where a replica's state comes from: its stored log and checkpoint, at start-up.

Theory of operation. A replica starts from `base` (the metadata of the newest
checkpoint its state machine holds; None: the bootstrap configuration at instance 0)
plus the chosen values its log holds after it. `load` re-learns the master and the
membership from those values (`scan_log`, verifying the CRC chain of every one), sets
the acceptor state from its stored record, and schedules the replay of every stored
value the state machine has not applied yet. When the checkpoint is ahead of the log,
or reseeds the chain of an empty log, the log is rebased on it instead (`rebase_log`,
also used by `Replica.restore`).

Invariants, checked here: the log never starts above what the checkpoint covers, and
the state machine applied every value below where the log (or the checkpoint) starts
(each raises `StorageError`: restore the node from a peer); the stored log has no gap,
and its chain agrees with the checkpoint's (asserted) and with itself (`CorruptionError`).

These functions are part of `Replica` (replica.py): they set its state directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxdb.errors import StorageError
from paxdb.paxos.acceptor import AcceptorState
from paxdb.paxos.chain import CHAIN_START
from paxdb.paxos.effects import CheckpointMeta
from paxdb.paxos.learner import verify_entry
from paxdb.paxos.logview import LogReader
from paxdb.paxos.master import MasterState
from paxdb.paxos.membership import Membership

if TYPE_CHECKING:
    from paxdb.paxos.replica import Replica


def load(replica: Replica, log: LogReader, applied_next: int, base: CheckpointMeta | None) -> None:
    """Set the replica's membership, master, instance, chain, acceptor and replay range
    from `base` and the stored log (see the module docstring)."""
    group = replica.group
    bounds = log.chosen_bounds(group)
    # A log that starts at 0 may still start from a seeded chain (paxdb restore).
    first_chain = bounds.chain_before if bounds.instance_min == 0 else CHAIN_START
    start = base or CheckpointMeta(0, first_chain, replica.config.members, -1, None, -1, ())
    if bounds.instance_min > start.instance_next:
        raise StorageError(
            f"group {group!r}: the log starts at {bounds.instance_min} but no "
            "checkpoint covers what came before; restore this node from a peer"
        )
    if applied_next < min(bounds.instance_min, start.instance_next):
        raise StorageError(
            f"group {group!r}: the database applied up to {applied_next - 1} but "
            f"the log starts at {bounds.instance_min}; restore this node from a peer"
        )
    replica.membership = Membership(start.members, start.members_version, start.learners)
    replica.master = MasterState(start.master, start.master_version)
    if start.master is not None:
        replica.master.view_end_tick = replica.options.lease_ticks + replica.margin_ticks
    replica.history.reset(replica._config_from(start.instance_next))
    is_empty = bounds.instance_min == bounds.instance_next
    reseeded = is_empty and start.chain != bounds.chain_before
    rebase = start.instance_next > bounds.instance_next or reseeded
    if rebase:
        replica.instance = start.instance_next
        replica.chain = start.chain
    else:
        replica.instance, replica.chain = scan_log(replica, log, start, bounds.instance_next)
    replica.acceptor = AcceptorState.from_record(log.load_acceptor(group), replica.instance)
    if rebase:
        rebase_log(replica, start.instance_next, start.chain)
    replica.proposer.observe_ballot(replica.acceptor.promised)
    replica.proposer.ballot = replica.acceptor.promised
    replica.replay_next = min(max(applied_next, start.instance_next), replica.instance)
    replica.replay_end = replica.instance


def scan_log(replica: Replica, log: LogReader, start: CheckpointMeta, end: int) -> tuple[int, int]:
    """Re-learn master and membership from the stored values after the checkpoint;
    returns the instance and chain after the last of them."""
    instance, chain = start.instance_next, start.chain
    if instance > 0:
        previous = log.chosen_range(replica.group, instance - 1, instance, 1)
        if previous:
            assert previous[0].chain == chain, "checkpoint chain disagrees with the log"
    while instance < end:
        chunk = log.chosen_range(replica.group, instance, end, replica.options.catchup_bytes_max)
        assert chunk and chunk[0].instance == instance, "stored log has a gap"
        for entry in chunk:
            verify_entry(replica.group, chain, entry)
            chain = entry.chain
            replica._learn_system_value(entry, issue_tick=None)
        instance = chunk[-1].instance + 1
    return instance, chain


def rebase_log(replica: Replica, instance: int, chain: int) -> None:
    """The stored log now starts at `instance` (a checkpoint covers what is below).

    A log base makes the store drop acceptor records of older instances, which would
    forget our promise: so the promise is written again, at the new instance, first.
    Written in that order and synced together, no crash can keep the base without
    the promise (a crash keeps a prefix of unsynced writes, never a later one alone).
    """
    assert replica.acceptor.instance == instance
    if replica.fence is None:  # A fenced replica writes no record until it lifts.
        replica._persist_acceptor()
    replica.outbox.persist_log_base(instance, chain)
