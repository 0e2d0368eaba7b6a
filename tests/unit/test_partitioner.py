"""Key partitioning matches Kafka's murmur2 and is stable; keyless records stick per batch."""

import random
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


def test_sticky_partitioner_switches_after_batch_size_bytes_round_robin():
    """KIP-794: a partition gets ``batch_size`` bytes of keyless records, then the next one does."""
    s = StickyPartitioner(batch_size=1000, rng=random.Random(7))
    picks = [s.partition("t", 4, 100) for _ in range(80)]
    runs = [picks[i:i + 10] for i in range(0, 80, 10)]
    assert all(len(set(run)) == 1 for run in runs)  # ten 100-byte records, then switch
    assert [run[0] for run in runs[:4]] == [(runs[0][0] + i) % 4 for i in range(4)]
    assert [picks.count(p) for p in range(4)] == [20, 20, 20, 20]


def test_sticky_partitioner_is_per_topic_and_follows_a_partition_count_change():
    s = StickyPartitioner(batch_size=10, rng=random.Random(1))
    a, b = s.partition("a", 3, 10), s.partition("b", 5, 10)
    assert 0 <= a < 3 and 0 <= b < 5
    assert s.partition("a", 3, 10) == (a + 1) % 3
    assert all(0 <= s.partition("b", 2, 10) < 2 for _ in range(10))  # fewer partitions: stays in range
