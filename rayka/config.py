"""Configuration as frozen, keyword-only dataclasses with Kafka-like names.

Topic configuration is given the way Kafka users write it, as a dict with
dotted keys (``{"retention.ms": 3_600_000}``); :meth:`TopicConfig.from_dict`
maps each key to a field, rejects unknown keys, and validates values. The
defaults are documented next to each field and in the README.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rayka.errors import ConfigError

__all__ = ["TopicConfig", "PartitionBudget", "ProducerConfig", "ConsumerConfig", "GroupConfig", "FLUSH_POLICIES",
           "AUTO_OFFSET_RESETS", "option_names", "default_data_dir", "DEFAULT_NAMESPACE", "INLINE_BYTES_MAX"]

MiB = 1024 * 1024
DAY_MS = 24 * 3600 * 1000

#: "batch": fsync every appended batch before acknowledging it;
#: "interval": fsync at most every ``flush.ms`` (the default: an acknowledged
#: batch is in the OS page cache and survives any process crash, and reaches
#: the disk within ``flush.ms``); "never": leave it to the OS.
FLUSH_POLICIES = ("batch", "interval", "never")

#: Ray namespace of every named rayka actor.
DEFAULT_NAMESPACE = "rayka"

#: A payload smaller than this crosses a Ray call as one ``bytes`` object, inline in the call
#: or reply: measured ~50 us (an append) to ~0.2 ms (a fetch answer) cheaper per call than
#: pickling Arrow buffers. Larger ones stay Arrow buffers, which travel without a copy.
INLINE_BYTES_MAX = 64 * 1024


def default_data_dir() -> Path:
    """``$RAYKA_DATA_DIR`` if set, else ``~/.rayka/data``."""
    env = os.environ.get("RAYKA_DATA_DIR")
    return Path(env).expanduser() if env else Path.home() / ".rayka" / "data"


# Kafka key -> field name.
_TOPIC_KEYS = {
    "segment.bytes": "segment_bytes",
    "segment.ms": "segment_ms",
    "retention.ms": "retention_ms",
    "retention.bytes": "retention_bytes",
    "max.message.bytes": "max_message_bytes",
    "flush.policy": "flush_policy",
    "flush.ms": "flush_ms",
    "index.interval.bytes": "index_interval_bytes",
    "message.timestamp.type": "message_timestamp_type",
    "min.insync.replicas": "min_insync_replicas",
    "replica.lag.time.max.ms": "replica_lag_time_max_ms",
    "unclean.leader.election.enable": "unclean_leader_election_enable",
    "replica.placement": "replica_placement",
    "replica.lost.timeout.ms": "replica_lost_timeout_ms",
    "compression.type": "compression_type",
    "compression.level": "compression_level",
    "schema.compatibility": "schema_compatibility",
}

#: "spread": each replica of a partition on its own Ray node (create_topic refuses with fewer
#: alive nodes than the replication factor); "colocate": replicas may share a node then.
REPLICA_PLACEMENTS = ("spread", "colocate")

#: Arrow IPC buffer compression of stored (and shipped) batches: "none", or a codec that Arrow's
#: IPC format itself records per message, so segments stay readable by plain pyarrow.
COMPRESSION_TYPES = ("none", "lz4", "zstd")
#: Kafka codecs Arrow IPC has no place for.
_KAFKA_ONLY_CODECS = ("gzip", "snappy", "producer")


@dataclass(frozen=True, kw_only=True)
class TopicConfig:
    """Per-topic log configuration (Kafka names in brackets).

    - ``segment_bytes`` [segment.bytes], default 256 MiB: roll the active segment when
      appending a batch would take it past this size.
    - ``segment_ms`` [segment.ms], default 7 days: roll a segment older than this.
    - ``retention_ms`` [retention.ms], default 7 days, -1 for no limit: delete whole
      segments whose newest record is older than this.
    - ``retention_bytes`` [retention.bytes], default -1 (no limit): delete the oldest whole
      segments while the partition is larger than this.
    - ``max_message_bytes`` [max.message.bytes], default 1 MiB: a record (key + value +
      headers) over this rejects its whole batch.
    - ``flush_policy`` [flush.policy], default "interval": see :data:`FLUSH_POLICIES`.
    - ``flush_ms`` [flush.ms], default 1000: the fsync interval of the "interval" policy.
    - ``index_interval_bytes`` [index.interval.bytes], default 4096: bytes of log between
      two entries of the sparse offset and time indexes.
    - ``message_timestamp_type`` [message.timestamp.type], "CreateTime" (default, the
      producer's timestamp) or "LogAppendTime" (the partition's clock).
    - ``min_insync_replicas`` [min.insync.replicas], default 1: with acks="all" a send fails
      (NotEnoughReplicasError) while the ISR is smaller; at most the replication factor.
    - ``replica_lag_time_max_ms`` [replica.lag.time.max.ms], default 30000: a follower that
      has not caught up with the leader for this long leaves the ISR.
    - ``unclean_leader_election_enable`` [unclean.leader.election.enable], default False:
      with no in-sync replica alive, elect an out-of-sync one (records it lacks are lost)
      instead of leaving the partition without a leader. "true"/"false" are accepted too.
    - ``replica_placement`` [replica.placement], "spread" (default) or "colocate": see
      :data:`REPLICA_PLACEMENTS`.
    - ``replica_lost_timeout_ms`` [replica.lost.timeout.ms], default 60000: a replica whose
      node is gone this long is replaced by a new one on another node.
    - ``compression_type`` [compression.type], "none" (default), "lz4" or "zstd": Arrow IPC
      buffer compression of each batch written from now on (batches already written stay as
      they are; every IPC message records its own codec, so one segment may mix them). The
      producer compresses what it ships with the same codec.
    - ``compression_level`` [compression.level], default None (the codec's default): a level
      valid for the codec in Arrow (lz4 1..12, zstd up to 22).
    - ``schema_compatibility`` [schema.compatibility], default "BACKWARD": what a new value
      schema version of a typed topic must be compatible with (Confluent Schema Registry's
      modes BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE,
      NONE; any case, kept upper-case); see :mod:`rayka.coordinator.schema_compat`.
    """

    segment_bytes: int = 256 * MiB
    segment_ms: int = 7 * DAY_MS
    retention_ms: int = 7 * DAY_MS
    retention_bytes: int = -1
    max_message_bytes: int = 1 * MiB
    flush_policy: str = "interval"
    flush_ms: int = 1000
    index_interval_bytes: int = 4096
    message_timestamp_type: str = "CreateTime"
    min_insync_replicas: int = 1
    replica_lag_time_max_ms: int = 30_000
    unclean_leader_election_enable: bool = False
    replica_placement: str = "spread"
    replica_lost_timeout_ms: int = 60_000
    compression_type: str = "none"
    compression_level: int | None = None
    schema_compatibility: str = "BACKWARD"

    def __post_init__(self) -> None:
        unclean = self.unclean_leader_election_enable
        if isinstance(unclean, str) and unclean.lower() in ("true", "false"):  # as a CLI -c value gives it
            object.__setattr__(self, "unclean_leader_election_enable", unclean.lower() == "true")
        elif not isinstance(unclean, bool):
            raise ConfigError(f"unclean.leader.election.enable must be true or false, got {unclean!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("int", int) and (not isinstance(value, int) or isinstance(value, bool)):
                raise ConfigError(f"topic config {_kafka_name(f.name)} must be an integer, got {value!r}")
        if self.segment_bytes < 1024:
            raise ConfigError(f"segment.bytes must be >= 1024, got {self.segment_bytes}")
        if self.segment_ms < 1:
            raise ConfigError(f"segment.ms must be >= 1, got {self.segment_ms}")
        if self.retention_ms < -1 or self.retention_ms == 0:
            raise ConfigError(f"retention.ms must be positive or -1 (unlimited), got {self.retention_ms}")
        if self.retention_bytes < -1 or self.retention_bytes == 0:
            raise ConfigError(f"retention.bytes must be positive or -1 (unlimited), got {self.retention_bytes}")
        if self.max_message_bytes < 1:
            raise ConfigError(f"max.message.bytes must be >= 1, got {self.max_message_bytes}")
        if self.flush_policy not in FLUSH_POLICIES:
            raise ConfigError(f"flush.policy must be one of {FLUSH_POLICIES}, got {self.flush_policy!r}")
        if self.flush_ms < 0:
            raise ConfigError(f"flush.ms must be >= 0, got {self.flush_ms}")
        if self.index_interval_bytes < 0:
            raise ConfigError(f"index.interval.bytes must be >= 0, got {self.index_interval_bytes}")
        if self.message_timestamp_type not in ("CreateTime", "LogAppendTime"):
            raise ConfigError(
                "message.timestamp.type must be 'CreateTime' or 'LogAppendTime', "
                f"got {self.message_timestamp_type!r}"
            )
        if self.min_insync_replicas < 1:
            raise ConfigError(f"min.insync.replicas must be >= 1 (and at most the replication factor), "
                              f"got {self.min_insync_replicas}")
        if self.replica_lag_time_max_ms < 0:
            raise ConfigError(f"replica.lag.time.max.ms must be >= 0, got {self.replica_lag_time_max_ms}")
        if self.replica_placement not in REPLICA_PLACEMENTS:
            raise ConfigError(f"replica.placement must be one of {REPLICA_PLACEMENTS}, got {self.replica_placement!r}")
        if self.replica_lost_timeout_ms < 0:
            raise ConfigError(f"replica.lost.timeout.ms must be >= 0, got {self.replica_lost_timeout_ms}")
        _check_compression(self.compression_type, self.compression_level)
        if self.schema_compatibility != "BACKWARD":  # the default needs no import of the schema rules
            from rayka.coordinator.schema_compat import parse_mode

            object.__setattr__(self, "schema_compatibility", parse_mode(self.schema_compatibility).value)

    @classmethod
    def from_dict(cls, config: dict[str, Any] | None) -> "TopicConfig":
        """Build from Kafka-style keys (``"retention.ms"``); field names are accepted too."""
        kwargs: dict[str, Any] = {}
        for key, value in (config or {}).items():
            name = _TOPIC_KEYS.get(key, key if key in _TOPIC_KEYS.values() else None)
            if name is None:
                raise ConfigError(
                    f"unknown topic config {key!r}; known keys: {', '.join(sorted(_TOPIC_KEYS))}"
                )
            kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The Kafka-style dict that :meth:`from_dict` reads back."""
        return {_kafka_name(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}

    def replace(self, **changes: Any) -> "TopicConfig":
        return dataclasses.replace(self, **changes)


def _check_compression(kind: Any, level: Any) -> None:
    if isinstance(kind, str) and kind.lower() in _KAFKA_ONLY_CODECS:
        raise ConfigError(f"compression.type {kind!r} is a Kafka codec that Arrow IPC does not offer; "
                          f"Arrow IPC buffer compression offers lz4 and zstd (or none)")
    if kind not in COMPRESSION_TYPES:
        raise ConfigError(f"compression.type must be one of {COMPRESSION_TYPES}, got {kind!r}")
    if level is None:
        return
    if not isinstance(level, int) or isinstance(level, bool):
        raise ConfigError(f"compression.level must be an integer or unset (the codec's default), got {level!r}")
    if kind == "none":
        raise ConfigError(f"compression.level {level} needs a compression.type (lz4 or zstd); "
                          "with none it would mean nothing")
    # Arrow's own range for the codec: pa.Codec itself accepts any int (zstd 99 acts as 22).
    import pyarrow as pa

    lo, hi = pa.Codec.minimum_compression_level(kind), pa.Codec.maximum_compression_level(kind)
    if not lo <= level <= hi:
        raise ConfigError(f"compression.level {level} is not valid for {kind}: Arrow takes {lo}..{hi} "
                          "(or leave it unset for the codec's default)")


def _kafka_name(field_name: str) -> str:
    for key, name in _TOPIC_KEYS.items():
        if name == field_name:
            return key
    return field_name



# Kafka-style key -> PartitionBudget field, and the environment variable that sets it.
_BUDGET_KEYS = {
    "partition.memory.bytes": ("partition_memory_bytes", "RAYKA_PARTITION_MEMORY_BYTES"),
    "partition.memory.fraction": ("memory_fraction", "RAYKA_PARTITION_MEMORY_FRACTION"),
    "max.partitions": ("max_partitions", "RAYKA_MAX_PARTITIONS"),
}


@dataclass(frozen=True, kw_only=True)
class PartitionBudget:
    """How many partitions a rayka cluster may have: each is an actor process that costs memory.

    - ``partition_memory_bytes`` [partition.memory.bytes], default 128 MiB: what one partition
      is counted at. Measured (``python -m benchmarks.partition_cost``): about 75 MiB PSS for
      an idle partition actor, 150-190 MiB right after heavy traffic, back to about 120 MiB
      once it has been idle; Ray's bare actor process alone is about 70 MiB.
    - ``memory_fraction`` [partition.memory.fraction], default 0.8: the share of each alive
      Ray node's ``memory`` resource that partitions may take (the rest is left to
      producers, consumers and other work on the node).
    - ``max_partitions`` [max.partitions], default None: the limit is computed from the nodes'
      memory; an integer replaces the computed limit (higher or lower), -1 turns the check off.

    Set per cluster with ``Admin().set_partition_budget({...})`` (kept in the data dir), or
    by the environment of the Ray processes (``RAYKA_PARTITION_MEMORY_BYTES``,
    ``RAYKA_PARTITION_MEMORY_FRACTION``, ``RAYKA_MAX_PARTITIONS``).
    """

    partition_memory_bytes: int = 128 * MiB
    memory_fraction: float = 0.8
    max_partitions: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.partition_memory_bytes, int) or isinstance(self.partition_memory_bytes, bool) \
                or self.partition_memory_bytes < 1:
            raise ConfigError(f"partition.memory.bytes must be a positive integer, got {self.partition_memory_bytes!r}")
        if not isinstance(self.memory_fraction, (int, float)) or isinstance(self.memory_fraction, bool) \
                or not 0 < self.memory_fraction <= 1:
            raise ConfigError(f"partition.memory.fraction must be in (0, 1], got {self.memory_fraction!r}")
        if self.max_partitions is not None and (
                not isinstance(self.max_partitions, int) or isinstance(self.max_partitions, bool)
                or self.max_partitions < -1):
            raise ConfigError(
                f"max.partitions must be None (computed from memory), -1 (no limit) or a count >= 0, "
                f"got {self.max_partitions!r}")

    @classmethod
    def from_dict(cls, config: dict[str, Any] | None, base: "PartitionBudget | None" = None) -> "PartitionBudget":
        """``base`` (default: the defaults) with the Kafka-style keys of ``config`` changed."""
        changes: dict[str, Any] = {}
        fields = {name: key for key, (name, _) in _BUDGET_KEYS.items()}
        for key, value in (config or {}).items():
            name = _BUDGET_KEYS[key][0] if key in _BUDGET_KEYS else key if key in fields else None
            if name is None:
                raise ConfigError(f"unknown partition budget key {key!r}; known keys: {', '.join(sorted(_BUDGET_KEYS))}")
            changes[name] = value
        return dataclasses.replace(base or cls(), **changes)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "PartitionBudget":
        """The defaults, changed by whichever ``RAYKA_...`` variables are set."""
        environ = os.environ if environ is None else environ
        changes: dict[str, Any] = {}
        for key, (name, var) in _BUDGET_KEYS.items():
            raw = environ.get(var)
            if raw is None or raw == "":
                continue
            try:
                changes[name] = float(raw) if name == "memory_fraction" else int(raw)
            except ValueError:
                raise ConfigError(f"${var} ({key}) must be a number, got {raw!r}") from None
        return cls(**changes)

    def to_dict(self) -> dict[str, Any]:
        return {key: getattr(self, name) for key, (name, _) in _BUDGET_KEYS.items()}


# The client configs (ProducerConfig, ConsumerConfig, GroupConfig) live in rayka.client_config;
# they are part of this module's names.
from rayka.client_config import AUTO_OFFSET_RESETS, ConsumerConfig, GroupConfig, ProducerConfig  # noqa: E402


def option_names(config_class) -> tuple[str, ...]:
    """The keywords a client takes for ``config_class``, in field order."""
    return tuple(f.name for f in dataclasses.fields(config_class))
