"""The Producer, Consumer and consumer-group options, as frozen keyword-only dataclasses.

Re-exported by rayka.config (``from rayka.config import ProducerConfig`` is the usual spelling);
split from it so topic and client configuration are each one module.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from rayka.errors import ConfigError

MiB = 1024 * 1024

# -- client configs ---------------------------------------------------------------------------------
# The Producer, Consumer and group options. Kafka's names with underscores (they are keywords);
# each value is checked here, so a bad one is refused before any thread or connection exists.


def _check_whole(name: str, value, minimum: int, unit: str = "") -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be a whole number{unit} >= {minimum}, got {value!r}")


def _check_millis(name: str, value, *, minimum: int = 0, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < minimum:
        raise ConfigError(f"{name} must be a finite number of milliseconds >= {minimum}"
                          + (" (or None)" if optional else "") + f", got {value!r}")


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be True or False, got {value!r}")


def _check_callable(name: str, value, what: str) -> None:
    if value is not None and not callable(value):
        raise ConfigError(f"{name} must be a callable {what}, got {type(value).__name__} {value!r:.40}")


#: The ``acks`` values a Producer takes, and the code each means (-1: "all").
_ACKS = {0: 0, "0": 0, 1: 1, "1": 1, -1: -1, "all": -1}


@dataclass(frozen=True, kw_only=True)
class ProducerConfig:
    """A Producer's options (``rayka.Producer(**options)``), with their defaults.

    - ``acks`` (1): 0 (do not wait), 1 or "all" (-1; with one replica per partition the same as 1);
      stored as its code 0, 1 or -1.
    - ``linger_ms`` (5), ``batch_size`` (16384 bytes): when a partition's batch is handed off.
    - ``idempotent`` (True): retries never write a record twice.
    - ``buffer_memory`` (32 MiB), ``max_block_ms`` (60 s): the memory bound and how long
      ``send()`` waits for room.
    - ``delivery_timeout_ms`` (120 s), ``retry_backoff_ms`` (100): how long, and how often, a
      failed batch is retried.
    - ``key_serializer`` / ``value_serializer`` (None): callables to bytes, or a built-in's name
      ("str", "json", "pickle", "msgpack"; rayka.clients.serializers).
    - ``schema_version`` (None): the value-schema version a typed topic is written in (an int, or
      a dict topic -> int). None: its latest when the producer first sends to it, and a newer
      one when a row or table of it arrives. A pinned version is checked and tagged as that
      version (an older one is accepted as long as the topic's compatibility lets its
      consumers read it).

    Byte counts are whole numbers >= 0, times finite numbers of ms >= 0 (not NaN, not inf).
    """

    acks: int | str = 1
    linger_ms: float = 5
    batch_size: int = 16384
    idempotent: bool = True
    key_serializer: Any = None
    value_serializer: Any = None
    buffer_memory: int = 32 * MiB
    max_block_ms: float = 60_000
    delivery_timeout_ms: float = 120_000
    retry_backoff_ms: float = 100
    schema_version: Any = None

    def __post_init__(self) -> None:
        _check_schema_version(self.schema_version)
        try:
            code = _ACKS[self.acks]
        except (KeyError, TypeError):
            raise ConfigError(f"acks must be 0, 1 or 'all', got {self.acks!r}") from None
        object.__setattr__(self, "acks", code)
        for name in ("batch_size", "buffer_memory"):
            _check_whole(name, getattr(self, name), 0, " of bytes")
            object.__setattr__(self, name, int(getattr(self, name)))
        for name in ("linger_ms", "max_block_ms", "delivery_timeout_ms", "retry_backoff_ms"):
            _check_millis(name, getattr(self, name))
        _check_flag("idempotent", self.idempotent)
        for name in ("key_serializer", "value_serializer"):
            _check_callable(name, getattr(self, name),
                            "that returns bytes (e.g. str.encode, or lambda v: json.dumps(v).encode())")


#: The ``client_rack`` meaning "this consumer's own Ray node" (coordinator/read_replica.py).
CLIENT_RACK_LOCAL = "local"


def schema_version_for(option, topic: str) -> int | None:
    """The ``schema_version`` a Producer or Consumer option (None, a version, or a dict topic ->
    version) names for ``topic``; None: the topic's latest."""
    return option.get(topic) if isinstance(option, dict) else option


