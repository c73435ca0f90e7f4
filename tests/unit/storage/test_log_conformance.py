"""The LogStore contract (storage/base.py), checked against every implementation."""

from __future__ import annotations

import pytest
from storage_log_helpers import all_entries, chosen, make_acceptor, make_entries, make_value

from paxdb.errors import UsageError
from paxdb.paxos.chain import CHAIN_START
from paxdb.paxos.effects import ChosenRecord, LogBaseRecord
from paxdb.paxos.messages import LogEntry
from paxdb.storage.base import ChosenBounds, LogStore


def test_an_unknown_group_is_empty(store: LogStore) -> None:
    assert store.load_acceptor("main") is None
    assert store.chosen_bounds("main") == ChosenBounds(0, 0, CHAIN_START)
    assert store.chosen_range("main", 0, 10, 1 << 20) == []


def test_the_latest_acceptor_record_replaces_the_previous(store: LogStore) -> None:
    first = make_acceptor(0, number=1)
    second = make_acceptor(0, number=2, value=make_value(7, 100))
    store.write_batch([("main", first)], sync=True)
    assert store.load_acceptor("main") == first
    store.write_batch([("main", second)], sync=False)
    assert store.load_acceptor("main") == second


def test_chosen_values_read_back_in_order(store: LogStore) -> None:
    entries = make_entries(0, 20, size=50)
    store.write_batch(chosen("main", entries[:5]), sync=True)
    store.write_batch(chosen("main", entries[5:]), sync=True)
    assert store.chosen_bounds("main") == ChosenBounds(0, 20, CHAIN_START)
    assert store.chosen_range("main", 0, 20, 1 << 20) == entries
    assert store.chosen_range("main", 3, 7, 1 << 20) == entries[3:7]
    assert store.chosen_range("main", 15, 100, 1 << 20) == entries[15:]


def test_chosen_range_stops_at_bytes_max_but_returns_one_entry(store: LogStore) -> None:
    entries = make_entries(0, 10, size=99)  # Each value is 100 bytes.
    store.write_batch(chosen("main", entries), sync=True)
    assert store.chosen_range("main", 2, 10, 0) == entries[2:3]
    assert store.chosen_range("main", 2, 10, 250) == entries[2:4]
    assert store.chosen_range("main", 2, 10, 300) == entries[2:5]


def test_chosen_range_outside_the_stored_values_is_empty(store: LogStore) -> None:
    store.write_batch(chosen("main", make_entries(0, 5)), sync=True)
    store.truncate_below("main", 2)
    assert store.chosen_range("main", 1, 5, 1 << 20) == []
    assert store.chosen_range("main", 5, 9, 1 << 20) == []
    assert store.chosen_range("main", 3, 3, 1 << 20) == []


def test_a_replayed_chosen_record_is_ignored(store: LogStore) -> None:
    entries = make_entries(0, 4)
    store.write_batch(chosen("main", entries), sync=True)
    store.write_batch(chosen("main", entries[1:3] + entries[1:2]), sync=True)
    assert store.chosen_bounds("main").instance_next == 4
    assert all_entries(store, "main") == entries


def test_a_chosen_record_twice_in_one_batch_is_written_once(store: LogStore) -> None:
    entries = make_entries(0, 3)
    store.write_batch(chosen("main", entries + entries[2:]), sync=True)
    assert all_entries(store, "main") == entries


def test_a_replay_below_the_truncation_point_is_ignored(store: LogStore) -> None:
    entries = make_entries(0, 6)
    store.write_batch(chosen("main", entries), sync=True)
    store.truncate_below("main", 4)
    store.write_batch(chosen("main", entries[:2]), sync=True)
    assert store.chosen_bounds("main").instance_min == 4


def test_a_gap_raises_usage_error_and_writes_nothing(store: LogStore) -> None:
    entries = make_entries(0, 5)
    store.write_batch(chosen("main", entries[:2]), sync=True)
    with pytest.raises(UsageError, match="gap"):
        store.write_batch(chosen("main", entries[3:4]), sync=True)
    assert store.chosen_bounds("main").instance_next == 2
    store.write_batch(chosen("main", entries[2:]), sync=True)
    assert all_entries(store, "main") == entries


