"""An idle partition gives its memory back (PartitionLog.release_memory) and reads on as before."""

from rayka.config import TopicConfig
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, read_all


def test_release_memory_drops_maps_caches_and_buffers_and_reads_come_back(tmp_path):
    log = PartitionLog(tmp_path / "p", config=TopicConfig(segment_bytes=4096))
    values = [b"v%04d" % i + b"x" * 200 for i in range(60)]
    for i in range(0, 60, 6):
        log.append(batch(values[i:i + 6]))
    big = batch([b"y" * 1024] * 5000)  # over the tail cache's size: encoded into the reused buffer
    log.append(big)
    expected = values + [b"y" * 1024] * 5000
    assert read_all(log)[1] == expected  # maps every segment
    assert log.segment_count > 2 and log._encode_buffer._buffer is not None
    log.append(batch([b"tail"]))  # rolls: a new active segment, its batch cached for followers
    active = log._segments[-1]
    assert read_all(log, log.log_end_offset - 1)[1] == [b"tail"]
    assert active._tail._entries and any(seg._map is not None for seg in log._segments)
    log.release_memory()
    assert all(seg._map is None for seg in log._segments)
    assert not active._tail._entries and log._encode_buffer._buffer is None
    assert all(not seg._index_loaded for seg in log._segments[:-1])
    offsets, got = read_all(log)  # everything is read back from the files again
    assert got == expected + [b"tail"] and offsets == list(range(len(expected) + 1))
    log.append(batch([b"after"]))
    assert read_all(log, log.log_end_offset - 1)[1] == [b"after"]
    log.close()
    log.release_memory()  # a closed log: nothing to do, no error
