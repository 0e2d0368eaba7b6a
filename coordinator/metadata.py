"""Topic metadata: names, partition counts, configs, placement; kept durably in the data dir.

The whole cluster's topic metadata is one small JSON document,
``<data_dir>/__cluster_metadata.json``, rewritten atomically on every change
(metadata_store.py), so a restarted coordinator or a new embedded session on the
same data dir finds every topic again.

Replication: per partition, ``states[p]`` is its :class:`~.election.PartitionState`
(``to_dict``: replicas, leader, ISR, epochs) and ``replica_nodes[p]`` maps each replica id
(a str, as JSON keys are) to its Ray node id (None: anywhere). ``nodes[p]`` stays the
node of the partition's current leader (of its first replica while it has none), so
readers that know one replica per partition keep working. A file from before replication
lacks both and loads as replication factor 1: replica 0 on ``nodes[p]``, leading.

Typed topics keep every value schema version (``schema_versions_b64``, ``schema_registered_ms``;
``value_schema_b64`` is the latest): schema_versions.py pins the layout and the rules.

Topic names and partition directories: topic_names.py (re-exported here).
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field

import pyarrow as pa

from ..clock import SystemClock
from ..config import TopicConfig
from ..errors import (
    ConfigError,
    InvalidUpdateVersionError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)
from . import schema_versions as _versions
from .metadata_store import METADATA_FILE, MetadataStore
from .schema_versions import encode_schema
from .topic_names import partition_dir, validate_topic_name
from .election import AlterPartitionRequest, PartitionState
from .election import alter_partition as _alter_partition
from .replica_layout import MAX_REPLICATION_FACTOR, check_layout, check_min_insync, check_replication_factor
from .replica_layout import replica_layout

__all__ = [
    "validate_topic_name",
    "TopicMetadata",
    "MetadataStore",
    "METADATA_FILE",
    "ClusterMetadata",
    "partition_dir",
    "MAX_PARTITIONS",
    "MAX_REPLICATION_FACTOR",
]


MAX_PARTITIONS = 10_000


@dataclass
class TopicMetadata:
    """One topic: its partition count, config, value schema and where each partition lives."""

    name: str
    partitions: int
    replication_factor: int = 1
    config: dict = field(default_factory=dict)
    value_schema_b64: str | None = None
    nodes: list = field(default_factory=list)  # Ray node id per partition (None: anywhere)
    topic_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created_ms: int = field(default_factory=SystemClock())
    config_version: int = 0  # bumped by every alter_config; partitions apply the newest they see
    states: list = field(default_factory=list)  # PartitionState.to_dict() per partition
    replica_nodes: list = field(default_factory=list)  # per partition {str(replica id): node id or None}
    next_replica_ids: list = field(default_factory=list)  # per partition: the first replica id never used
    reassignments: dict = field(default_factory=dict)  # str(partition) -> target node ids, while moving
    schema_versions_b64: list = field(default_factory=list)  # every value schema version, oldest first
    schema_registered_ms: list = field(default_factory=list)  # when each version was registered

    def __post_init__(self) -> None:
        # A file from before replication (or a topic given by nodes only): replica 0 on nodes[p].
        self.nodes = list(self.nodes) + [None] * (self.partitions - len(self.nodes))
        replicas = range(self.replication_factor)
        for p in range(len(self.states), self.partitions):
            self.states.append(PartitionState.initial(replicas).to_dict())
        for p in range(len(self.replica_nodes), self.partitions):
            self.replica_nodes.append({str(r): self.nodes[p] if r == 0 else None for r in replicas})
        for p in range(len(self.next_replica_ids), self.partitions):
            self.next_replica_ids.append(max(PartitionState.from_dict(self.states[p]).replicas) + 1)
        self.config = {**TopicConfig().to_dict(), **self.config}  # keys added since the file was written
        _versions.upgrade(self)  # a typed topic from before schema versions: its schema is version 1
        check_layout(self.name, self.partitions, self.states, self.replica_nodes)

    def state(self, partition: int) -> PartitionState:
        """Leader, ISR and epochs of ``partition`` (UnknownPartitionError if there is none)."""
        return PartitionState.from_dict(self.states[self.check_partition(partition)])

    def replica_nodes_of(self, partition: int) -> dict[int, str | None]:
        """Replica id -> its Ray node id (None: anywhere), for every replica of ``partition``."""
        return {int(r): node for r, node in self.replica_nodes[self.check_partition(partition)].items()}

    def leader_node(self, partition: int) -> str | None:
        """The node of ``partition``'s current leader; None when it has no leader (or one placed anywhere)."""
        leader = self.state(partition).leader
        return None if leader is None else self.replica_nodes_of(partition).get(leader)

    def next_replica_id(self, partition: int) -> int:
        """The id for a new replica of ``partition``: never one it used before (a replica's files
        may outlive it on a lost node, and replica directories are named by id)."""
        return self.next_replica_ids[self.check_partition(partition)]

    def reassignment(self, partition: int) -> tuple[str, ...] | None:
        """The target nodes of ``partition``'s reassignment in progress, or None."""
        target = self.reassignments.get(str(self.check_partition(partition)))
        return tuple(target) if target else None

    def replicated(self, partition: int | None = None) -> bool:
        """Whether ``partition`` (None: any partition) has more than one replica, or the topic was
        created with a replication factor above one (a partition whose replicas are still placed)."""
        if partition is None:
            return self.replication_factor > 1 or any(len(s["replicas"]) > 1 for s in self.states)
        return self.replication_factor > 1 or len(self.states[self.check_partition(partition)]["replicas"]) > 1

    def every_replica_node(self) -> list[str | None]:
        """The node of every replica of every partition (placement counts one actor per replica)."""
        return [node for nodes in self.replica_nodes for node in nodes.values()]

    @property
    def topic_config(self) -> TopicConfig:
        return TopicConfig.from_dict(self.config)

    @property
    def value_schema(self) -> pa.Schema | None:
        """The latest value schema; None for an untyped (bytes) topic."""
        return None if self.value_schema_b64 is None else _versions.decode_schema(self.value_schema_b64)

    @property
    def schema_version(self) -> int | None:
        """The latest value schema version (1: the schema the topic was created with); None: untyped."""
        return len(self.schema_versions_b64) or None

    @property
    def schema_versions(self) -> dict[int, pa.Schema]:
        """Every value schema version by number, oldest first (empty for an untyped topic)."""
        return _versions.decode_all(self)

    def schema_for(self, version: int) -> pa.Schema:
        """The value schema of ``version``; UnknownSchemaVersionError naming the versions there are."""
        return _versions.schema_for(self, version)

    def check_partition(self, partition: int) -> int:
        if not isinstance(partition, int) or not 0 <= partition < self.partitions:
            raise UnknownPartitionError(
                f"topic {self.name!r} has partitions 0..{self.partitions - 1}; there is no "
                f"partition {partition!r}"
            )
        return partition


