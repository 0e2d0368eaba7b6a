"""Producer ids for Kafka's InitProducerId: cluster-unique, never handed out twice.

Like Kafka's ProducerIdManager, the coordinator reserves ids in blocks: before it hands out
the first id of a block it durably stores the block's end as the high-water mark (the
``producer_id_block_end`` setting of the cluster metadata file, written atomically with the
topics: coordinator/metadata.py). A restarted coordinator starts at the stored mark, so the
unused rest of the block before the restart is skipped, never reused, and one metadata
write serves :data:`BLOCK_SIZE` producers. Every id is a non-negative int64; the epoch is 0
(a new id is a new producer: nothing to fence yet).
"""

from __future__ import annotations

import threading

from ..errors import ConfigError
from .metadata import ClusterMetadata

__all__ = ["ProducerIdManager", "BLOCK_SIZE", "HIGH_WATER_KEY", "MAX_PRODUCER_ID"]

BLOCK_SIZE = 1000  # Kafka's PRODUCER_ID_BLOCK_SIZE
HIGH_WATER_KEY = "producer_id_block_end"
MAX_PRODUCER_ID = 2**63 - 1


class ProducerIdManager:
    """Hands out producer ids from blocks reserved in the cluster metadata. Thread-safe."""

    def __init__(self, meta: ClusterMetadata, block_size: int = BLOCK_SIZE):
        if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
            raise ConfigError(f"the producer id block size must be a positive integer, got {block_size!r}")
        self._meta = meta
        self._block_size = block_size
        self._lock = threading.Lock()
        # Nothing reserved by this incarnation yet: the first call reserves from the stored mark.
        self._next = self._end = 0

    def _stored_end(self) -> int:
        value = self._meta.settings().get(HIGH_WATER_KEY, 0)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_PRODUCER_ID + 1:
            # Guessing a lower mark could hand out an id twice: refuse until someone looks.
            raise ConfigError(f"the cluster metadata's {HIGH_WATER_KEY} is {value!r}, not an id count; "
                              "fix or remove that setting in __cluster_metadata.json (removing it may reuse ids)")
        return value

    def init_producer_id(self) -> tuple[int, int]:
        """``(producer_id, epoch)``: a new id, epoch 0. Raises LogWriteError when a new block cannot
        be reserved (a full disk): no id is handed out then, and a retry may work."""
        with self._lock:
            if self._next >= self._end:
                self._reserve()
            pid, self._next = self._next, self._next + 1
            return pid, 0

    def _reserve(self) -> None:
        start = max(self._stored_end(), self._end)
        if start > MAX_PRODUCER_ID:
            raise ConfigError("every producer id (0..2**63-1) has been handed out")
        end = min(start + self._block_size, MAX_PRODUCER_ID + 1)
        # Durable before any id of the block leaves: a crash right after can only skip ids.
        self._meta.set_setting(HIGH_WATER_KEY, end)
        self._next, self._end = start, end
