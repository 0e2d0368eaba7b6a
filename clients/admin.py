"""Admin: create, list, describe, grow and delete topics (and, with groups, inspect them)."""

from __future__ import annotations

import pyarrow as pa
import ray

from rayka.clients.connection import Cluster, current, resolve
from rayka.clients.types import PartitionDescription, TopicDescription
from rayka.coordinator.metadata import validate_topic_name

__all__ = ["Admin"]


class Admin:
    """Topic administration against the current (or given) cluster connection."""

    def __init__(self, cluster: Cluster | None = None):
        self._cluster = cluster or current()

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     config: dict | None = None, schema: pa.Schema | None = None) -> TopicDescription:
        """Create a topic; ``schema`` makes its values typed Arrow columns instead of bytes.

        Raises InvalidTopicError, TopicExistsError or ConfigError with nothing created.
        """
        validate_topic_name(name)
        self._cluster.call("create_topic", name, partitions, replication_factor, config, schema)
        self._cluster.forget(name)
        return self.describe_topic(name)

    def list_topics(self) -> list[str]:
        return self._cluster.call("list_topics")

    def describe_topic(self, name: str) -> TopicDescription:
        """Partitions with their leader node and log start/end offsets."""
        meta, handles = self._cluster.topic(name, refresh=True)
        stats = resolve([h.stats.remote() for h in handles])
        parts = [
            PartitionDescription(
                partition=p, leader=s["node_id"], replicas=(s["node_id"],),
                log_start_offset=s["log_start_offset"], log_end_offset=s["log_end_offset"],
                size_bytes=s["size_bytes"], segments=s["segments"],
            )
            for p, s in enumerate(stats)
        ]
        return TopicDescription(name, parts, meta.replication_factor, dict(meta.config), meta.value_schema)

    def delete_topic(self, name: str) -> None:
        """Delete the topic, its partition actors and its files."""
        self._cluster.call("delete_topic", name)
        self._cluster.forget(name)

    def add_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow the topic to ``total`` partitions."""
        self._cluster.call("add_partitions", name, total)
        self._cluster.forget(name)
        return self.describe_topic(name)

    def list_offsets(self, name: str) -> dict[int, tuple[int, int]]:
        """partition -> (log_start_offset, log_end_offset)."""
        _, handles = self._cluster.topic(name)
        return dict(enumerate(ray.get([h.offsets.remote() for h in handles])))
