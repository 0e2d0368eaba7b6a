"""A hole found by a read is reported at once (damaged_offsets), and its error says where it is."""

import pytest

from rayka.errors import CorruptRecordError
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, decode, flip_byte, spans


def _sealed_log_with_hole(path, clock):
    """Ten sealed 3-record batches, closed cleanly, then one byte of batch 5 (offsets 15..17)
    flipped: a sealed segment is not checked at open, so only a read can find it."""
    log = PartitionLog(path, clock=clock)
    for i in range(10):
        log.append(batch([b"b%d-%d" % (i, j) for j in range(3)]))
    log.roll()
    log.append(batch([b"after"]))
    log.close()
    segment = sorted(path.glob("*.arrows"))[0]
    position, size, base, nxt = spans(segment)[5]
    assert (base, nxt) == (15, 18)
    flip_byte(segment, position + size - 8)
    return PartitionLog(path, clock=clock)


def test_a_read_that_meets_a_hole_lists_it_in_damaged_offsets(tmp_path, clock):
    log = _sealed_log_with_hole(tmp_path, clock)
    first = log.read(0)
    assert decode(first)[0] == list(range(15)) and first.next_offset == 15  # served up to the hole
    with pytest.raises(CorruptRecordError, match=r"15\.\.17.*seek to 18") as info:
        log.read(15)
    assert (info.value.first_offset, info.value.next_offset) == (15, 18)
    assert log.damaged_offsets == [(15, 17)]
    with pytest.raises(CorruptRecordError):
        log.read(16)  # inside the hole: the same run, listed once
    assert log.damaged_offsets == [(15, 17)]
    assert decode(log.read(18))[0][:3] == [18, 19, 20]


def test_corrupt_record_error_keeps_its_offsets_through_pickling():
    import pickle

    e = pickle.loads(pickle.dumps(CorruptRecordError("x", first_offset=3, next_offset=9)))
    assert (e.first_offset, e.next_offset, str(e)) == (3, 9, "x")
    assert CorruptRecordError("plain").first_offset is None
