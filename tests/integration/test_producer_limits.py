"""The producer's memory bound: send() blocks up to max_block_ms when full, then a clear error."""

import time

import pytest
import ray

import rayka
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
    p._topic("stuck").handles[0] = stuck  # every batch now hangs in flight
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


def test_buffered_bytes_return_to_zero_after_flush(cluster, admin):
    admin.create_topic("bounded", partitions=2)
    with rayka.Producer(buffer_memory=256 * 1024, max_block_ms=30_000) as p:
        for i in range(50_000):  # ~6 MB through a 256 KiB buffer: send() waits for room, no error
            p.send("bounded", value=b"y" * 100)
        p.flush()
        assert p._buffered == 0
    assert admin.describe_topic("bounded").messages == 50_000
