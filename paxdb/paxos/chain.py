"""The CRC32 chain over chosen values: `chain[i] = crc32(value_bytes[i], chain[i-1])`.

`CHAIN_START` is the chain "before instance 0". Checkpoints store the chain value at their
instance, so the chain never resets. Two replicas that applied instance i must hold the
same `chain[i]`; a mismatch means divergence or corruption and halts the replica.
"""

from __future__ import annotations

import zlib

from paxdb.paxos.values import Value

CHAIN_START = 0


def chain_next(previous: int, value: Value) -> int:
    """The chain value after appending `value` to a log whose chain is `previous`."""
    assert 0 <= previous <= 0xFFFFFFFF
    return zlib.crc32(value.encode(), previous)
