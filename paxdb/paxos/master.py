"""The master lease, counted in ticks, and master election as a value in the log.

Theory of operation (PhxPaxos keeps the master in the log the same way):

A node becomes master when a `MASTER` value naming it is chosen. The value carries the
lease length and the version it replaces (`prev_version`: the instance of the master
value in force when it was proposed). When applied in log order, a MASTER value whose
`prev_version` is not the current version is stale and changes nothing, so a proposal
that lingers in some acceptor and is chosen late can never overturn a newer master.

Counting the lease:
- The holder counts from the tick it *issued* the proposal (`issue_tick`): its lease
  ends at `issue_tick + lease_ticks`. A restarted holder has forgotten its issue tick and
  holds no lease until it renews.
- Every other node counts from the tick it *learned* the value, plus a drift margin:
  its view of the lease ends at `learn_tick + lease_ticks + drift_margin_ticks`. It does
  not campaign, and its acceptor refuses other candidates, until that view has expired.

Since every node learns a value only after it was issued, the holder's lease ends before
any other node's view of it, provided tick clocks run at rates within
`1 +/- drift_ppm / 1e6` of each other. **That bounded clock-rate drift is an assumption**:
paxdb cannot check it. With rates r in [1 - p, 1 + p], a lease of L ticks lasts at most
L / (1 - p) real units for the holder and at least (L + M - 1) / (1 + p) for an observer
(one tick is lost to rounding), so M >= L * 2p / (1 - p) + 1 suffices; we add one more.

A new master's own value can only be chosen at an instance after every earlier one,
including the old master's last renewal, which it must have learned first; it proposes
only after its view of that renewal expired, hence after the old holder's lease ended.
So at most one node holds a valid lease at any instant (checked by the simulator).

Handing the master role over (`Replica.transfer_master(target)`). The lease holder M
proposes a MASTER value naming the target T, issued by M (`issuer`), and **stops holding
its lease the moment it accepts the request**: it serves no master reads and refuses
queued and new proposals (NOT_MASTER, hint T) from then on. T, on learning a MASTER value
naming it that it did not issue, holds no lease (it knows no issue tick) but campaigns at
once with a claim of its own, whose lease it counts from its own issue tick as usual;
the others, believing T is master, accept T's Prepare (and only T's). Why at most one
node holds a lease, by cases on the last MASTER value chosen (and not stale) before the
instance k at which a holder X's own claim was chosen (X learned it before proposing at
k, and holds the lease from learning its claim at k until its issue tick + L):
- it was X's own earlier claim: X holds one lease, its renewals extend it;
- it was Y's own claim, Y != X: X proposed only after its view of it ended, so after
  Y's lease ended (the argument above);
- it was a hand-over from M: M stopped holding its lease when it proposed it, before
  it was chosen, so before X (T itself, or anyone else) proposed at k; and no other
  node held a lease then, or its claim would be the last one before k. If X != T, X also
  waited for its view of T to end; T itself held no lease from the hand-over value.
In every case the lease of X begins after every earlier lease ended, and any later
claim by someone else comes after X's claim in the log, so the case analysis applies
to it in turn. A master that is no longer a voter holds no lease either (the holder may
always err early). If T is down when the hand-over is chosen, every other voter's view
of T ends `lease_ticks + margin` after it learned the value, and they campaign. If the
hand-over is dropped instead (M learned that its value lost its instance, or was never
proposed, and the target left the voters), no value naming T can be chosen any more and
M is still the master in force: the lease it set aside, if still running, is its own
again.

Why stopping at once matters less than it seems, and what the simulator checks: until
the hand-over is chosen, only M could have proposed at later instances, so M could in
fact have served reads until it learned the value. What would break the lease is M
keeping it after the hand-over was chosen (the `transfer-keeps-lease` mutant): T then
holds a lease and commits writes M has not learned. The simulator checks both that no
two nodes hold a lease at once and that a lease holder has learned every value any
replica learned (its reads are never stale).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

from paxdb.paxos.values import Value, ValueKind

NO_VERSION = -1


def drift_margin_ticks(lease_ticks: int, drift_ppm: int) -> int:
    """Extra ticks an observer waits beyond the lease so the holder's lease ends first."""
    assert lease_ticks > 0
    assert 0 <= drift_ppm < 1_000_000
    numerator = lease_ticks * 2 * drift_ppm
    denominator = 1_000_000 - drift_ppm
    return -(-numerator // denominator) + 2


@dataclass(frozen=True, slots=True)
class MasterClaim:
    """The payload of a MASTER value: `node_id` is master, issued by `issuer`.

    `issuer` is the node that proposed it: `node_id` itself for a claim or a renewal, the
    old master for a hand-over. `ballot_number` is the number of the ballot of the
    issuer's round. Together they make every issued claim distinct: ballots are never
    reused, even across restarts, so a restarted node can never mistake a copy it issued
    in an earlier life (whose issue tick it forgot) for the one it just issued, and count
    its lease too late; nor can a target mistake a hand-over for its own claim.
    """

    node_id: int
    lease_ticks: int
    prev_version: int
    ballot_number: int
    issuer: int

    def __post_init__(self) -> None:
        assert self.node_id >= 0
        assert self.lease_ticks > 0
        assert self.prev_version >= NO_VERSION
        assert self.ballot_number > 0
        assert self.issuer >= 0

    def to_value(self) -> Value:
        text = (
            f"{self.node_id} {self.lease_ticks} {self.prev_version} {self.ballot_number} "
            f"{self.issuer}"
        )
        return Value(ValueKind.MASTER, text.encode("ascii"))

    @staticmethod
    def from_value(value: Value) -> MasterClaim:
        """Raises ValueError if the value is not a well-formed MASTER value."""
        if value.kind is not ValueKind.MASTER:
            raise ValueError("not a MASTER value")
        parts = value.payload.split(b" ")
        if len(parts) != 5:
            raise ValueError("MASTER payload needs five fields")
        node_id, lease_ticks, prev_version, ballot_number, issuer = (int(p) for p in parts)
        if node_id < 0 or lease_ticks <= 0 or prev_version < NO_VERSION or ballot_number <= 0:
            raise ValueError("MASTER payload out of range")
        if issuer < 0:
            raise ValueError("MASTER issuer out of range")
        return MasterClaim(node_id, lease_ticks, prev_version, ballot_number, issuer)


@dataclass(slots=True)
class Handover:
    """A hand-over of the master role in progress on the old master.

    `value` is the MASTER value naming `target`, once proposed, at `instance`; it is
    proposed again, unchanged, while that instance is undecided, and rebuilt (new version,
    new ballot) only at a later instance, so at most one of its versions can be chosen
    anywhere the old master does not know about."""

    token: Hashable
    target: int
    value: Value | None = None
    instance: int = -1


@dataclass(slots=True)
class MasterState:
    """What one replica knows about the master of its group.

    `view_end_tick` is when this node stops believing in the current master (for every
    node, the holder included); `lease_end_tick` is the holder's own lease, set only on
    the holder and only when it knows its issue tick.
    """

    master: int | None = None
    version: int = NO_VERSION
    view_end_tick: int = 0
    lease_end_tick: int | None = None
    issuer: int | None = None  # Who issued the value in force (None: unknown, a checkpoint).

    def learn(
        self,
        claim: MasterClaim,
        instance: int,
        now: int,
        node_id: int,
        issue_tick: int | None,
        margin_ticks: int,
    ) -> bool:
        """Apply a chosen MASTER value. Returns False if it was stale and ignored."""
        if claim.prev_version != self.version:
            return False
        assert instance > self.version, "master versions only increase"
        self.master = claim.node_id
        self.version = instance
        self.issuer = claim.issuer
        self.view_end_tick = now + claim.lease_ticks + margin_ticks
        self.lease_end_tick = None
        if claim.node_id == node_id and issue_tick is not None:
            assert claim.issuer == node_id, "only our own claim has our issue tick"
            assert issue_tick <= now, "a value is issued before it is learned"
            self.lease_end_tick = issue_tick + claim.lease_ticks
            assert self.lease_end_tick < self.view_end_tick
        return True

    def holds_lease(self, node_id: int, now: int) -> bool:
        """True on the master, while its own lease runs."""
        return (
            self.master == node_id and self.lease_end_tick is not None and now < self.lease_end_tick
        )

    def lease_ticks_left(self, node_id: int, now: int) -> int:
        if not self.holds_lease(node_id, now):
            return 0
        assert self.lease_end_tick is not None
        return self.lease_end_tick - now

    def is_handed_to(self, node_id: int) -> bool:
        """True on the target of a hand-over in force: it holds no lease and should
        campaign at once (module docstring)."""
        return (
            self.master == node_id
            and self.lease_end_tick is None
            and self.issuer is not None
            and self.issuer != node_id
        )

    def believes_in_master(self, now: int) -> bool:
        """True while this node must not campaign: some master's lease may still run."""
        return self.master is not None and now < self.view_end_tick

    def hint(self, node_id: int, now: int) -> int | None:
        """Where to send a client of a non-master, if we know."""
        if self.believes_in_master(now) and self.master != node_id:
            return self.master
        return None
