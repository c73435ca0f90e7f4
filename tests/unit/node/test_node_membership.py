"""The node side of membership: address books, planning a change, joining, the frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from paxdb import errors
from paxdb.client.protocol import MembersRequest, decode, encode
from paxdb.node.config import ConfigError, build_config, joined_config
from paxdb.node.membership import (
    ClusterMembers,
    decode_addresses,
    encode_addresses,
    next_step,
    plan,
)
from paxdb.wire import FrameDecoder

A = ("127.0.0.1", 7001)
B = ("127.0.0.1", 7002)
C = ("127.0.0.1", 7003)
D = ("127.0.0.1", 7004)
THREE = ClusterMembers((1, 2, 3), (), 10, {1: A, 2: B, 3: C})


def test_address_books_round_trip_and_bad_ones_are_refused() -> None:
    book = {3: C, 1: A, 12: ("::1", 9000)}
    assert decode_addresses(encode_addresses(book)) == (book, -1)
    assert decode_addresses(encode_addresses(book, 17)) == (book, 17)
    for bad in [
        b"[]",
        b'{"a": {"1": "nowhere"}, "f": -1}',
        b'{"a": {"x": "127.0.0.1:1"}, "f": -1}',
        b'{"a": {}, "f": "1"}',
        b'{"a": {}}',
        b"{",
        b" " * 5000,
    ]:
        with pytest.raises(ValueError):
            decode_addresses(bad)


def test_add_makes_a_learner_with_its_address() -> None:
    change = plan(THREE, "add", 4, D)
    assert change is not None
    assert (change.members, change.learners, change.prev_version) == ((1, 2, 3), (4,), 10)
    assert decode_addresses(change.extra) == ({1: A, 2: B, 3: C, 4: D}, -1)


def test_promote_then_remove_and_what_is_refused() -> None:
    with_learner = ClusterMembers((1, 2, 3), (4,), 11, {1: A, 2: B, 3: C, 4: D})
    promoted = plan(with_learner, "promote", 4, None)
    assert promoted is not None and (promoted.members, promoted.learners) == ((1, 2, 3, 4), ())
    removed = plan(with_learner, "remove", 1, None)
    assert removed is not None and removed.members == (2, 3)
    assert decode_addresses(removed.extra) == ({2: B, 3: C, 4: D}, -1)
    dropped = plan(with_learner, "remove", 4, None)
    assert dropped is not None and dropped.learners == () and dropped.members == (1, 2, 3)
    # Nothing to do: already there at that address, already a voter, already gone.
    assert plan(with_learner, "add", 4, D) is None
    assert plan(THREE, "promote", 2, None) is None
    assert plan(THREE, "remove", 9, None) is None
    for operation, node, address, message in [
        ("add", 2, D, "node 2 is already a voter at 127.0.0.1:7002"),
        ("add", 5, B, "is node 2's address"),
        ("promote", 5, None, "node 5 is not a learner"),
        ("add", 5, None, "needs the node's peer address"),
    ]:
        with pytest.raises(errors.ProgrammingError, match=message):
            plan(THREE, operation, node, address)
    alone = ClusterMembers((1,), (), 3, {1: A})
    with pytest.raises(errors.ProgrammingError, match="only voter"):
        plan(alone, "remove", 1, None)


def test_the_members_frame_round_trips_and_bad_ones_are_refused() -> None:
    request = MembersRequest(7, "add", 4, "127.0.0.1:7004")
    (mapping,) = FrameDecoder().feed(encode(request))
    assert decode(mapping) == request
    for field, value in [("op", "drop"), ("node", -1), ("addr", "x" * 400), ("addr", 5)]:
        bad = dict(mapping, **{field: value})
        with pytest.raises(errors.RemoteProtocolError):
            decode(bad)


def _status(**changes: Any) -> dict[str, Any]:
    config = build_config(1, "/nonexistent", "127.0.0.1:7001", "1=127.0.0.1:7001,2=127.0.0.1:7002")
    status = {
        "cluster": config.cluster_id,
        "bootstrap": config.peers_spec,
        "tick_ms": config.tick_ms,
        "peers": {"1": {"address": "127.0.0.1:7001"}, "2": {"address": "127.0.0.1:7002"}},
    }
    status.update(changes)
    return status


def test_a_joining_node_takes_the_cluster_id_from_the_cluster(tmp_path: Path) -> None:
    joiner = build_config(4, str(tmp_path / "d"), "127.0.0.1:7004", None, join="paxdb://x:1/main")
    assert joiner.peers == {}
    joined = joined_config(joiner, _status())
    assert joined.members == (1, 2) and joined.cluster_id == _status()["cluster"]
    assert joined.known == {1: A, 2: B}
    with pytest.raises(ConfigError, match="does not follow from its members"):
        joined_config(joiner, _status(cluster="paxdb-0000"))
    with pytest.raises(ConfigError, match="status is not usable"):
        joined_config(joiner, _status(bootstrap=None, peers=[]))
    taken = build_config(5, str(tmp_path / "e"), "127.0.0.1:7005", None, join="paxdb://x:1/main")
    peers = dict(_status()["peers"], **{"5": {"address": "127.0.0.1:7009"}})
    with pytest.raises(ConfigError, match="already has a node 5 at 127.0.0.1:7009"):
        joined_config(taken, _status(peers=peers))
    moved = build_config(2, str(tmp_path / "f"), "127.0.0.1:7005", None, join="paxdb://x:1/main")
    with pytest.raises(ConfigError, match="the cluster says node 2 is at 127.0.0.1:7002"):
        joined_config(moved, _status())


def test_other_databases_follow_main_one_step_at_a_time() -> None:
    wanted = ClusterMembers((2, 3, 4), (5,), 40, {2: B, 3: C, 4: D, 5: ("127.0.0.1", 7005)})
    first = next_step(THREE, wanted)
    assert first is not None  # Newcomers come in as learners, nobody leaves yet.
    assert (first.members, first.learners, first.prev_version) == ((1, 2, 3), (4, 5), 10)
    book, follows = decode_addresses(first.extra)
    assert follows == 40  # Stamped with the version of main it copies.
    middle = ClusterMembers(first.members, first.learners, 12, book, follows)
    second = next_step(middle, wanted)
    assert second is not None
    assert (second.members, second.learners) == ((2, 3, 4), (5,))
    assert decode_addresses(second.extra) == (wanted.addresses, 40)
    done = ClusterMembers((2, 3, 4), (5,), 13, dict(wanted.addresses), 40)
    assert next_step(done, wanted) is None
    # A node whose main lags (it applied an older version) does not undo a newer step.
    older = ClusterMembers((1, 2, 3), (), 30, {1: A, 2: B, 3: C})
    assert next_step(done, older) is None


def test_learner_needs_join(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--learner needs --join URL"):
        build_config(5, str(tmp_path / "d"), "127.0.0.1:7005", None, learner=True)
