"""The value types users see: TopicPartition, Record, RecordMetadata, OffsetAndTimestamp, descriptions,
SchemaVersion."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = [
    "TopicPartition",
    "Record",
    "RecordMetadata",
    "OffsetAndTimestamp",
    "OffsetAndMetadata",
    "PartitionDescription",
    "TopicDescription",
    "MemberDescription",
    "GroupPartitionDescription",
    "GroupDescription",
    "SchemaVersion",
]


class TopicPartition(NamedTuple):
    """A partition of a topic: ``TopicPartition("clicks", 0)``."""

    topic: str
    partition: int


class Record(NamedTuple):
    """One consumed record. ``headers`` is a dict (or None); key/value are bytes unless deserialized."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: Any
    value: Any
    headers: dict | None


class RecordMetadata(NamedTuple):
    """Where a produced record landed (``offset`` is -1 with ``acks=0``)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class OffsetAndTimestamp(NamedTuple):
    """The answer of ``offsets_for_times`` for one partition."""

    offset: int
    timestamp_ms: int


class OffsetAndMetadata(NamedTuple):
    """A committed offset with a string of the application's (kafka-python's type):
    ``consumer.commit({tp: OffsetAndMetadata(42, "batch 7")})``;
    ``consumer.committed(tp, metadata=True)`` returns one."""

    offset: int
    metadata: str = ""


@dataclass(frozen=True)
class PartitionDescription:
    """One partition of a described topic."""

    partition: int
    leader: str | None  # Ray node id of the partition actor
    replicas: tuple
    log_start_offset: int
    log_end_offset: int
    size_bytes: int = 0
    segments: int = 0
    damaged_offsets: tuple = ()  # (first, last) of each damaged run kept in place; reads of it raise
    available: bool = True  # False: the partition actor cannot be reached (offsets etc. are then -1)
    error: str | None = None  # why it is unavailable
    # Replication (one replica: replica 0 leads, in sync): replica ids in preferred order, the
    # leader's, the in-sync ones, and the epochs of the partition's state.
    replica_ids: tuple = (0,)
    leader_replica: int | None = 0
    isr: tuple = (0,)
    leader_epoch: int = 0
    partition_epoch: int = 0

    @property
    def under_replicated(self) -> bool:
        """Fewer in-sync replicas than replicas."""
        return len(self.isr) < len(self.replica_ids)

    @property
    def offline(self) -> bool:
        """No replica leads the partition (none of its in-sync replicas is alive)."""
        return self.leader_replica is None


@dataclass(frozen=True)
class TopicDescription:
    """What ``Admin.describe_topic`` returns."""

    name: str
    partitions: list[PartitionDescription]
    replication_factor: int
    config: dict = field(default_factory=dict)
    value_schema: Any = None  # the latest value schema (pa.Schema); None: untyped (bytes values)
    schema_version: int | None = None  # the latest value schema's version number; None: untyped

    @property
    def num_partitions(self) -> int:
        return len(self.partitions)

    @property
    def messages(self) -> int:
        """Records in the partitions that answered (unavailable ones count for nothing)."""
        return sum(p.log_end_offset - p.log_start_offset for p in self.partitions if p.available)

    @property
    def unavailable(self) -> list[int]:
        """Numbers of the partitions that could not be reached."""
        return [p.partition for p in self.partitions if not p.available]

    @property
    def under_replicated(self) -> list[int]:
        """Numbers of the partitions with fewer in-sync replicas than replicas."""
        return [p.partition for p in self.partitions if p.under_replicated]


@dataclass(frozen=True)
class SchemaVersion:
    """One value schema version of a typed topic (``Admin.evolve_schema``, ``Admin.schema_history``):
    its number (1: the schema the topic was created with), the ``pa.Schema`` and when it was
    registered (ms since the epoch)."""

    version: int
    schema: Any
    registered_ms: int


@dataclass(frozen=True)
class MemberDescription:
    """One member of a described group."""

    member_id: str
    instance_id: str | None
    topics: list
    assignment: list  # of TopicPartition


@dataclass(frozen=True)
class GroupPartitionDescription:
    """A partition a group reads or committed: committed offset, log start/end offsets and lag."""

    topic: str
    partition: int
    committed: int | None
    end_offset: int | None
    member: str | None
    log_start_offset: int | None = None

    @property
    def lag(self) -> int | None:
        """Records the group has still to read: from its committed offset or, with none, from
        the log start (records before it are gone: nobody can read them). None if unknown."""
        if self.end_offset is None:
            return None
        base = self.committed if self.committed is not None else self.log_start_offset
        if base is None:
            return None
        return max(0, self.end_offset - base)


@dataclass(frozen=True)
class GroupDescription:
    """What ``Admin.describe_group`` returns."""

    group_id: str
    state: str
    protocol: str | None
    generation: int
    members: list
    partitions: list

    @property
    def total_lag(self) -> int | None:
        """The sum of the partitions' lags; None if any partition's lag is unknown (it could not
        be reached), never a total that silently counts it as caught up."""
        lags = [p.lag for p in self.partitions]
        return None if any(lag is None for lag in lags) else sum(lags)
