"""Values: what one Paxos instance chooses, and how client requests are batched into one.

A chosen value is a `Value(kind, payload)`. Its canonical bytes (`Value.encode`) are the
kind as one byte followed by the payload; the CRC chain and value equality use exactly
these bytes, so two replicas agree on a value if and only if they agree on its bytes.

Kinds (PhxPaxos keeps master and membership as state machines in the same log; so do we):
- `NOOP`: fills an instance, changes nothing.
- `SQL_BATCH`: a batch of opaque client requests, encoded by `encode_batch`; the core
  never looks inside a request, the SQL state machine does.
- `MASTER`: "node N is master, lease L ticks, replacing master version V" (see master.py).
- `MEMBERSHIP`: the voting members from the next instance on (see membership.py).

The batch encoding is a count followed by length-prefixed items, all big-endian, so it
is pure, canonical and cheap to split without copying more than once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from paxdb.limits import BATCH_VALUES_MAX


class ValueKind(IntEnum):
    NOOP = 0
    SQL_BATCH = 1
    MASTER = 2
    MEMBERSHIP = 3


@dataclass(frozen=True, slots=True)
class Value:
    """The thing one instance chooses. Immutable; compared by kind and payload."""

    kind: ValueKind
    payload: bytes = b""

    def __post_init__(self) -> None:
        assert isinstance(self.kind, ValueKind)
        assert isinstance(self.payload, bytes)

    def encode(self) -> bytes:
        return bytes((self.kind,)) + self.payload

    @staticmethod
    def decode(data: bytes) -> Value:
        """Inverse of `encode`. Raises ValueError on bytes that are not a value."""
        if not data:
            raise ValueError("empty value")
        try:
            kind = ValueKind(data[0])
        except ValueError as error:
            raise ValueError(f"unknown value kind {data[0]}") from error
        return Value(kind, bytes(data[1:]))

    def __len__(self) -> int:
        return 1 + len(self.payload)


NOOP_VALUE = Value(ValueKind.NOOP)

_COUNT_BYTES = 4
_LENGTH_BYTES = 4


def encode_batch(items: list[bytes] | tuple[bytes, ...]) -> bytes:
    """Join client requests into one SQL_BATCH payload."""
    assert 0 < len(items) <= BATCH_VALUES_MAX
    parts = [len(items).to_bytes(_COUNT_BYTES, "big")]
    for item in items:
        parts.append(len(item).to_bytes(_LENGTH_BYTES, "big"))
        parts.append(item)
    return b"".join(parts)


def decode_batch(payload: bytes) -> list[bytes]:
    """Split an SQL_BATCH payload. Raises ValueError if it is not exactly a batch."""
    if len(payload) < _COUNT_BYTES:
        raise ValueError("batch too short")
    count = int.from_bytes(payload[:_COUNT_BYTES], "big")
    if count == 0 or count > BATCH_VALUES_MAX:
        raise ValueError(f"batch count {count} out of range")
    items: list[bytes] = []
    offset = _COUNT_BYTES
    view = memoryview(payload)
    for _ in range(count):
        end = offset + _LENGTH_BYTES
        if end > len(payload):
            raise ValueError("batch truncated in a length")
        length = int.from_bytes(view[offset:end], "big")
        if end + length > len(payload):
            raise ValueError("batch truncated in an item")
        items.append(bytes(view[end : end + length]))
        offset = end + length
    if offset != len(payload):
        raise ValueError("trailing bytes after batch")
    return items
