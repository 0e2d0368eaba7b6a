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


class _Answer:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class _Partition:
    """A partition stub over a real PartitionLog whose first ``empty`` fetches answer nothing, as
    a closing partition or a new leader whose HW lags does."""

    def __init__(self, log, empty: int):
        self.log, self.empty, self.calls = log, empty, 0

    def fetch(self, offset, max_records, max_bytes, max_wait_ms, with_schema):
        from rayka.messages import FetchResponse

        self.calls += 1
        schema = self.log.schema.serialize().to_pybytes() if with_schema else None
        if self.calls <= self.empty:
            return _Answer(FetchResponse.empty(offset, schema))
        r = self.log.read(offset, max_records=max_records, max_bytes=max_bytes)
        return _Answer(FetchResponse(r.offset, b"".join(r.buffers), r.records, r.next_offset, r.log_start_offset,
                                     self.log.log_end_offset, schema, 0))


class _Cluster:
    def __init__(self, partition):
        self.partition = partition

    def topic(self, name, refresh=False):
        from rayka.coordinator.metadata import TopicMetadata

        return TopicMetadata(name, 1), [self.partition]  # an untyped topic


def _log(tmp_path, clock, n):
    import pyarrow as pa

    from rayka.partitions.log import PartitionLog

    log = PartitionLog(tmp_path, clock=clock)
    log.append(pa.table({"value": pa.array([b"v%d" % i for i in range(n)], pa.binary())}))
    return log


def test_a_fetch_that_answers_nothing_before_the_planned_end_is_asked_again(tmp_path, clock, monkeypatch):
    from rayka.clients import topic_read

    monkeypatch.setattr(topic_read.time, "sleep", lambda s: None)
    part = _Partition(_log(tmp_path, clock, 95), empty=3)
    got = [b for batch in topic_read.read_range(PartitionRange("t", 0, 0, 95), cluster=_Cluster(part))
           for b in batch.column("offset").to_pylist()]
    assert got == list(range(95))  # not cut short by the empty answers (an export would commit a gap)


def test_a_partition_that_never_answers_up_to_the_plan_fails_clearly(tmp_path, clock, monkeypatch):
    from rayka.clients import topic_read
    from rayka.errors import PartitionUnavailableError

    monkeypatch.setattr(topic_read, "_RETRY_S", 0.05)
    part = _Partition(_log(tmp_path, clock, 10), empty=0)
    with pytest.raises(PartitionUnavailableError, match="planned up to 20"):
        list(topic_read.read_range(PartitionRange("t", 0, 0, 20), cluster=_Cluster(part)))
