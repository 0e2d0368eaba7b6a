"""Segment roll by size and age, retention by time and size: whole segments only."""

import pytest

from rayka.config import TopicConfig
from rayka.errors import OffsetOutOfRangeError
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, read_all

DAY = 24 * 3600 * 1000


def test_roll_by_size_keeps_segments_under_segment_bytes(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=8192), clock=clock)
    for _ in range(100):
        log.append(batch([b"x" * 300]))
    sizes = [p.stat().st_size for p in sorted(tmp_path.glob("*.arrows"))]
    assert len(sizes) > 5 and all(s <= 8192 for s in sizes)
    names = sorted(int(p.stem) for p in tmp_path.glob("*.arrows"))
    assert names[0] == 0 and names == sorted(set(names))


def test_roll_by_age(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_ms=1000), clock=clock)
    log.append(batch([b"a"]))
    clock.advance(999)
    log.append(batch([b"b"]))
    assert log.segment_count == 1
    clock.advance(2)
    log.append(batch([b"c"]))  # the active segment is 1001 ms old: roll before appending
    assert log.segment_count == 2
    clock.advance(1000)
    log.tick()  # and the tick rolls an old active segment even without appends
    assert log.segment_count == 3


def test_retention_by_time_deletes_whole_old_segments_and_moves_the_start(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096, retention_ms=DAY), clock=clock)
    for i in range(30):
        log.append(batch([b"old" * 100], start_ts=clock()))
    old_end = log.log_end_offset
    clock.advance(DAY // 2)
    for i in range(5):
        log.append(batch([b"new" * 100], start_ts=clock()))
    clock.advance(DAY // 2 + 1)  # the old records are now past retention, the new ones not
    log.tick()
    assert log.log_start_offset >= old_end - 10 and log.log_start_offset > 0
    assert read_all(log)[0][-1] == log.log_end_offset - 1
    with pytest.raises(OffsetOutOfRangeError, match=rf"{log.log_start_offset}\.\.{log.log_end_offset}"):
        log.read(0)
    remaining = sorted(int(p.stem) for p in tmp_path.glob("*.arrows"))
    assert remaining[0] == log.log_start_offset


def test_retention_by_size_deletes_oldest_segments(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096, retention_bytes=12_000), clock=clock)
    for i in range(60):
        log.append(batch([b"s" * 300], start_ts=clock()))
    log.tick()
    assert log.size_bytes - log._segments[0].size < 12_000
    assert log.log_start_offset > 0
    offsets = read_all(log)[0]
    assert offsets == list(range(log.log_start_offset, 60))


def test_an_expired_active_segment_rolls_then_goes(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(retention_ms=1000), clock=clock)
    log.append(batch([b"a", b"b"], start_ts=clock()))
    clock.advance(500)
    log.tick()
    assert log.log_start_offset == 0
    clock.advance(502)  # the newest record (stamped clock + 1) is now 1001 ms old
    log.tick()
    assert log.log_start_offset == log.log_end_offset == 2
    assert log.append(batch([b"c"])).base_offset == 2


def test_unlimited_retention_keeps_everything(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096, retention_ms=-1), clock=clock)
    for i in range(20):
        log.append(batch([b"k" * 400], start_ts=0))
    clock.advance(10 * DAY)
    log.tick()
    assert log.log_start_offset == 0 and read_all(log)[0] == list(range(20))


def test_deletable_prefix_rules():
    from rayka.partitions.retention import active_expired, deletable_prefix, roll_due

    cfg = TopicConfig(retention_ms=1000, retention_bytes=-1)
    now = 10_000
    # Sealed segments' newest records at 8000 (expired), 9500 (kept); the active one never counts.
    assert deletable_prefix([100, 100, 100], [8000, 9500, 1], now, cfg) == 1
    by_size = TopicConfig(retention_ms=-1, retention_bytes=250)
    assert deletable_prefix([100, 100, 100, 100], [0, 0, 0, 0], now, by_size) == 1  # 300 left >= 250
    assert deletable_prefix([100, 100], [0, 0], now, by_size) == 0
    assert active_expired(False, 8000, now, cfg) and not active_expired(True, 8000, now, cfg)
    assert roll_due(False, 0, now, TopicConfig(segment_ms=10_000)) and not roll_due(True, 0, now, cfg)
