"""Client requests in the simulator: unique payloads, proposed at random nodes.

Each request carries its id in its payload, so the durability checker can find it in
the chosen log. A request refused with NOT_MASTER is retried a bounded number of times
(at the hinted master if there is one), as a real driver would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from paxdb.paxos.values import Value, ValueKind

RETRIES_MAX = 3  # Background requests give up soon, so a storm of retries stays small.
LIVENESS_RETRIES_MAX = 1000  # Liveness requests retry until the phase deadline.


def payload_for(request_id: int) -> bytes:
    return b"req-%d" % request_id


def value_for(request_id: int) -> Value:
    return Value(ValueKind.SQL_BATCH, payload_for(request_id))


@dataclass(slots=True)
class Workload:
    next_id: int = 0
    outstanding: dict[int, int] = field(default_factory=dict)  # id -> retries left
    submitted: int = 0
    chosen: int = 0
    refused: int = 0
    dropped: int = 0

    def new_request(self, retries: int = RETRIES_MAX) -> int:
        request_id = self.next_id
        self.next_id += 1
        self.outstanding[request_id] = retries
        self.submitted += 1
        return request_id

    def retry_allowed(self, request_id: int) -> bool:
        left = self.outstanding.get(request_id, 0)
        if left <= 0:
            self.outstanding.pop(request_id, None)
            return False
        self.outstanding[request_id] = left - 1
        return True

    def finished(self, request_id: int) -> None:
        self.outstanding.pop(request_id, None)
