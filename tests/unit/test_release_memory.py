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
    assert active._tail._entries and any(seg.file.mapped for seg in log._segments)
    log.release_memory()
    assert all(not seg.file.mapped for seg in log._segments)
    assert not active._tail._entries and log._encode_buffer._buffer is None
    assert all(not seg.index.loaded for seg in log._segments[:-1])
    offsets, got = read_all(log)  # everything is read back from the files again
    assert got == expected + [b"tail"] and offsets == list(range(len(expected) + 1))
    log.append(batch([b"after"]))
    assert read_all(log, log.log_end_offset - 1)[1] == [b"after"]
    log.close()
    log.release_memory()  # a closed log: nothing to do, no error


def test_release_beside_concurrent_reads_never_fails_a_read(tmp_path):
    """release_memory() (the actor's tick thread) while readers read sealed segments (reads take
    no lock): every read returns exactly the records asked for, never an IndexError or a
    CorruptRecordError about index files having changed. Bounded: 3 readers for 1.5 s."""
    import random
    import threading
    import time

    from storage_helpers import decode

    log = PartitionLog(tmp_path / "p", config=TopicConfig(segment_bytes=64 * 1024, index_interval_bytes=256))
    values = {}
    for i in range(3000):
        v = b"v%05d" % i + b"." * 40
        values[log.append(batch([v])).base_offset] = v
    assert log.segment_count > 10
    failures, reads = [], [0]
    stop = threading.Event()

    def reader(seed):
        rng = random.Random(seed)
        while not stop.is_set():
            o = rng.randrange(0, 3000)
            try:
                got_offsets, got_values = decode(log.read(o, max_records=3), o, 3)
                if got_offsets != list(range(o, min(o + 3, 3000))) or got_values != [values[x] for x in got_offsets]:
                    failures.append((o, got_offsets))
            except Exception as exc:  # noqa: BLE001 - any error is the failure being tested for
                failures.append((o, repr(exc)[:200]))
            reads[0] += 1

    def releaser():
        while not stop.is_set():
            log.release_memory()
            # also a time lookup, which reads the time index of a segment that may be released
            try:
                log.offset_for_time(0)
            except Exception as exc:  # noqa: BLE001
                failures.append(("offset_for_time", repr(exc)[:200]))

    threads = [threading.Thread(target=reader, args=(s,)) for s in range(3)] + [threading.Thread(target=releaser)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline and not failures:
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join(10)
    assert failures == [], failures[:5]
    assert reads[0] > 100
    log.close()
