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

Messages may be lost, duplicated, delayed and reordered. Safety never depends on the
transport; liveness needs a majority that can talk and clocks of bounded drift.
"""
