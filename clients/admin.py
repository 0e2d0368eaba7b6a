"""Admin: create, list, describe, grow and delete topics (and, with groups, inspect them)."""

from __future__ import annotations

import logging

import pyarrow as pa

from rayka.clients.connection import Cluster, current
from rayka.clients.kafka_names import refuse_unknown
from rayka.clients.stubs import gather
from rayka.clients.types import (
    GroupDescription,
    GroupPartitionDescription,
    MemberDescription,
    PartitionDescription,
    SchemaVersion,
    TopicDescription,
    TopicPartition,
)
from rayka.coordinator.metadata import validate_topic_name
from rayka.errors import ConfigError

__all__ = ["Admin"]

log = logging.getLogger(__name__)


class Admin:
    """Topic administration against the current (or given) cluster connection."""

    def __init__(self, cluster: Cluster | None = None, **unknown):
        """``cluster``: a connection from ``rayka.connect()`` (default: the current one). Any other
        keyword (a Kafka setting such as ``bootstrap_servers``) raises ConfigError naming what
        rayka does instead."""
        refuse_unknown("Admin", unknown, ("cluster",))
        if isinstance(cluster, str):  # Admin("localhost:9092"), a broker list given positionally
            raise ConfigError(f"Admin takes a connection from rayka.connect() (or nothing), not the string "
                              f"{cluster!r:.60}: Admin(rayka.connect(address=...))")
        self._cluster = cluster or current()
        self._coordinator = self._cluster.coordinator

    def create_topic(self, name: str, partitions: int = 1, replication_factor: int = 1,
                     config: dict | None = None, schema: pa.Schema | None = None) -> TopicDescription:
        """Create a topic; ``schema`` makes its values typed Arrow columns instead of bytes.

        Raises InvalidTopicError, TopicExistsError or ConfigError with nothing created.
        """
        validate_topic_name(name)
        self._coordinator.create_topic(name, partitions, replication_factor, config, schema)
        self._cluster.forget(name)
        return self.describe_topic(name)

    def list_topics(self) -> list[str]:
        return self._coordinator.list_topics()

    def describe_topic(self, name: str, timeout_s: float = 10.0) -> TopicDescription:
        """Partitions with their leader node, log start/end offsets, sizes and damaged offsets.

        Each partition answers on its own: one that cannot be reached (its actor died, or its
        node is gone), or does not answer within ``timeout_s``, is described with
        ``available=False``, the reason in ``error``, its offsets and sizes -1 and the node
        it was placed on as ``leader``; the others are described as usual.
        """
        meta, handles = self._cluster.topic(name, refresh=True)
        answers = gather([h.stats() for h in handles], timeout_s=timeout_s)
        parts = []
        for p, s in enumerate(answers):
            state, nodes = meta.state(p), meta.replica_nodes_of(p)
            replicated = dict(replica_ids=state.replicas, leader_replica=state.leader, isr=state.isr,
                              leader_epoch=state.leader_epoch, partition_epoch=state.partition_epoch,
                              replicas=tuple(nodes.get(r) for r in state.replicas))
            if isinstance(s, BaseException):
                parts.append(PartitionDescription(
                    partition=p, leader=meta.leader_node(p), log_start_offset=-1, log_end_offset=-1,
                    size_bytes=-1, segments=-1, available=False, error=str(s), **replicated))
                continue
            parts.append(PartitionDescription(
                partition=p, leader=s.node_id, log_start_offset=s.log_start_offset,
                log_end_offset=s.log_end_offset, size_bytes=s.size_bytes, segments=s.segments,
                damaged_offsets=s.damaged_offsets, **replicated,
            ))
        return TopicDescription(name, parts, meta.replication_factor, dict(meta.config), meta.value_schema,
                                meta.schema_version)

    def delete_topic(self, name: str) -> None:
        """Delete the topic, its partition actors and its files."""
        self._coordinator.delete_topic(name)
        self._cluster.forget(name)

    def add_partitions(self, name: str, total: int) -> TopicDescription:
        """Grow the topic to ``total`` partitions."""
        self._coordinator.add_partitions(name, total)
        self._cluster.forget(name)
        return self.describe_topic(name)

    def reassign_partitions(self, name: str, targets: dict | None = None) -> dict[int, list[str]]:
        """Move the replicas of topic ``name`` (Kafka's partition reassignment): ``targets`` maps a
        partition to the Ray node ids its replicas should live on, the first one preferred as
        leader; without it every partition is placed again over the alive nodes (after nodes
        joined). The controller adds the new replicas, waits until they are in sync, moves the
        leadership if it must and only then removes the old replicas, so no copy is given up
        before its replacement holds the data. Returns the targets; describe_topic shows the
        progress. A bad target (a dead node, one named twice) raises ConfigError, nothing moved."""
        validate_topic_name(name)
        return self._coordinator.reassign_partitions(name, targets)

    def elect_leaders(self, name: str) -> list[int]:
        """Preferred leader election (Kafka's ``kafka-leader-election --election-type preferred``):
        every partition of a replicated topic whose first replica is alive and in sync but does
        not lead gets it back as leader, spreading the leaders again after failovers. Returns the
        partitions whose leader moved; producers and consumers follow by themselves."""
        validate_topic_name(name)
        moved = self._coordinator.elect_preferred_leaders(name)
        self._cluster.forget(name)
        return moved

    def list_offsets(self, name: str, timeout_s: float = 10.0) -> dict[int, tuple[int, int] | None]:
        """partition -> (log_start_offset, log_end_offset); None for a partition that cannot be
        reached (or gave no answer within ``timeout_s``): ``describe_topic`` says why."""
        _, handles = self._cluster.topic(name, refresh=True)  # a new leader since: its handle
        answers = gather([h.offsets() for h in handles], timeout_s=timeout_s)
        return {p: None if isinstance(a, BaseException) else tuple(a) for p, a in enumerate(answers)}

    # -- value schema versions ---------------------------------------------------------------------

    def evolve_schema(self, topic: str, new_schema: pa.Schema) -> SchemaVersion:
        """Register ``new_schema`` as the next value schema version of typed topic ``topic``
        (as Confluent Schema Registry registers a subject's new version), kept durably with the
        topic: from now on the topic's metadata (``describe_topic``'s ``value_schema`` and
        ``schema_version``) shows it as the latest.

        It is checked against the earlier versions under the topic's ``schema.compatibility``
        config (default BACKWARD; see the README's "Schema evolution"): a refused change raises
        IncompatibleSchemaError listing every offending field and why, with nothing stored. A
        schema equal to the latest version (field metadata included) registers nothing and
        returns that version; an untyped topic raises ConfigError. Returns the new version.
        """
        validate_topic_name(topic)
        info = self._coordinator.evolve_schema(topic, new_schema)
        self._cluster.forget(topic)
        return _schema_version(info)

    def schema_history(self, topic: str) -> list[SchemaVersion]:
        """Every value schema version of ``topic``, oldest first (version 1: the schema it was
        created with); empty for an untyped topic."""
        validate_topic_name(topic)
        return [_schema_version(info) for info in self._coordinator.schema_versions(topic)]

    # -- topic config and the partition budget ---------------------------------------------------

    def alter_topic_config(self, name: str, config: dict) -> dict:
        """Change some of a topic's config keys, as Kafka's incremental alter-configs does:
        ``{"retention.ms": 3_600_000}``; a value of None resets a key to its default.

        Validated like ``create_topic``'s config (an unknown key or a bad value raises
        ConfigError with nothing changed), stored in the cluster metadata, and applied to
        the running partitions without a restart: segment.bytes and max.message.bytes at the
        next append, retention.* and segment.ms at the next retention pass (within 0.1 s),
        flush.* at once, index.interval.bytes for new segments. A partition that cannot be
        reached now gets the change when it is back (a warning names it). Producers created
        before the change keep checking the old max.message.bytes on their side; the
        partition enforces the new one. Returns the topic's whole config.
        """
        validate_topic_name(name)
        result = self._coordinator.alter_topic_config(name, config)
        self._cluster.forget(name)
        if result.pending:
            log.warning("topic %s: partition(s) %s were unreachable; they apply the new config when they are back",
                        name, list(result.pending))
        return result.as_dict()

    def describe_topic_config(self, name: str) -> dict:
        """The topic's whole config, Kafka-style keys (``{"retention.ms": ..., ...}``)."""
        validate_topic_name(name)
        return self._coordinator.describe_topic_config(name).as_dict()

    def set_partition_budget(self, config: dict) -> dict:
        """Change the cluster's partition budget, kept in the data dir: ``{"max.partitions": N}``
        (replaces the limit computed from memory; -1 turns the check off),
        ``"partition.memory.fraction"`` or ``"partition.memory.bytes"`` (see
        :class:`rayka.config.PartitionBudget`); None resets a key. Returns :meth:`partition_budget`."""
        return self._coordinator.set_partition_budget(config).to_dict()

    def partition_budget(self) -> dict:
        """The partition budget in force: its keys, ``node_memory_bytes`` (each alive node's Ray
        memory), ``limit`` (None: no limit) and ``partitions`` (how many exist)."""
        return self._coordinator.partition_budget().to_dict()

    # -- consumer groups ---------------------------------------------------------------------------

    def list_groups(self) -> list[dict]:
        """``[{"group_id", "state", "members"}]`` for every group with members or commits."""
        return [g.to_dict() for g in self._coordinator.list_groups()]

    def describe_group(self, group_id: str) -> GroupDescription:
        """State, members with their partitions, and per partition committed, end offset and lag."""
        info = self._coordinator.describe_group(group_id)
        members = [MemberDescription(m.member_id, m.instance_id, list(m.topics),
                                     [TopicPartition(*tp) for tp in m.assignment]) for m in info.members]
        parts = [GroupPartitionDescription(p.topic, p.partition, p.committed, p.end_offset, p.member,
                                           p.log_start_offset)
                 for p in info.partitions]
        return GroupDescription(info.group_id, info.state, info.protocol, info.generation, members, parts)

    def delete_group(self, group_id: str) -> None:
        """Delete a group and its committed offsets; it must have no active members."""
        self._coordinator.delete_group(group_id)

    def reset_offsets(self, group_id: str, to, topics: list[str] | None = None) -> dict[TopicPartition, int]:
        """Move an inactive group's committed offsets to ``"earliest"``, ``"latest"``, an offset
        (clamped to each partition's range) or ``{"timestamp_ms": t}``; returns the new offsets."""
        new = self._coordinator.reset_offsets(group_id, to, topics)
        return {TopicPartition(t, p): off for (t, p), off in new.offsets}


def _schema_version(info) -> SchemaVersion:
    """A SchemaVersion from the coordinator's ``(version, schema bytes, registered_ms)``."""
    schema = pa.ipc.read_schema(pa.py_buffer(info.schema))
    return SchemaVersion(info.version, schema, info.registered_ms)
