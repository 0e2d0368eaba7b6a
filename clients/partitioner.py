"""Choosing a partition for a record: Kafka's murmur2 for keys, sticky batches for the rest.

The key hash is Kafka's: murmur2 (seed 0x9747b28c) of the key bytes, made
positive with ``& 0x7fffffff``, modulo the partition count. It depends on the
bytes only, never on the process (unlike Python's ``hash()``), so every
producer on every machine sends a key to the same partition, and a key goes
where a Java Kafka client would send it.
"""

from __future__ import annotations

from functools import lru_cache

__all__ = ["murmur2", "partition_for_key", "StickyPartitioner"]

_M = 0x5BD1E995
_SEED = 0x9747B28C
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of ``data`` as a signed 32-bit int (Utils.murmur2 in the Java client)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    end = length - (length & 3)
    for i in range(0, end, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length & 3
    if rest == 3:
        h ^= data[end + 2] << 16
    if rest >= 2:
        h ^= data[end + 1] << 8
    if rest >= 1:
        h ^= data[end]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


@lru_cache(maxsize=65536)
def partition_for_key(key: bytes, num_partitions: int) -> int:
    """The partition of ``key`` among ``num_partitions`` (cached: hot keys repeat)."""
    return (murmur2(key) & 0x7FFFFFFF) % num_partitions


class StickyPartitioner:
    """Keyless records stick to one partition until its batch is handed off, then move on.

    Sticking fills one batch at a time instead of spreading every linger window
    thinly over all partitions (Kafka's KIP-480); moving round-robin spreads load.
    """

    def __init__(self) -> None:
        self._current: dict[str, int] = {}

    def partition(self, topic: str, num_partitions: int) -> int:
        p = self._current.get(topic)
        if p is None or p >= num_partitions:
            p = self._current[topic] = 0
        return p

    def on_batch_sent(self, topic: str, partition: int, num_partitions: int) -> None:
        if self._current.get(topic) == partition and num_partitions > 1:
            self._current[topic] = (partition + 1) % num_partitions
