"""The replica's catch-up and rejoin fence: learning what it missed, and when it may vote.

Theory of operation. A replica learns in instance order (`Replica._learn`). When a
message shows a peer is ahead, it sends that peer a `CatchupRequest` for its current
instance, one request outstanding at a time (learner.py's `CatchupState`; a request
unanswered for `catchup_timeout_ticks` is given up). Every `catchup_probe_ticks`,
unless a request is outstanding, it also asks the next voter in turn unprompted, so a
replica that hears nothing still catches up. A reply teaches the values it holds; a
reply whose log starts past our instance, holding nothing at it, means the values we
need are gone from the peer's log: the runtime is asked to fetch the peer's checkpoint
(`Effects.need_checkpoint`) and then calls `Replica.restore`.

Only a reply that taught us something, or says there is nothing more, settles the
outstanding request and asks for more: a duplicated or late reply must not, or every
duplicate would fork another chain of requests, and a node far behind would flood the
network.

The fence (fence.py). While fenced, or shy after a bootstrap lift, the probe goes to
every other member with the fence's nonce, and every reply is a report to the fence.
After every input the replica lifts the fence once it may: the acceptor then promises
the floor the fence computed, and that record is queued before any vote it gives.

These functions are part of `Replica` (replica.py): they change its state directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxdb.paxos.effects import Envelope
from paxdb.paxos.fence import Fence
from paxdb.paxos.learner import build_reply
from paxdb.paxos.messages import CatchupReply, CatchupRequest

if TYPE_CHECKING:
    from paxdb.paxos.replica import Replica


def on_tick(replica: Replica) -> None:
    """Give up a request unanswered for too long; probe when a probe is due."""
    state = replica.catchup
    if state.peer is not None and state.may_request(
        replica.now, replica.options.catchup_timeout_ticks
    ):
        state.peer = None
        replica.stats.bump("catchup_timeout")
    if replica.now >= state.next_probe_tick:
        state.next_probe_tick = replica.now + replica.options.catchup_probe_ticks
        fence = replica.fence or replica.shy
        if fence is not None:
            probe_fence(replica, fence)
        else:
            probe(replica)


def on_catchup_request(replica: Replica, source: int, request: CatchupRequest) -> None:
    is_probe = request.nonce != 0
    if is_probe or request.instance < replica.log.chosen_bounds(replica.group).instance_next:
        send_catchup_reply(replica, source, request.instance, request.nonce)


def send_catchup_reply(replica: Replica, target: int, instance: int, nonce: int = 0) -> None:
    reply = build_reply(
        replica.log,
        replica.group,
        instance,
        replica.options.catchup_values_max,
        replica.options.catchup_bytes_max,
        replica.acceptor,
        replica.fence is not None,
        nonce,
    )
    replica.stats.bump("catchup_reply_sent")
    replica._send_to(target, reply)


def on_catchup_reply(replica: Replica, source: int, reply: CatchupReply) -> None:
    """Learn what the reply holds; settle the request only if it taught us something
    or says there is nothing more (see the module docstring)."""
    fence = replica.fence or replica.shy
    if fence is not None and fence.on_reply(source, reply):
        replica.stats.bump("fence_report")
    if reply.instance_min > replica.instance and (
        not reply.entries or reply.entries[0].instance > replica.instance
    ):
        replica.catchup.answered(source)
        replica.stats.bump("need_checkpoint")
        replica.outbox.need_checkpoint = source
        return
    before = replica.instance
    for entry in reply.entries:
        if entry.instance < replica.instance:
            continue
        if entry.instance > replica.instance:
            replica.stats.bump("drop_catchup_gap")
            break
        replica._learn(entry, None)
    if replica.instance == before and reply.instance_next > replica.instance:
        replica.stats.bump("catchup_reply_stale")
        return
    replica.catchup.answered(source)
    if reply.instance_next > replica.instance:
        request_catchup(replica, source)


def request_catchup(replica: Replica, peer: int) -> None:
    if peer == replica.node_id:
        return
    if not replica.catchup.may_request(replica.now, replica.options.catchup_timeout_ticks):
        return
    replica.catchup.requested(peer, replica.now)
    replica.stats.bump("catchup_request_sent")
    replica.outbox.send.append(
        Envelope(replica.group, replica.node_id, peer, CatchupRequest(replica.instance))
    )


def probe(replica: Replica) -> None:
    peers = [member for member in replica.membership.members if member != replica.node_id]
    peer = replica.catchup.next_probe_peer(peers)
    if peer is not None and replica.catchup.peer is None:
        replica.outbox.send.append(
            Envelope(replica.group, replica.node_id, peer, CatchupRequest(replica.instance))
        )


def probe_fence(replica: Replica, fence: Fence) -> None:
    """A fenced replica asks every other member, with its nonce (fence.py)."""
    message = CatchupRequest(replica.instance, fence.nonce)
    for member in replica.membership.members:
        if member != replica.node_id:
            replica.outbox.send.append(Envelope(replica.group, replica.node_id, member, message))


def maybe_lift_fence(replica: Replica) -> None:
    fence = replica.fence
    if fence is None:
        return
    lift = fence.decide(
        replica.node_id, replica.membership.members, replica.membership.version, replica.instance
    )
    if lift is None:
        return
    replica.fence = None
    replica.acceptor.promised = max(replica.acceptor.promised, lift.floor)
    replica.acceptor.check()
    replica.proposer.observe_ballot(lift.floor)
    replica._persist_acceptor()  # Synced before any vote this replica gives.
    replica.campaign_tick = max(replica.campaign_tick, replica.now + replica._election_delay())
    replica.stats.bump("fence_lifted_bootstrap" if lift.bootstrap else "fence_lifted")
    if lift.bootstrap:
        replica.shy = fence


def maybe_end_shyness(replica: Replica) -> None:
    shy = replica.shy
    if shy is not None and shy.has_majority_unfenced(replica.node_id, replica.membership.members):
        replica.shy = None
        replica.stats.bump("fence_shy_ended")