def test_a_different_value_at_a_stored_instance_is_a_bug(store: LogStore) -> None:
    entries = make_entries(0, 3)
    store.write_batch(chosen("main", entries), sync=True)
    other = LogEntry(1, make_value(999), entries[1].chain)
    with pytest.raises(AssertionError, match="two different values"):
        store.write_batch([("main", ChosenRecord(other))], sync=True)


def test_truncate_below_keeps_the_chain_right(store: LogStore) -> None:
    entries = make_entries(0, 10)
    store.write_batch(chosen("main", entries), sync=True)
    store.truncate_below("main", 4)
    assert store.chosen_bounds("main") == ChosenBounds(4, 10, entries[3].chain)
    assert all_entries(store, "main") == entries[4:]
    store.truncate_below("main", 2)  # Below instance_min: nothing changes.
    assert store.chosen_bounds("main") == ChosenBounds(4, 10, entries[3].chain)
    store.truncate_below("main", 10)  # Everything: the log is empty at 10.
    assert store.chosen_bounds("main") == ChosenBounds(10, 10, entries[9].chain)
    more = make_entries(10, 3, chain_before=entries[9].chain)
    store.write_batch(chosen("main", more), sync=True)
    assert all_entries(store, "main") == more


def test_truncate_above_the_stored_values_is_a_bug(store: LogStore) -> None:
    store.write_batch(chosen("main", make_entries(0, 3)), sync=True)
    with pytest.raises(AssertionError):
        store.truncate_below("main", 4)


def test_a_log_base_restarts_the_log(store: LogStore) -> None:
    entries = make_entries(0, 5)
    store.write_batch(chosen("main", entries), sync=True)
    store.write_batch([("main", LogBaseRecord(100, 1234))], sync=True)
    assert store.chosen_bounds("main") == ChosenBounds(100, 100, 1234)
    assert store.chosen_range("main", 0, 5, 1 << 20) == []
    with pytest.raises(UsageError):
        store.write_batch(chosen("main", make_entries(101, 1)), sync=True)
    after = make_entries(100, 3, chain_before=1234)
    store.write_batch(chosen("main", after), sync=True)
    assert all_entries(store, "main") == after


def test_a_log_base_drops_only_votes_below_it(store: LogStore) -> None:
    store.write_batch([("a", make_acceptor(5)), ("b", make_acceptor(50))], sync=True)
    store.write_batch([("a", LogBaseRecord(10, 1)), ("b", LogBaseRecord(10, 1))], sync=True)
    assert store.load_acceptor("a") is None
    assert store.load_acceptor("b") == make_acceptor(50)


def test_a_log_base_and_values_in_one_batch(store: LogStore) -> None:
    store.write_batch(chosen("main", make_entries(0, 3)), sync=True)
    after = make_entries(7, 2, chain_before=77)
    batch = [("main", LogBaseRecord(7, 77)), *chosen("main", after), *chosen("main", after[:1])]
    store.write_batch(batch, sync=True)
    assert store.chosen_bounds("main") == ChosenBounds(7, 9, 77)
    assert all_entries(store, "main") == after


def test_groups_are_independent(store: LogStore) -> None:
    one = make_entries(0, 4, seed=1)
    two = make_entries(0, 2, seed=2)
    batch = [*chosen("one", one), ("two", make_acceptor(3)), *chosen("two", two)]
    store.write_batch(batch, sync=True)
    store.truncate_below("one", 3)
    assert store.groups() == ["one", "two"]
    assert all_entries(store, "one") == one[3:]
    assert all_entries(store, "two") == two
    assert store.load_acceptor("one") is None
    assert store.load_acceptor("two") == make_acceptor(3)


def test_values_larger_than_a_segment(store: LogStore) -> None:
    entries = make_entries(0, 3, size=5000)
    store.write_batch(chosen("main", entries), sync=True)
    store.write_batch([("main", make_acceptor(3, value=make_value(3, 4000)))], sync=True)
    assert all_entries(store, "main") == entries
    assert store.load_acceptor("main") == make_acceptor(3, value=make_value(3, 4000))
