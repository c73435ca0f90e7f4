"""The replica's acceptor side: Prepare and Accept, and learning from the votes it saw.

Theory of operation. acceptor.py decides what an acceptor answers; these handlers
decide whether it may answer at all, and carry the decision out. An acceptor votes
only at its replica's current instance: a message for an earlier one gets a catch-up
reply, one for a later one makes us ask for catch-up (catchup.py). It answers nothing
while fenced (fence.py), nor when it is not a voter of the configuration in force at
that instance (membership.py). While it believes a master's lease runs, it lets only
that master run phase 1 (master.py). Its new state is queued for persisting before the
reply, so the reply leaves only once the state is durable.

Learning from votes. A replica that did not vote for an Accept at its current instance
(fenced, or not a voter) keeps its value as "heard". A proposer sends one value per
ballot and instance, so once a Chosen notice, or an Accept for the next instance,
names the ballot that chose the current instance, our vote or the heard Accept names
the value. A chain mismatch on the way halts the replica (`CorruptionError`).

These functions are part of `Replica` (replica.py): they change its state directly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paxdb.ids import Ballot
from paxdb.paxos import acceptor as acceptor_rules
from paxdb.paxos import catchup
from paxdb.paxos.chain import chain_next
from paxdb.paxos.messages import Accept, Chosen, LogEntry, Prepare
from paxdb.paxos.values import Value

if TYPE_CHECKING:
    from paxdb.paxos.replica import Replica


def on_prepare(replica: Replica, source: int, prepare: Prepare) -> None:
    if not at_current_instance(replica, source, prepare.instance):
        return
    if replica.fence is not None:
        replica.stats.bump("fence_dropped_prepare")
        return
    if not replica.membership.is_member(replica.node_id):
        replica.stats.bump("non_voter_dropped_prepare")
        return
    if source != replica.node_id and defers_to_master(replica, source):
        replica.stats.bump("prepare_refused_lease")
        return
    decision = acceptor_rules.decide_prepare(replica.acceptor, prepare)
    if decision.persist and replica.options.mutant != "acceptor-forgets-promise":
        replica._persist_acceptor()
    assert decision.reply is not None
    replica._send_to(source, decision.reply)


def defers_to_master(replica: Replica, source: int) -> bool:
    """While we believe a master's lease runs, only that master may run phase 1."""
    return replica.master.believes_in_master(replica.now) and source != replica.master.master


def on_accept(replica: Replica, source: int, accept: Accept) -> None:
    if accept.instance == replica.instance + 1:
        learn_from_accept(replica, accept)
    if not at_current_instance(replica, source, accept.instance):
        return
    if accept.chain_previous != replica.chain:
        replica._halt(
            f"group {replica.group!r}: node {source} proposes instance {accept.instance} "
            f"after chain {accept.chain_previous:#010x}, ours is {replica.chain:#010x}; "
            "this replica diverged and has stopped: restore it from a healthy peer"
        )
    if replica.fence is not None or not votes_here(replica):
        hear(replica, accept)
        replica.stats.bump("fence_dropped_accept" if replica.fence else "non_voter_heard_accept")
        return
    decision = acceptor_rules.decide_accept(replica.acceptor, accept)
    if decision.reply is None:
        replica.stats.bump("drop_conflicting_accept")
        return
    if decision.persist:
        replica._persist_acceptor()
    replica._send_to(source, decision.reply)


def votes_here(replica: Replica) -> bool:
    """Whether our acceptor votes at our current instance: only a voter of the
    configuration in force there does (membership.py). Under the learner-votes-count
    mutant, learners vote too."""
    if replica.membership.is_member(replica.node_id):
        return True
    mutant = replica.options.mutant == "learner-votes-count"
    return mutant and replica.membership.is_learner(replica.node_id)


def hear(replica: Replica, accept: Accept) -> None:
    """Keep the value of an Accept at our current instance we did not vote for."""
    assert accept.instance == replica.instance
    if replica.heard is None or replica.heard[0] <= accept.ballot:
        replica.heard = (accept.ballot, accept.value)


def value_of(replica: Replica, ballot: Ballot) -> Value | None:
    """The value proposed with `ballot` at our current instance, if we know it: our
    acceptor's vote, or an Accept we heard. A proposer sends one value per ballot
    and instance, so a ballot that chose the instance names its value."""
    if replica.acceptor.accepted_ballot == ballot:
        return replica.acceptor.accepted_value
    if replica.heard is not None and replica.heard[0] == ballot:
        return replica.heard[1]
    return None


def learn_from_accept(replica: Replica, accept: Accept) -> None:
    """An Accept for the next instance says which ballot chose the current one."""
    ballot = accept.previous_ballot
    if ballot is None:
        return
    value = value_of(replica, ballot)
    if value is None:
        return
    entry = LogEntry(replica.instance, value, chain_next(replica.chain, value))
    if entry.chain != accept.chain_previous:
        replica._halt(
            f"group {replica.group!r}: instance {replica.instance} was chosen with ballot "
            f"{ballot}, whose value gives chain {entry.chain:#010x}, but the proposer "
            f"has {accept.chain_previous:#010x}; this replica has stopped"
        )
    replica.stats.bump("learned_from_accept")
    replica._learn(entry, ballot)


def on_chosen(replica: Replica, source: int, chosen: Chosen) -> None:
    if chosen.instance < replica.instance:
        return
    if chosen.instance > replica.instance:
        catchup.request_catchup(replica, source)
        return
    value = value_of(replica, chosen.ballot)
    if value is None:
        replica.stats.bump("chosen_unknown_value")
        catchup.request_catchup(replica, source)
        return
    replica._learn(LogEntry(chosen.instance, value, chosen.chain), chosen.ballot)


def at_current_instance(replica: Replica, source: int, instance: int) -> bool:
    """Acceptors vote only at their current instance (see acceptor.py)."""
    if instance < replica.instance:
        replica.stats.bump("peer_behind")
        catchup.send_catchup_reply(replica, source, instance)
        return False
    if instance > replica.instance:
        replica.stats.bump("self_behind")
        catchup.request_catchup(replica, source)
        return False
    return True
