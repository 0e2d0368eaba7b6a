"""The producer's memory bound: send() blocks up to max_block_ms when full, then a clear error."""

import time

import pytest
import ray

import rayka
from rayka.clients.stubs import PartitionClient
from rayka.errors import BufferFullError, KafkaTimeoutError


@ray.remote(num_cpus=0)
class StuckPartition:
    """Stands in for a partition actor that cannot keep up: every append hangs."""

    def append(self, data, producer_id=None, sequence=-1):
        time.sleep(60)


def test_full_buffer_blocks_for_max_block_ms_then_raises(cluster, admin):
    admin.create_topic("stuck", partitions=1)
    stuck = StuckPartition.remote()
    p = rayka.Producer(buffer_memory=64 * 1024, max_block_ms=300, linger_ms=0)
    p._topic("stuck").handles[0] = PartitionClient(stuck)  # every batch now hangs in flight
    value = b"x" * 1000
    with pytest.raises(BufferFullError, match="buffer_memory") as info:
        for _ in range(1000):
            p.send("stuck", value=value)
    assert "max_block_ms" in str(info.value)
    t0 = time.monotonic()
    with pytest.raises(BufferFullError):
        p.send("stuck", value=value)
    assert 0.25 <= time.monotonic() - t0 < 5, "send() blocks for max_block_ms, not forever"
    with pytest.raises(KafkaTimeoutError):
        p.flush(timeout=0.2)
    ray.kill(stuck)
    # The batches in flight fail over to the real partition (a retry asks the coordinator
    # again): close before the cluster goes, or they retry past Ray's shutdown at exit.
    p.close(timeout=30)


def test_buffered_bytes_return_to_zero_after_flush(cluster, admin):
    admin.create_topic("bounded", partitions=2)
    with rayka.Producer(buffer_memory=256 * 1024, max_block_ms=30_000) as p:
        for i in range(50_000):  # ~6 MB through a 256 KiB buffer: send() waits for room, no error
            p.send("bounded", value=b"y" * 100)
        p.flush()
        assert p._queue.buffered == 0
    assert admin.describe_topic("bounded").messages == 50_000


def test_a_lowered_max_message_bytes_fails_only_the_records_over_it(cluster, admin):
    """The partition refuses a batch checked against the old limit; the producer splits it:
    the error (with its limit) crosses Ray, only the oversize record fails, nothing twice."""
    admin.create_topic("lowered", partitions=1)
    with rayka.Producer(linger_ms=60_000) as p:
        p.send("lowered", value=b"before")
        p.flush(timeout=30)  # the producer has the topic's metadata (1 MiB) cached
        admin.alter_topic_config("lowered", {"max.message.bytes": 1000})
        (handle,) = [p.handle for p in cluster.topic("lowered", refresh=True)[1]]
        deadline = time.monotonic() + 30
        while ray.get(handle.config.remote())[1]["max.message.bytes"] != 1000:
            assert time.monotonic() < deadline, "the partition never took the new limit"
            time.sleep(0.05)
        good = [p.send("lowered", value=b"g%d" % i) for i in range(20)]
        bad = p.send("lowered", value=b"x" * 2000)
        good += [p.send("lowered", value=b"g%d" % i) for i in range(20, 40)]
        p.flush(timeout=30)
        assert isinstance(bad.exception(0), rayka.errors.RecordTooLargeError)
        assert [f.get(0).offset for f in good] == list(range(1, 41))
    values = [r.value for r in _read_all("lowered", 41)]
    assert values == [b"before"] + [b"g%d" % i for i in range(40)]


def _read_all(topic, expected):
    with rayka.Consumer(topic, auto_offset_reset="earliest", enable_auto_commit=False) as consumer:
        records = []
        deadline = time.monotonic() + 30
        while len(records) < expected and time.monotonic() < deadline:
            records += consumer.poll(timeout_ms=500)
        records += consumer.poll(timeout_ms=200)  # nothing more may come
        return records
