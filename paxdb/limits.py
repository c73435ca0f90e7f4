"""Every bound paxdb relies on, in one place, with their relationships asserted on import.

Times inside the Paxos core are counted in ticks; the runtime maps one tick to
`TICK_MS` milliseconds of wall-clock time. Sizes are in bytes.
"""

from __future__ import annotations

# Time.
TICK_MS = 10
LEASE_TICKS = 200  # 2 s: how long a master may serve without renewing.
LEASE_RENEW_TICKS = LEASE_TICKS // 2  # The master renews once this little lease is left.
# Clock-rate drift bound, in parts per million, between any two nodes' tick clocks.
# The lease is only safe if real clocks drift less than this (see paxos/master.py).
CLOCK_DRIFT_PPM = 50_000
PHASE_TIMEOUT_TICKS = 30  # A prepare or accept round without a quorum is retried after this.
ELECTION_JITTER_TICKS = 40  # Random extra wait before campaigning, to avoid duelling.
CATCHUP_PROBE_TICKS = 50  # How often a replica asks a peer whether it is behind.
CATCHUP_TIMEOUT_TICKS = 20  # An unanswered catch-up request is re-sent to another peer after this.

# Batching and queues.
BATCH_VALUES_MAX = 1024  # Client requests in one chosen value.
BATCH_BYTES_MAX = 4 * 1024 * 1024  # Bytes of client requests in one chosen value.
PROPOSALS_QUEUED_MAX = 16 * 1024  # Requests waiting for the next instance; overflow is dropped.
CATCHUP_VALUES_MAX = 512  # Chosen values in one catch-up reply.
CATCHUP_BYTES_MAX = 8 * 1024 * 1024  # Bytes of chosen values in one catch-up reply.

# Network.
FRAME_BYTES_MAX = 64 * 1024 * 1024  # Largest frame a node accepts; checked before buffering.
SEND_QUEUE_FRAMES_MAX = 65_536  # Frames queued for one peer before new ones are dropped.
RECONNECT_BACKOFF_MS_MIN = 50
RECONNECT_BACKOFF_MS_MAX = 2_000

# Membership.
MEMBERS_MAX = 15
NODE_ID_MAX = 2**31 - 1
LEARNERS_MAX = 15  # Non-voting members (they learn every value, vote for none).
MEMBERSHIP_EXTRA_MAX = 4096  # Opaque bytes a MEMBERSHIP value carries for the runtime.

assert 0 < LEASE_RENEW_TICKS < LEASE_TICKS
assert 0 < CLOCK_DRIFT_PPM < 200_000
assert 0 < PHASE_TIMEOUT_TICKS < LEASE_RENEW_TICKS
assert 0 < CATCHUP_TIMEOUT_TICKS < CATCHUP_PROBE_TICKS
assert BATCH_BYTES_MAX < CATCHUP_BYTES_MAX < FRAME_BYTES_MAX
assert 0 < BATCH_VALUES_MAX <= PROPOSALS_QUEUED_MAX
assert RECONNECT_BACKOFF_MS_MIN < RECONNECT_BACKOFF_MS_MAX
assert LEARNERS_MAX > 0
assert 0 < MEMBERSHIP_EXTRA_MAX < BATCH_BYTES_MAX
