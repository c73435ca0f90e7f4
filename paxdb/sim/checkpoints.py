"""Checkpoints, log truncation and checkpoint transfer, as the simulator models them.

Theory of operation: the simulator does what the real node does, with its state machine
model (`AppliedLog`) standing in for the SQLite file and a `SimCheckpoint` for a copy
of it.

- Taking one. Every `checkpoint_every` applied instances (drawn from the seed), a node
  copies its state machine at its applied instance a, asks its replica for
  `checkpoint_meta(a)` (None means "not now": it tries again at the next tick), keeps
  the newest `CHECKPOINTS_KEPT` checkpoints, and cuts its log below
  a - `log_hold` (never at or past what the log holds). A checkpoint is durable at once,
  as the node's atomic rename of a synced file is.
- Starting. A node (re)starts from its newest checkpoint (the replica's `base`) plus
  whatever its log still holds, with its state machine as it was: at or past that
  checkpoint.
- Transfer. When a replica's `Effects` carry `need_checkpoint = peer`, the node fetches
  that peer's newest checkpoint: a delayed event that fails, and is retried a bounded
  number of times, if either node crashed in the meantime or a partition separates
  them. Installing it is atomic: the state machine is replaced and the checkpoint
  becomes the node's newest, then `replica.restore(meta)` is called. A crash between
  the two (drawn from the seed) restarts the node from that checkpoint, as the real node
  would after swapping its file: old state or new, never a mix.
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb.paxos.effects import CheckpointMeta
from paxdb.paxos.logview import ChosenBounds

CHECKPOINTS_KEPT = 3  # A node's newest checkpoints; older ones are deleted.
FETCH_ATTEMPTS_MAX = 3  # Tries of one checkpoint transfer before waiting for the core to ask again.
FETCH_TICKS_MAX = 6  # A transfer takes 1 to this many ticks.


@dataclass(frozen=True, slots=True)
class SimCheckpoint:
    """A copy of a state machine after every instance below `meta.instance_next`."""

    meta: CheckpointMeta
    digest: bytes


@dataclass(frozen=True, slots=True)
class Fetch:
    """One checkpoint transfer in flight: `node` fetches from `peer`."""

    node_id: int
    incarnation: int
    peer: int
    peer_incarnation: int
    attempt: int


def keep_newest(kept: list[SimCheckpoint], checkpoint: SimCheckpoint) -> list[SimCheckpoint]:
    """The node's checkpoints after adding `checkpoint`: newest last, at most KEPT."""
    if kept:
        assert checkpoint.meta.instance_next > kept[-1].meta.instance_next
    return [*kept, checkpoint][-CHECKPOINTS_KEPT:]


def truncation_point(bounds: ChosenBounds, instance_next: int, hold: int) -> int | None:
    """Where to cut the log after a checkpoint at `instance_next`, or None to keep it.

    Below the checkpoint minus `hold` extra instances, and never past what the log holds
    (the state machine may be ahead of a log that lost unsynced writes)."""
    assert hold >= 0
    below = min(instance_next - hold, bounds.instance_next)
    return below if below > bounds.instance_min else None
