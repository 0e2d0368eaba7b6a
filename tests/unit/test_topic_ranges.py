"""The pure parts of bounded topic reads: time bounds and range splitting (topic_read.py)."""

import datetime as dt

import pytest

from rayka.clients.topic_read import PartitionRange, split_ranges, to_timestamp_ms
from rayka.errors import ConfigError


def test_time_bounds_are_utc_milliseconds():
    aware = dt.datetime(2026, 12, 1, 10, 0, 0, 123000, tzinfo=dt.timezone.utc)
    assert to_timestamp_ms(aware) == 1796119200123
    assert to_timestamp_ms(aware.replace(tzinfo=None)) == 1796119200123  # naive means UTC
    assert to_timestamp_ms("2026-12-01T10:00:00.123Z") == 1796119200123
    assert to_timestamp_ms("2026-12-01T11:00:00.123+01:00") == 1796119200123


@pytest.mark.parametrize("bad", ["yesterday", 3.5, None, b"2026-12-01"])
def test_a_bad_time_bound_names_what_it_takes(bad):
    with pytest.raises(ConfigError, match="ISO 8601"):
        to_timestamp_ms(bad)


def test_ranges_split_into_pieces_that_cover_each_offset_once():
    ranges = [PartitionRange("t", 0, 10, 35, "n0"), PartitionRange("t", 1, 5, 5, "n1"),
              PartitionRange("t", 2, 0, 10, "n1")]
    pieces = split_ranges(ranges, 10)
    assert [(r.partition, r.start, r.end) for r in pieces] == [
        (0, 10, 20), (0, 20, 30), (0, 30, 35), (2, 0, 10)]  # the empty range is dropped
    assert all(r.node_id == {0: "n0", 2: "n1"}[r.partition] for r in pieces)
    assert sum(r.records for r in pieces) == sum(r.records for r in ranges) == 35
    with pytest.raises(ConfigError):
        split_ranges(ranges, 0)
