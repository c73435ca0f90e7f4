"""The multi-Paxos core of paxdb: pure, deterministic, driven by its runtime.

This package does no I/O: no sockets, files, clocks, threads or global randomness
(a test parses its imports). One `Replica` (replica.py) runs one node's share of one
Paxos group. The runtime (a real node in `paxdb.node`, or the simulator in `paxdb.sim`)
drives it like this, in a loop, exactly as etcd's raft `doc.go` prescribes:

1. Feed input: `tick()` once per tick (all timeouts and leases are counted in ticks),
   `step(envelope)` for each message received, `propose(value, token)` for each local
   request.
2. Take `effects = replica.effects()` (only when `replica.has_work()`), then carry it
   out in this order:
   a. write `effects.persist` to the log in one batch; fsync if `effects.must_sync`;
   b. only then hand `effects.send` to the transport: a Promise or Accepted is a lie
      until the record behind it is durable (envelopes whose `may_precede_persist` is
      true, the proposer's own Prepare/Accept broadcasts and Chosen notices, may go out
      before step a, so the master's fsync overlaps its followers');
   c. apply `effects.apply` in order to the state machine, each instance exactly once
      (the state machine skips instances it already applied before a restart);
   d. resolve `effects.completions` (the results of step c answer the clients);
   e. if `effects.need_checkpoint` names a peer, fetch its checkpoint, install it, and
      call `restore(meta)`.
3. Call `replica.advance(effects)`. Never feed input between `effects()` and
   `advance()`, and never call `effects()` twice without `advance()`.

Checkpoints. To checkpoint, the runtime copies its state machine at some applied
instance i and asks `checkpoint_meta(i + 1)` for the metadata to store with the copy
(None: try later). It starts a replica from its newest checkpoint (`base=`) plus its log
tail, and may cut the log below that checkpoint. After installing a peer's checkpoint
(step e) it calls `restore(meta)`.

Membership and the master role. Voters and learners change through MEMBERSHIP values
proposed on the master (`propose(MembershipChange(...).to_value(), token)`,
membership.py); the master hands its role to another voter with
`transfer_master(target, token)` (master.py). `status()` names the role: master,
candidate, follower, learner or outsider (halted wins).

Rejoining. A node whose data directory was created empty may have voted under the same
node id before it lost its disk: the runtime passes `rejoining=True` on every start of
such a directory (fence.py says why, and why passing it always is safe), and seeds each
start differently. The replica then stays `fenced` (it votes for nothing and never
campaigns, but learns) until its old votes and promises cannot matter.

Messages may be lost, duplicated, delayed and reordered. Safety never depends on the
transport; liveness needs a majority that can talk and clocks of bounded drift.
"""
