"""The master role as a replica plays it: claims, learning them, and the hand-over.

Theory of operation. master.py holds the rules (`MasterState`, `MasterClaim`,
`Handover`) and says why they are safe; these functions decide, for one replica, when
to act on them, and carry the result out.

- Claims. A voter proposes a MASTER value naming itself when it believes in no master,
  after a seeded election delay (campaigning), at once if a hand-over named it; the
  master renews the same way once `lease_renew_ticks` or fewer of its lease are left.
  The replica remembers the tick it issued its latest claim (`Replica.master_issue`):
  its own lease counts from there, everyone else's view of it from the tick they learn
  it, plus a drift margin, so the holder's lease always ends first.
- Learning a MASTER value moves the master state on, records the configuration in force
  from the next instance (history.py), refuses the queue of a master that lost its role,
  and schedules the next campaign.
- Hand-over (`Replica.transfer_master`). The master proposes a MASTER value naming the
  target, the same value again while the instance it proposed it at is undecided, and a
  new one at the next instance if it lost that one, as long as it is still the master in
  force, a voter, and the target is a voter. Its completion is CHOSEN when the value is
  chosen; otherwise DROPPED, or NOT_MASTER when its fate is unknown.

These functions are part of `Replica` (replica.py): they change its state directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxdb.paxos.effects import Completion, Outcome
from paxdb.paxos.master import Handover, MasterClaim
from paxdb.paxos.messages import LogEntry
from paxdb.paxos.values import Value, ValueKind

if TYPE_CHECKING:
    from paxdb.paxos.replica import Replica


def master_claim(replica: Replica) -> Value:
    """A MASTER value for ourselves, remembering the tick it was issued.

    The claim names the ballot of its round, so no two claims are alike (see
    master.py); only the latest is remembered, and an older one, if chosen after
    all, gives this node no lease (safe: the holder may only err early).
    """
    value = _claim_for(replica, replica.node_id)
    replica.master_issue = (value.payload, replica.now)
    return value


def _claim_for(replica: Replica, master: int) -> Value:
    """A MASTER value naming `master`, issued by this replica with the ballot of the
    round it will propose in, based on the master in force."""
    ballot = replica.proposer.next_ballot(replica.instance, replica.membership.version)
    claim = MasterClaim(
        master, replica.options.lease_ticks, replica.master.version, ballot.number, replica.node_id
    )
    return claim.to_value()


def lease_due(replica: Replica) -> bool:
    """The master renews once `lease_renew_ticks` or less are left, or just lapsed."""
    master = replica.master
    if master.master != replica.node_id or master.lease_end_tick is None:
        return False
    if not replica.membership.is_member(replica.node_id):
        return False
    return master.lease_end_tick - replica.now <= replica.options.lease_renew_ticks


def may_campaign(replica: Replica) -> bool:
    """A voter campaigns once it believes in no master, after its election delay;
    the target of a hand-over at once (master.py)."""
    if not replica.membership.is_member(replica.node_id) or replica.now < replica.campaign_tick:
        return False
    if replica.master.is_handed_to(replica.node_id):
        return True
    return not replica.master.believes_in_master(replica.now)


def issue_tick_for(replica: Replica, value: Value) -> int | None:
    """The tick we issued `value`, if it is our latest claim (then forgotten)."""
    if value.kind is not ValueKind.MASTER or replica.master_issue is None:
        return None
    payload, issue_tick = replica.master_issue
    if payload != value.payload:
        return None
    replica.master_issue = None
    if replica.options.mutant == "lease-from-learn-tick":
        return replica.now
    return issue_tick


def learn_master(replica: Replica, entry: LogEntry, issue_tick: int | None) -> None:
    try:
        claim = MasterClaim.from_value(entry.value)
    except ValueError:
        replica.stats.bump("ignored_bad_master")
        return
    was_master = replica.master.master == replica.node_id
    if not replica.master.learn(
        claim, entry.instance, replica.now, replica.node_id, issue_tick, replica.margin_ticks
    ):
        replica.stats.bump("ignored_stale_master")
        return
    replica.history.record(replica._config_from(entry.instance + 1))
    if was_master and claim.node_id != replica.node_id:
        replica._refuse_queue()
    if replica.master.is_handed_to(replica.node_id):
        replica.campaign_tick = replica.now  # A hand-over named us: campaign at once.
        replica.stats.bump("handover_received")
    elif claim.node_id != replica.node_id:
        replica.campaign_tick = replica.master.view_end_tick + replica._election_delay()


def handover_value(replica: Replica, handover: Handover) -> Value | None:
    """The MASTER value naming the target: the same one again while the instance we
    proposed it at is undecided, else a new one based on the master in force."""
    if handover.value is not None:
        assert handover.instance == replica.instance, "resolved when its instance is learned"
        return handover.value
    assert may_hand_over(replica), "dropped as soon as it became moot"
    handover.value = _claim_for(replica, handover.target)
    handover.instance = replica.instance
    replica.stats.bump("handover_proposed")
    return handover.value


def resolve_handover(replica: Replica, entry: LogEntry) -> None:
    """After learning `entry`: complete the hand-over, or propose it again at the
    next instance, or give it up once it cannot be chosen and is moot."""
    handover = replica.handover
    if handover is None:
        return
    if handover.value is not None and entry.instance == handover.instance:
        if entry.value == handover.value:
            replica.stats.bump("handover_chosen")
            end_handover(replica, entry.instance)
            return
        handover.value = None  # Lost that instance; rebuilt at the next one if we may.
    if handover.value is None and not may_hand_over(replica):
        replica.stats.bump("handover_dropped")
        end_handover(replica, None)


def may_hand_over(replica: Replica) -> bool:
    """We are still the master in force and a voter, and the target is a voter."""
    target = replica.handover.target if replica.handover is not None else None
    return (
        replica.master.master == replica.node_id
        and replica.membership.is_member(replica.node_id)
        and target is not None
        and replica.membership.is_member(target)
    )


def end_handover(replica: Replica, instance: int | None) -> None:
    """Complete the hand-over: CHOSEN at `instance`, or DROPPED (None). A DROPPED
    hand-over was never proposed, or lost its instance to another value; a restore
    jumps past it, so its fate is unknown there: NOT_MASTER, ask the cluster."""
    handover = replica.handover
    if handover is None:
        return
    replica.handover = None
    if instance is not None:
        completion = Completion(handover.token, Outcome.CHOSEN, instance, 0)
        replica.outbox.completions.append(completion)
    elif handover.value is not None:
        replica._complete_not_master(handover.token)
    else:
        reason = "the master role changed hands, or the target left the voters, first"
        completion = Completion(handover.token, Outcome.DROPPED, reason=reason)
        replica.outbox.completions.append(completion)
