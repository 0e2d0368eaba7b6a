"""Consumer checks that need no Ray: bad option values refused before connecting, a poll's
records grouped by partition, and a group's total lag never counting an unknown lag as 0."""

import pyarrow as pa
import pytest

import rayka
from rayka.clients.fetcher import Fetcher, PartitionState
from rayka.clients.types import GroupDescription, GroupPartitionDescription, TopicPartition
from rayka.errors import ConfigError


@pytest.mark.parametrize("option, value", [
    ("max_poll_records", 0), ("max_poll_records", -3), ("max_poll_records", "5"), ("fetch_max_wait_ms", -1),
    ("consumer_timeout_ms", "x"), ("enable_auto_commit", "no"), ("max_partition_fetch_bytes", 0),
    ("auto_commit_interval_ms", -1), ("fetch_max_wait_ms", float("nan")), ("value_deserializer", "yaml"),
])
def test_bad_option_values_are_refused_naming_the_option_before_connecting(option, value):
    # conftest makes any Ray start fail: the check must come first
    with pytest.raises(ConfigError, match=option):
        rayka.Consumer("t", **{option: value})


def test_group_options_without_a_group_are_refused_before_connecting():
    with pytest.raises(ConfigError, match="need a group_id"):
        rayka.Consumer("t", session_timeout_ms=5000)


def _state(fetcher, partition, offsets):
    tp = TopicPartition("t", partition)
    s = fetcher.states[tp] = PartitionState(tp, handle=None)
    for first, last in offsets:
        batch = pa.record_batch([pa.array(range(first, last + 1), pa.int64())], names=["offset"])
        s.buffered.append(batch)
        s.buffered_records += batch.num_rows
    return s


def test_drain_hands_out_each_partition_once_in_offset_order():
    f = Fetcher(max_wait_ms=0, max_partition_records=100, max_partition_bytes=1 << 20,
                max_buffered_records=1000, on_out_of_range=None)
    _state(f, 0, [(0, 3)])
    _state(f, 1, [(0, 1)])
    _state(f, 2, [(0, 3), (4, 5)])
    out = f.drain(12)
    partitions = [s.tp.partition for s, _ in out]
    assert sorted(partitions) == [0, 1, 2] and len(partitions) == 3, "a partition handed out twice"
    for _, batches in out:
        offsets = [o for b in batches for o in b.column(0).to_pylist()]
        assert offsets == list(range(len(offsets)))
    assert sum(b.num_rows for _, batches in out for b in batches) == 12


def test_total_lag_is_unknown_when_a_partition_lag_is_unknown():
    known = GroupPartitionDescription("t", 0, committed=5, end_offset=10, member=None)
    unknown = GroupPartitionDescription("t", 1, committed=50, end_offset=None, member=None)
    assert GroupDescription("g", "Stable", "range", 1, [], [known]).total_lag == 5
    assert GroupDescription("g", "Stable", "range", 1, [], [known, unknown]).total_lag is None
