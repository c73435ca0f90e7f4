"""The rejoin fence: a node that lost its disk must not vote where its old self may have.

Theory of operation. A node restarted with an empty data directory under the same node
id has forgotten every promise and vote of its previous incarnation (its "old self").
Paxos counts on acceptors never forgetting: if it voted again freely, a quorum could
choose a second value at an instance where its old self helped choose the first. So a
replica started with `rejoining=True` whose log holds no acceptor record is *fenced*:
its acceptor answers no Prepare and no Accept (dropped and counted), it never proposes
or campaigns, but it learns (Chosen notices, catch-up, checkpoints via
`need_checkpoint`).

Probes. Every `catchup_probe_ticks` a fenced replica sends every other member a fence
probe: a `CatchupRequest` carrying a nonce drawn at start from its seeded jitter. Every
peer answers every catch-up request with `vote_instance` V (the instance of its newest
acceptor record holding a promise: at least every instance at which it promised or
accepted anything; -1 if it never promised anything), `promised` B, its log's
`instance_next` N, whether it is itself `fenced`, and the request's nonce. Only replies
that echo our nonce count ("fresh": they answer this incarnation, so they were built
after the old one died; a reply to an old self's request may arrive late, or be re-sent
after a reconnect). Per peer we keep the largest V, N and B it reported (each only grows
while the peer keeps its disk) and its latest `fenced` flag.

The rule. The replica decides under K, the configuration in force at its own current
instance (it may itself be a voter of K, a learner, or in neither list: a brand-new
node id joining with an empty disk starts from the bootstrap configuration, which it is
not in, and learns its way forward). Let n be the number of voters of K, m = n // 2 + 1
a majority, q = n - m + 1, and s = 1 + the version of K (the first instance K governs).
"Others" are the voters of K except ourselves. As soon as q distinct others that are
not fenced have reported, H is fixed to the larger of s and 1 + the largest V they and
the other others reported so far (later reports do not move it: every peer's V follows
its current instance, so a moving H would never be passed). H belongs to K: when the
replica learns a configuration change while fenced, H is unfixed and fixed again under
the new configuration (the reports are kept: each is a fact about one peer after our
wipe, whatever the configuration). The fence lifts when either
  (a) H is fixed, our own instance_next > H, and q distinct others that are not fenced
      reported N > H; or
  (b) every other voter of K reported, and every V is -1 (nobody in K ever voted).
On lifting, the acceptor promises the largest B the others reported (if above its own)
and writes its record, synced, before it answers anything; from then on it votes only
at its current instance, which is past H in case (a), and only where it is a voter.
After (b) the replica is *shy*: it votes, but it neither proposes nor campaigns (and
keeps probing) until its probes show a majority of the voters, itself included, not
fenced. Without that, in a new cluster whose nodes start one by one, the last to start
would lift at once and campaign, its promise would give it V >= 0, and the others,
fenced and a minority without it, could never lift: neither (b), nor (a), which needs q
voters that are not fenced.

Why (a) is safe. Let C be the highest instance chosen before the wipe. Our old self
voted only at instances where it was a voter, at its current instance, and it had
learned at most C, so it promised or accepted only at instances <= C + 1. K governs
the instances from s to e, where e is the instance of the next MEMBERSHIP value (if
one is chosen yet); our instance_next is in [s, e] (we are under K).
0. C < e. Otherwise the value at e was chosen before the wipe, by a majority of K; the
   q others that fixed H meet it (q + m > n, and we are not in that majority if we are
   not a voter, or we are one of n and q + m - 1 = n > n - 1 others), in some y that is
   not fenced, so it kept its disk (or lifted its own fence past e), and it answered
   after the wipe, hence after it accepted at e: H >= V_y + 1 >= e + 1 > instance_next,
   so we could not lift.
1. Votes. If C >= s, C was accepted by a majority of K and the same intersection gives
   H >= C + 1. If C < s, H >= s >= C + 1 by definition. Either way we vote only at
   instances > H >= C + 1, where our old self never voted; and by 0 every configuration
   we meet later governs only instances > e > C, where our old self never was.
2. Promises. A promise covers every instance from the one it was given at, so voting
   only past H is not enough: our old self's promise of ballot b at instance i binds
   later instances for the proposer that gathered a quorum Q of promises for b under
   the configuration of i, until the next configuration change (the proposer re-runs
   phase 1 after a change, membership.py). So only a promise given under K at
   i in [s, C + 1] matters to us, and i <= H (step 1). The q counted others meet Q minus
   us in some x; x promised b while at instance i, and reported N_x > H >= i, so it was
   past i when it answered: it had promised b already, and B_x >= b. Promising max B
   keeps every such promise of our old self.

Why (b) is safe. Under K our old self accepted a value only after its proposer gathered
a quorum of K's promises, each on a disk (a proposer's own promise is on its disk before
it counts any other, or its round died with it); a quorum of K holding our old self
holds another voter of K (K has more than one voter, or it lost its only disk, which
the assumption below excludes), which would report V >= 0. Our old self's promise under
K mattered only to a proposer with a live round, holding its own promise on its disk,
which would report V >= 0 too. What our old self did under earlier configurations
concerns instances below s, where we never vote. So if every other voter of K reports
V = -1, nothing our old self did can matter; and a brand-new cluster whose nodes all
start fenced (a runtime that cannot tell a new data directory from a wiped one) starts
once every member is up, since fenced peers answer probes (with V = -1).

What the argument assumes, and the runtime must ensure:
- fewer than a majority of the voters of any configuration lost their disks at once
  (otherwise chosen values are lost anyway);
- each start seeds the replica differently (`ReplicaConfig.seed`; paxdb.node draws it
  from the operating system's random source), so a reply to a probe of an earlier
  incarnation never looks fresh;
- the fence survives crashes: a fenced replica writes no acceptor record (not even
  when it installs a checkpoint) until it lifts, and a replica started with
  `rejoining=True` is fenced while its log holds none, and shy while its record holds
  no promise. So the runtime passes `rejoining=True` on every start of a data directory
  that was created empty, not only the first; passing it on every start of every node
  is safe (a node that never voted then goes through the fence once). A joining node
  (a new id) starts fenced like any empty directory; it usually lifts by (a) while it
  is still a learner, and must be promoted to voter only after (a voter behind its
  fence does not vote, which costs the cluster one vote until it lifts).
"""

