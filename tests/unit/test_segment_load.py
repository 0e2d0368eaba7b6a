"""What opening a segment returns (recovery.SegmentLoad) and the index rule both ways share
(SegmentIndex.add_batch / add_hole), checked on the parts alone, without a LogSegment."""

import pytest

from rayka.config import TopicConfig
from rayka.partitions import recovery
from rayka.partitions.index import SegmentIndex
from rayka.partitions.log import PartitionLog
from rayka.partitions.scan import SegmentScanner
from rayka.partitions.segment_file import SegmentFile

from storage_helpers import batch, spans


def test_an_entry_for_the_first_batch_one_per_interval_and_one_after_a_hole(tmp_path):
    index = SegmentIndex(tmp_path / "00000000000000000000.arrows", 100, problem=lambda: None)
    index.clear()
    index.add_batch(0, 50, 40, -5, first=True)  # first: indexed
    index.add_batch(1, 90, 40, 7, first=False)  # 40 bytes since: not yet
    index.add_batch(2, 130, 40, 8, first=False)  # 80: not yet
    index.add_batch(3, 170, 40, 9, first=False)  # 120 >= 100: indexed
    index.add_hole()
    index.add_batch(9, 300, 10, 9, first=False)  # after a hole: indexed, however close
    assert list(index.offsets.keys) == [0, 3, 9] and list(index.offsets.values) == [50, 170, 300]
    assert list(index.times.keys) == [-5, 9, 9] and list(index.times.values) == [0, 3, 9]
    index.flush(fsync=False)
    again = SegmentIndex(tmp_path / "00000000000000000000.arrows", 100, problem=lambda: None)
    assert again.load() and again.offsets.pair == index.offsets.pair


@pytest.mark.parametrize("clean", [True, False])
def test_a_fast_load_and_a_rescan_of_an_intact_segment_find_the_same_end(tmp_path, clock, clean):
    cfg = TopicConfig(index_interval_bytes=2000)
    log = PartitionLog(tmp_path, config=cfg, clock=clock)
    for i in range(30):
        clock.advance(5)
        log.append(batch([b"r%d" % i + b"." * 400] * 2, start_ts=1000 + 10 * i))
    schema_bytes = log._schema_bytes
    log.close()
    file = SegmentFile(tmp_path, 0, schema_bytes)
    size = file.path.stat().st_size

    index = SegmentIndex(file.path, 2000, problem=lambda: None)
    fast = recovery.load_fast(file, index, verify=True)
    fast_entries = index.offsets.pair

    index = SegmentIndex(file.path, 2000, problem=lambda: None)
    scanner = SegmentScanner(file, index)
    full = recovery.recover(file, index, scanner, truncate=not clean, clean=clean)

    for load in (fast, full):
        assert (load.size, load.next_offset, load.max_timestamp_ms) == (size, 60, 1000 + 10 * 29 + 1)
        assert (load.first_append_ms, load.last_append_ms) == (clock() - 29 * 5, clock())
    assert full.report.batches == 30 and full.report.checked_from == 0 and not full.report.holes
    assert fast.verified == (fast_entries[1][-1], size)  # the tail after the last entry, checked
    assert full.verified is None and scanner.verified.ranges() == [(spans(file.path)[0][0], size)]
    assert index.offsets.pair == fast_entries  # the rescan rebuilt the index that was on disk
    with pytest.raises(AttributeError):
        full.size = 0  # a value: LogSegment applies it, nobody edits it
