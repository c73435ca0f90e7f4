"""The write path's waiter: resolved by the completion, or timed out and forgotten."""

from __future__ import annotations

import asyncio
import itertools
from types import SimpleNamespace
from typing import Any

import pytest

from paxdb import errors
from paxdb.node import server as server_module
from paxdb.node.group import WriteOutcome
from paxdb.node.server import ClientServer


class _Replica:
    def __init__(self) -> None:
        self.proposed: list[Any] = []

    def propose(self, value: object, token: object) -> None:
        self.proposed.append(token)


def _server() -> tuple[ClientServer, Any]:
    server = ClientServer.__new__(ClientServer)
    server._tokens = itertools.count()  # type: ignore[attr-defined]
    server.runtime = SimpleNamespace(schedule_flush=lambda: None)  # type: ignore[assignment]
    group = SimpleNamespace(waiters={}, replica=_Replica())
    return server, group


def test_a_write_nobody_completes_times_out_and_its_waiter_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "WRITE_TIMEOUT_S", 0.05)
    server, group = _server()

    async def run() -> None:
        with pytest.raises(errors.ProposalTimeout, match="retry it with the same sequence"):
            await server._propose(group, b"item")

    asyncio.run(run())
    assert group.replica.proposed == [0]
    assert group.waiters == {}


def test_a_completed_write_returns_its_outcome_and_cancels_the_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_module, "WRITE_TIMEOUT_S", 0.05)
    server, group = _server()
    outcome = WriteOutcome(None, 7)

    async def run() -> WriteOutcome:
        task = asyncio.ensure_future(server._propose(group, b"item"))
        await asyncio.sleep(0)
        group.waiters.pop(0).set_result(outcome)
        result = await task
        await asyncio.sleep(0.1)  # Past the timeout: the cancelled timer must not fire.
        return result

    assert asyncio.run(run()) is outcome