class ClusterMetadata:
    """The topic table with its rules; every change is persisted before it returns. Thread-safe."""

    def __init__(self, store: MetadataStore, clock=None):
        self._store = store
        self._clock = clock or SystemClock()  # when topics are created and schema versions registered
        self._lock = threading.RLock()
        stored, self._settings = store.load_all()
        self._topics = {name: TopicMetadata(**fields) for name, fields in stored.items()}

    def topics(self) -> list[str]:
        with self._lock:
            return sorted(self._topics)

    def replica_placements(self, *, except_topic: str | None = None) -> list[str | None]:
        """The node of every replica of every topic (but ``except_topic``): what placement counts."""
        with self._lock:
            return [node for name, t in self._topics.items() if name != except_topic
                    for node in t.every_replica_node()]

    def get(self, name: str) -> TopicMetadata:
        with self._lock:
            try:
                return self._topics[name]
            except KeyError:
                validate_topic_name(name)
                raise UnknownTopicError(
                    f"topic {name!r} does not exist; create it with Admin().create_topic({name!r}) "
                    f"or `rayka topics create {name}`"
                ) from None

    def create_topic(self, name: str, partitions: int, replication_factor: int = 1,
                     config: dict | None = None, value_schema: pa.Schema | None = None,
                     nodes: list | None = None, replica_nodes: list | None = None) -> TopicMetadata:
        """Validate and record a new topic. Raises before anything is stored if any input is bad.
        ``replica_nodes``: per partition, the node of each replica id 0..RF-1 (replica 0 leads);
        without it, replica 0 is on ``nodes[p]`` and the others anywhere (None)."""
        validate_topic_name(name)
        _check_partitions(partitions)
        check_replication_factor(replication_factor)
        topic_config = TopicConfig.from_dict(config)
        check_min_insync(topic_config, replication_factor, f"topic {name!r}")
        layout = replica_layout(partitions, replication_factor, nodes, replica_nodes)
        if value_schema is not None:
            from ..partitions.records import log_schema

            log_schema(value_schema)  # raises on a clash with reserved columns
        with self._lock:
            if name in self._topics:
                raise TopicExistsError(f"topic {name!r} already exists")
            meta = TopicMetadata(
                name=name, partitions=partitions, replication_factor=replication_factor,
                config=topic_config.to_dict(), value_schema_b64=encode_schema(value_schema),
                nodes=[rn["0"] for rn in layout], replica_nodes=layout, created_ms=self._clock(),
            )
            self._topics[name] = meta
            self._save_or_undo(lambda: self._topics.pop(name))
            return meta

    def delete_topic(self, name: str) -> TopicMetadata:
        with self._lock:
            meta = self.get(name)
            del self._topics[name]
            self._save_or_undo(lambda: self._topics.__setitem__(name, meta))
            return meta

    def add_partitions(self, name: str, total: int, new_nodes: list | None = None,
                       new_replica_nodes: list | None = None) -> TopicMetadata:
        """Grow a topic to ``total`` partitions (Kafka never shrinks one); the new ones' replicas are
        placed as create_topic's ``nodes``/``replica_nodes`` say."""
        _check_partitions(total)
        with self._lock:
            meta = self.get(name)
            if total <= meta.partitions:
                raise ConfigError(
                    f"topic {name!r} has {meta.partitions} partitions; add_partitions needs a larger "
                    f"total, got {total} (partitions can only be added)"
                )
            added = total - meta.partitions
            layout = replica_layout(added, meta.replication_factor, new_nodes, new_replica_nodes)
            old = (meta.partitions, list(meta.nodes), list(meta.states), list(meta.replica_nodes))
            meta.nodes = list(meta.nodes) + [rn["0"] for rn in layout]
            meta.replica_nodes = list(meta.replica_nodes) + layout
            meta.states = list(meta.states) + [
                PartitionState.initial(range(meta.replication_factor)).to_dict() for _ in range(added)]
            meta.partitions = total

            def undo():
                meta.partitions, meta.nodes, meta.states, meta.replica_nodes = old

            self._save_or_undo(undo)
            return meta

    def partition_state(self, name: str, partition: int) -> PartitionState:
        """Leader, ISR and epochs of one partition as stored."""
        with self._lock:
            return self.get(name).state(partition)

    def set_partition_state(self, name: str, partition: int, state: PartitionState,
                            replica_nodes: dict | None = None,
                            expected_partition_epoch: int | None = None) -> PartitionState:
        """Store a new state of one partition (an election, a replacement), persisted before it
        returns. ``replica_nodes``: replica id -> node for replicas new or moved (merged into the
        stored map, which then keeps exactly the state's replicas; every one must have a node
        entry, None for anywhere). ``expected_partition_epoch``: compare-and-set, refused with
        InvalidUpdateVersionError when the stored state moved on. A state whose partition epoch is
        not above the stored one is a bug of the caller (ValueError)."""
        if not isinstance(state, PartitionState):
            raise TypeError(f"set_partition_state needs a PartitionState, got {type(state).__name__}")
        with self._lock:
            meta = self.get(name)
            current = meta.state(partition)
            if expected_partition_epoch is not None and expected_partition_epoch != current.partition_epoch:
                raise InvalidUpdateVersionError(
                    f"partition {name}-{partition} is at partition epoch {current.partition_epoch}, not the "
                    f"expected {expected_partition_epoch}: its state changed since it was read; read it again")
            if state.partition_epoch <= current.partition_epoch:
                raise ValueError(
                    f"new state of {name}-{partition} has partition epoch {state.partition_epoch}, not above the "
                    f"stored {current.partition_epoch}: every change of a partition's state bumps it")
            merged = {**meta.replica_nodes_of(partition), **{int(r): n for r, n in (replica_nodes or {}).items()}}
            missing = [r for r in state.replicas if r not in merged]
            if missing:
                raise ValueError(f"new state of {name}-{partition} has replicas {missing} with no node: pass "
                                 "replica_nodes for them (None for anywhere)")
            nodes = {str(r): merged[r] for r in state.replicas}
            lead = state.leader if state.leader is not None else state.replicas[0]
            old = (meta.states[partition], meta.replica_nodes[partition], meta.nodes[partition],
                   meta.next_replica_ids[partition])
            meta.states[partition], meta.replica_nodes[partition] = state.to_dict(), nodes
            meta.nodes[partition] = nodes[str(lead)]
            meta.next_replica_ids[partition] = max(old[3], max(state.replicas) + 1)

            def undo():
                (meta.states[partition], meta.replica_nodes[partition], meta.nodes[partition],
                 meta.next_replica_ids[partition]) = old

            self._save_or_undo(undo)
            return state

    def set_reassignment(self, name: str, partition: int, target: tuple | None) -> None:
        """Store (or, with None, clear) the target nodes of a partition's reassignment."""
        with self._lock:
            meta = self.get(name)
            key = str(meta.check_partition(partition))
            old = dict(meta.reassignments)
            if target is None:
                meta.reassignments.pop(key, None)
            else:
                meta.reassignments[key] = list(target)

            def undo():
                meta.reassignments = old

            self._save_or_undo(undo)

    def alter_partition(self, name: str, partition: int, request: AlterPartitionRequest) -> PartitionState:
        """A leader's ISR change (election.alter_partition on the stored state), persisted before it
        returns; a repeat of a change already made answers the current state."""
        with self._lock:
            current = self.partition_state(name, partition)
            new = _alter_partition(current, request)
            if new.partition_epoch == current.partition_epoch:
                return current
            return self.set_partition_state(name, partition, new, expected_partition_epoch=current.partition_epoch)

    def alter_config(self, name: str, changes: dict) -> TopicMetadata:
        """Change some config keys of a topic (a None value resets a key to its default),
        validated like create_topic's; bumps ``config_version``. Nothing changes on bad input."""
        if not isinstance(changes, dict) or not changes:
            raise ConfigError(f"alter_config needs a non-empty dict of topic config keys, got {changes!r}")
        with self._lock:
            meta = self.get(name)
            merged = dict(meta.config)
            defaults = TopicConfig().to_dict()
            for key, value in changes.items():
                canonical = _canonical_key(key)
                merged[canonical] = defaults[canonical] if value is None else value
            topic_config = TopicConfig.from_dict(merged)
            check_min_insync(topic_config, meta.replication_factor, f"topic {name!r}")
            new_config = topic_config.to_dict()
            old = (meta.config, meta.config_version)
            meta.config, meta.config_version = new_config, meta.config_version + 1

            def undo():
                meta.config, meta.config_version = old

            self._save_or_undo(undo)
            return meta

    def evolve_schema(self, name: str, new_schema: pa.Schema) -> TopicMetadata:
        """Register ``new_schema`` as the next value schema version of typed topic ``name``,
        checked against the earlier versions under its ``schema.compatibility`` and persisted
        before it returns. Equal to the latest (field metadata included): the metadata unchanged.
        Refused (schema_versions.next_version says how) with nothing stored."""
        with self._lock:
            meta = self.get(name)
            encoded = _versions.next_version(meta, new_schema)
            if encoded is not None:
                self._save_or_undo(_versions.append_version(meta, encoded, self._clock()))
            return meta

    def settings(self) -> dict:
        """Cluster settings kept with the topics (e.g. ``{"partition_budget": {...}}``)."""
        with self._lock:
            return json.loads(json.dumps(self._settings))

    def set_setting(self, key: str, value) -> None:
        """Store one cluster setting durably (None removes it)."""
        with self._lock:
            old = dict(self._settings)
            if value is None:
                self._settings.pop(key, None)
            else:
                self._settings[key] = value

            def undo():
                self._settings.clear()
                self._settings.update(old)

            self._save_or_undo(undo)

    def _save_or_undo(self, undo) -> None:
        try:
            self._store.save(self._topics, self._settings)
        except BaseException:
            undo()
            raise


def _check_partitions(n: object) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= MAX_PARTITIONS:
        raise ConfigError(f"partitions must be an integer in 1..{MAX_PARTITIONS}, got {n!r}")


def _canonical_key(key: object) -> str:
    """The Kafka-style name of a topic config key (field names are accepted too)."""
    kafka = TopicConfig().to_dict()
    if key in kafka:
        return key
    for kafka_key in kafka:
        if kafka_key.replace(".", "_") == key:
            return kafka_key
    raise ConfigError(f"unknown topic config {key!r}; known keys: {', '.join(sorted(kafka))}")