def _check_schema_version(version) -> None:
    versions = version.values() if isinstance(version, dict) else [version]
    for v in versions:
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
            raise ConfigError(f"schema_version must be a version number >= 1 (or a dict topic -> one), "
                              f"got {version!r}")


def _check_pushdown(columns, flt) -> None:
    if columns is not None:
        if isinstance(columns, str) or not isinstance(columns, (list, tuple)) or not columns \
                or not all(isinstance(c, str) for c in columns):
            raise ConfigError(f"columns must be a non-empty list of column names, got {columns!r}")
    if flt is not None:
        import pyarrow.compute as pc  # only a consumer that filters pays for the import here

        if not isinstance(flt, pc.Expression):
            raise ConfigError("filter takes a pyarrow.compute expression such as pc.field('amount') > 10, "
                              f"not {type(flt).__name__}")


def _check_client_rack(value) -> None:
    if value is None:
        return
    if not isinstance(value, str) or not value.strip() or value != value.strip():
        raise ConfigError(f"client_rack must be None (read from the leader), {CLIENT_RACK_LOCAL!r} (an in-sync "
                          "replica on this consumer's Ray node) or a zone name (the rayka-zone of the nodes to "
                          f"read from), got {value!r}")


#: Where a consumer starts without a committed offset or a seek.
AUTO_OFFSET_RESETS = ("earliest", "latest", "none")


@dataclass(frozen=True, kw_only=True)
class ConsumerConfig:
    """A Consumer's options (``rayka.Consumer(*topics, **options)``), with their defaults.

    - ``auto_offset_reset`` ("latest"): where to start without a committed offset or seek,
      one of :data:`AUTO_OFFSET_RESETS` ("none" raises NoOffsetForPartitionError).
    - ``enable_auto_commit`` (True), ``auto_commit_interval_ms`` (5 s): with a group.
    - ``fetch_max_wait_ms`` (500): how long a partition holds a fetch open waiting for data.
    - ``max_poll_records`` (500): default ``max_records`` of ``poll``.
    - ``max_partition_fetch_records`` (500,000), ``max_partition_fetch_bytes`` (32 MiB): one fetch.
    - ``consumer_timeout_ms`` (None = forever): iteration stops after this long without records.
    - ``key_deserializer`` / ``value_deserializer`` (None): callables applied to each record's bytes,
      or a built-in's name ("str", "json", "msgpack", "pickle"; rayka.clients.serializers).
    - ``allow_pickle`` (False): needed for a "pickle" deserializer, since unpickling runs code.
    - ``on_partitions_unavailable`` (None): called with the set of TopicPartitions that became
      unreachable.
    - ``client_rack`` (None): where the consumer reads from (Kafka's ``client.rack``, KIP-392).
      None: each partition's leader. ``"local"``: an in-sync replica on this consumer's Ray node
      when there is one, else the leader. Another string: an in-sync replica on a node whose
      ``rayka-zone`` is that string, else the leader. A follower serves only up to the high
      watermark it learned; when it cannot serve, the consumer reads from the leader until it
      chooses again (clients/read_replicas.py).
    - ``columns`` (None: all) and ``filter`` (None: every record, else a ``pyarrow.compute``
      expression such as ``pc.field("amount") > 10``): pushed down into the partitions
      (partitions/pushdown.py): only those stored columns are read and shipped, only the
      records the filter keeps. Positions and commits still move past the records dropped.
      Column names are checked against each topic when it is subscribed or assigned.
    - ``schema_version`` (None): the value-schema version a typed topic is read in (an int, or a
      dict topic -> int). None: the topic's latest when the consumer first assigns it. Records
      written under other versions are projected into it (added fields as their default or
      null, widened types); a version that cannot read them raises SchemaMismatchError.

    Counts are whole numbers >= 1, times finite ms >= 0, flags bools, deserializers callables.
    """

    auto_offset_reset: str = "latest"
    enable_auto_commit: bool = True
    auto_commit_interval_ms: float = 5000
    key_deserializer: Any = None
    value_deserializer: Any = None
    fetch_max_wait_ms: float = 500
    max_poll_records: int = 500
    max_partition_fetch_records: int = 500_000
    max_partition_fetch_bytes: int = 32 * MiB
    consumer_timeout_ms: float | None = None
    on_partitions_unavailable: Any = None
    client_rack: str | None = None
    columns: Any = None
    filter: Any = None
    allow_pickle: bool = False
    schema_version: Any = None

    def __post_init__(self) -> None:
        _check_pushdown(self.columns, self.filter)
        _check_schema_version(self.schema_version)
        _check_flag("enable_auto_commit", self.enable_auto_commit)
        _check_client_rack(self.client_rack)
        _check_millis("auto_commit_interval_ms", self.auto_commit_interval_ms)
        _check_millis("fetch_max_wait_ms", self.fetch_max_wait_ms)
        _check_millis("consumer_timeout_ms", self.consumer_timeout_ms, optional=True)
        for name in ("max_poll_records", "max_partition_fetch_records", "max_partition_fetch_bytes"):
            _check_whole(name, getattr(self, name), 1)
        for name in ("key_deserializer", "value_deserializer"):
            _check_callable(name, getattr(self, name), "taking bytes (e.g. bytes.decode, or json.loads)")
        if not isinstance(self.auto_offset_reset, str) or self.auto_offset_reset not in AUTO_OFFSET_RESETS:
            raise ConfigError(f"auto_offset_reset must be one of {AUTO_OFFSET_RESETS}, got {self.auto_offset_reset!r}")
        if self.on_partitions_unavailable is not None and not callable(self.on_partitions_unavailable):
            raise ConfigError("on_partitions_unavailable must be a callable taking a set of TopicPartition, "
                              f"got {self.on_partitions_unavailable!r}")


