"""Reads are bounded by max_records and max_bytes, even inside one big stored batch."""

import pyarrow as pa
import pytest

from rayka.config import TopicConfig
from rayka.partitions import codec
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, decode


def messages(result):
    return [m for buf in result.buffers for m in codec.iter_messages(buf)]


def test_max_records_bounds_a_read_inside_one_big_batch(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    log.append(pa.table({"value": pa.array([b"v%05d" % i + b"." * 30 for i in range(50_000)], pa.binary())}))
    for offset in (0, 12_345, 49_995):
        r = log.read(offset, max_records=10)
        n = min(10, 50_000 - offset)
        assert r.records == n and r.next_offset == offset + n
        msgs = messages(r)
        assert [(m.header.base_offset, m.header.next_offset) for m in msgs] == [(offset, offset + n)]
        msgs[0].verify()  # a compacted slice carries its own valid checksum
        assert decode(r)[0] == list(range(offset, offset + n))  # nothing before offset or past n
        assert sum(b.size for b in r.buffers) < 4096  # not the 2 MB stored batch


def test_a_sliced_batch_keeps_keys_headers_and_timestamps(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    n = 100
    keys = [b"k%d" % i if i % 3 else None for i in range(n)]
    headers = [[("h", b"%d" % i)] if i % 2 else None for i in range(n)]
    log.append(batch([b"v%d" % i for i in range(n)], start_ts=1000, keys=keys, headers=headers))
    r = log.read(37, max_records=5)
    (msg,) = messages(r)
    b = codec.decode(msg, r.schema)
    assert b.column("offset").to_pylist() == list(range(37, 42))
    assert b.column("timestamp_ms").to_pylist() == list(range(1037, 1042))
    assert b.column("key").to_pylist() == [b"k37", b"k38", None, b"k40", b"k41"]
    assert b.column("headers").to_pylist() == [[("h", b"37")], None, [("h", b"39")], None, [("h", b"41")]]
    assert msg.header.max_timestamp_ms == 1041 and msg.header.producer_id is None


@pytest.mark.parametrize("max_records,max_bytes", [
    (1, 10**9), (7, 10**9), (333, 10**9), (10**6, 5_000), (50, 20_000), (10**6, 1),
])
def test_successive_bounded_reads_are_continuous_and_within_the_bounds(tmp_path, clock, max_records, max_bytes):
    """Exact bounds: 1 <= records <= max_records; bytes <= max_bytes unless one record comes
    alone; offsets continue exactly where the previous read stopped, across segments."""
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=16 * 1024, index_interval_bytes=1024), clock=clock)
    total = 0
    for size in [1, 300, 3, 700, 40, 7, 1000, 1, 90]:
        log.append(batch([b"r%d" % (total + i) for i in range(size)]))
        total += size
    assert log.segment_count > 2
    offset, seen = 0, []
    while offset < total:
        r = log.read(offset, max_records=max_records, max_bytes=max_bytes)
        assert 1 <= r.records <= max_records and r.next_offset == offset + r.records
        assert sum(b.size for b in r.buffers) <= max_bytes or r.records == 1
        msgs = messages(r)
        assert msgs[0].header.base_offset == offset and msgs[-1].header.next_offset == r.next_offset
        assert all(a.header.next_offset == b.header.base_offset for a, b in zip(msgs, msgs[1:]))
        for m in msgs:
            m.verify()
        o, v = decode(r)
        assert v == [b"r%d" % i for i in o]
        seen += o
        offset = r.next_offset
    assert seen == list(range(total))


def test_whole_batches_within_the_limits_are_served_zero_copy_from_the_file(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    for i in range(20):
        log.append(batch([b"w%d" % i] * 10))
    log.roll()  # sealed: served from the memory map, not from the tail cache
    seg = log._segments[0]
    r = log.read(0, max_records=95)  # nine whole batches, then five records of the tenth
    assert r.records == 95 and len(r.buffers) == 2
    whole, piece = r.buffers
    mapped = seg.view(seg.size)

    def in_map(buf):
        return mapped.address <= buf.address and buf.address + buf.size <= mapped.address + mapped.size

    assert in_map(whole) and whole.size == sum(m.size for m in messages(r)[:9])
    assert not in_map(piece)
