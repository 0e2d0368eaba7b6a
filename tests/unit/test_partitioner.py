"""Key partitioning matches Kafka's murmur2 and is stable; keyless records stick per batch."""

import subprocess
import sys

import pytest

from rayka.clients.partitioner import StickyPartitioner, murmur2, partition_for_key


@pytest.mark.parametrize("key,expected", [
    # Kafka's UtilsTest.testMurmur2 vectors.
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (b"abc", 479470107),
    (b"", 275646681),
])
def test_murmur2_matches_kafka(key, expected):
    assert murmur2(key) == expected


def test_partition_is_positive_modulo_like_kafka():
    assert partition_for_key(b"21", 7) == (-973932308 & 0x7FFFFFFF) % 7
    assert all(0 <= partition_for_key(b"k%d" % i, 5) < 5 for i in range(1000))


def test_partition_is_the_same_in_another_process():
    code = "from rayka.clients.partitioner import partition_for_key as f; print([f(b'user-%d' % i, 12) for i in range(50)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert other.strip() == str([partition_for_key(b"user-%d" % i, 12) for i in range(50)])


def test_sticky_partitioner_moves_on_after_each_sent_batch():
    s = StickyPartitioner()
    first = s.partition("t", 3)
    assert s.partition("t", 3) == first
    s.on_batch_sent("t", first, 3)
    second = s.partition("t", 3)
    assert second != first
    s.on_batch_sent("t", second, 3)
    assert len({first, second, s.partition("t", 3)}) == 3