@dataclass(frozen=True, kw_only=True)
class GroupConfig:
    """A group member's options: what a Consumer with a ``group_id`` also takes.

    - ``group_id`` (required): a non-empty str.
    - ``session_timeout_ms`` (10 s, >= 100): a member not heard from for this long is evicted.
    - ``heartbeat_interval_ms`` (None, or 0: a third of the session timeout, at most 3 s).
    - ``max_poll_interval_ms`` (300 s): a member that does not poll for this long leaves the group.
    - ``partition_assignment_strategy`` ("cooperative-sticky"): one of the assignors' names
      (``rayka.coordinator.assignment.ASSIGNOR_NAMES``).
    - ``group_instance_id`` (None): a static member's identity, kept across restarts.
    - ``listener`` (None): a ConsumerRebalanceListener.
    - ``default_api_timeout_ms`` (60 s): how long a synchronous commit waits out a coordinator restart.
    """

    group_id: str
    session_timeout_ms: float = 10_000
    heartbeat_interval_ms: float | None = None
    max_poll_interval_ms: float = 300_000
    partition_assignment_strategy: str = "cooperative-sticky"
    group_instance_id: str | None = None
    listener: Any = None
    default_api_timeout_ms: float = 60_000

    @property
    def heartbeat_interval_s(self) -> float:
        """The heartbeat period: ``heartbeat_interval_ms``, else a third of the session, at most 3 s."""
        return (self.heartbeat_interval_ms or min(3000, self.session_timeout_ms // 3)) / 1000.0

    def __post_init__(self) -> None:
        # Loaded here, not at the top: the assignors are coordinator code every partition actor
        # and CLI command would otherwise import with rayka.config.
        from rayka.coordinator.assignment import ASSIGNOR_NAMES

        if not isinstance(self.group_id, str) or not self.group_id:
            raise ConfigError(f"group_id must be a non-empty str, got {self.group_id!r}")
        if self.partition_assignment_strategy not in ASSIGNOR_NAMES:
            raise ConfigError(f"partition_assignment_strategy must be one of {ASSIGNOR_NAMES}, "
                              f"got {self.partition_assignment_strategy!r}")
        _check_millis("session_timeout_ms", self.session_timeout_ms, minimum=100)
        _check_millis("heartbeat_interval_ms", self.heartbeat_interval_ms, optional=True)
        _check_millis("max_poll_interval_ms", self.max_poll_interval_ms)
        _check_millis("default_api_timeout_ms", self.default_api_timeout_ms)
        if self.group_instance_id is not None and (not isinstance(self.group_instance_id, str)
                                                   or not self.group_instance_id):
            raise ConfigError(f"group_instance_id must be None or a non-empty str, got {self.group_instance_id!r}")
        if self.listener is not None and not all(
                callable(getattr(self.listener, m, None)) for m in ("on_partitions_assigned", "on_partitions_revoked")):
            raise ConfigError("listener must be None or a ConsumerRebalanceListener (with on_partitions_assigned "
                              f"and on_partitions_revoked), got {self.listener!r:.60}")
