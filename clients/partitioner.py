"""Choosing a partition for a record: Kafka's murmur2 for keys, sticky batches for the rest.

The key hash is Kafka's: murmur2 (seed 0x9747b28c) of the key bytes, made
positive with ``& 0x7fffffff``, modulo the partition count. It depends on the
bytes only, never on the process (unlike Python's ``hash()``), so every
producer on every machine sends a key to the same partition, and a key goes
where a Java Kafka client would send it.
"""

from __future__ import annotations

import random
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
    """Keyless records stick to one partition until ``batch_size`` bytes went to it, then move on.

    Kafka's KIP-794 ("strictly uniform sticky"): sticking fills one batch at a time instead
    of spreading every linger window thinly over all partitions (KIP-480), and switching
    after a fixed number of *bytes*, not when a batch happens to be handed off, makes
    every partition get the same share. (Switching on hand-off sent almost everything to
    one partition: while its append was in flight its batch kept growing and was never
    handed off, so the partitioner never moved.) The first partition of a topic is random,
    so producers that start together do not all begin on partition 0; then round-robin.

    Not thread-safe on its own: the producer calls it under its lock.
    """

    def __init__(self, batch_size: int, rng: random.Random | None = None) -> None:
        self.batch_size = batch_size
        self._rng = rng or random.Random()
        self._current: dict[str, list[int]] = {}  # topic -> [partition, bytes produced to it]

    def partition(self, topic: str, num_partitions: int, size: int) -> int:
        """The partition for a keyless record of ``size`` bytes, counting it against that partition."""
        state = self._current.get(topic)
        if state is None or state[0] >= num_partitions:
            state = self._current[topic] = [self._rng.randrange(num_partitions), 0]
        elif state[1] >= self.batch_size:
            state[0] = (state[0] + 1) % num_partitions
            state[1] = 0
        state[1] += size
        return state[0]