from __future__ import annotations

from dataclasses import dataclass

from paxdb.ids import BALLOT_ZERO, Ballot
from paxdb.paxos.membership import quorum_size
from paxdb.paxos.messages import CatchupReply

NONCE_MAX = 2**62  # Nonces are drawn from 1..NONCE_MAX; 0 means "not a fence probe".


@dataclass(slots=True)
class PeerReport:
    """The largest V, N and B one peer reported to our probes, and its latest flag."""

    vote_instance: int
    instance_next: int
    promised: Ballot
    fenced: bool

    def merge(self, reply: CatchupReply) -> None:
        self.vote_instance = max(self.vote_instance, reply.vote_instance)
        self.instance_next = max(self.instance_next, reply.instance_next)
        self.promised = max(self.promised, reply.promised)
        self.fenced = reply.fenced


@dataclass(frozen=True, slots=True)
class Lift:
    """The fence may lift: promise at least `floor` first."""

    floor: Ballot
    bootstrap: bool


class Fence:
    """The fence of one rejoining replica: its nonce and the fresh reports it collected."""

    __slots__ = ("nonce", "reports", "horizon", "horizon_version")

    def __init__(self, nonce: int) -> None:
        assert 0 < nonce <= NONCE_MAX
        self.nonce = nonce
        self.reports: dict[int, PeerReport] = {}
        self.horizon: int | None = None  # H, once fixed.
        self.horizon_version = -2  # The membership version H was fixed under.

    def on_reply(self, source: int, reply: CatchupReply) -> bool:
        """Record a reply; True if it was fresh (it answers one of our probes)."""
        if reply.nonce != self.nonce:
            return False
        report = self.reports.get(source)
        if report is None:
            self.reports[source] = PeerReport(
                reply.vote_instance, reply.instance_next, reply.promised, reply.fenced
            )
        else:
            report.merge(reply)
        return True

    def has_majority_unfenced(self, node_id: int, members: tuple[int, ...]) -> bool:
        """Whether the latest fresh reports show a majority of `members`, counting
        `node_id` itself, not fenced (when a shy replica may campaign)."""
        unfenced = 1 if node_id in members else 0
        for peer in members:
            report = self.reports.get(peer)
            if peer != node_id and report is not None and not report.fenced:
                unfenced += 1
        return unfenced >= quorum_size(len(members))

    def decide(
        self, node_id: int, members: tuple[int, ...], members_version: int, instance_next: int
    ) -> Lift | None:
        """Whether the fence may lift now under the configuration whose voters are
        `members` and whose version is `members_version` (rule (a) or (b) of the module
        docstring); fixes H the first time q voters other than us, not fenced, have
        reported under this configuration."""
        assert members
        if self.horizon is not None and self.horizon_version != members_version:
            self.horizon = None  # H belongs to the configuration it was fixed under.
        others = [member for member in members if member != node_id]
        reports = [self.reports[peer] for peer in others if peer in self.reports]
        floor = max((report.promised for report in reports), default=BALLOT_ZERO)
        if len(reports) == len(others) and all(r.vote_instance == -1 for r in reports):
            return Lift(floor, bootstrap=True)
        needed = len(members) - quorum_size(len(members)) + 1
        if self.horizon is None:
            if sum(1 for report in reports if not report.fenced) < needed:
                return None
            voted = max(report.vote_instance for report in reports) + 1
            self.horizon = max(voted, members_version + 1)
            self.horizon_version = members_version
        if instance_next <= self.horizon:
            return None
        ready = [r for r in reports if not r.fenced and r.instance_next > self.horizon]
        if len(ready) < needed:
            return None
        return Lift(floor, bootstrap=False)
