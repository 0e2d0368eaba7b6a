"""CoordinatorActor: the named, detached keeper of topic metadata and partition actors.

It wraps :class:`rayka.coordinator.metadata.ClusterMetadata` (persisted in the
data dir) and makes sure every partition of every topic has its actor: on start
it finds the surviving partition actors by name and re-creates the missing ones,
so a restarted coordinator, or a new embedded session on the same data dir,
serves every topic and every message again. Producers and consumers ask it for
partition actor handles once, then talk to the partitions directly. A coordinator
that Ray restarted also takes back the consumer groups' members (see
rayka.coordinator.group_snapshot), so group members ride through the restart.
"""

from __future__ import annotations

import logging
import shutil
import threading
import uuid
import warnings
from pathlib import Path

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rayka.actors import _ray
from rayka.actors.controller import CHECK_INTERVAL_S, ControllerLoop
from rayka.actors.partition_calls import PartitionCalls, node_memory_by_id
from rayka.actors.replica_actors import ReplicaActors
from rayka.clock import SystemClock
from rayka.coordinator.group_coordinator import GroupCoordinator
from rayka.coordinator.group_service import GroupService
from rayka.coordinator.metadata import MAX_PARTITIONS, ClusterMetadata, MetadataStore, METADATA_FILE
from rayka.coordinator.offset_store import OffsetStore
from rayka.coordinator.placement import partitions_per_node, place_partitions
from rayka.coordinator.producer_ids import ProducerIdManager
from rayka.coordinator.reassignment import check_target
from rayka.coordinator.schema_versions import version_infos
from rayka.coordinator.replica_placement import COLOCATE, place_replacement, place_replicas
from rayka.coordinator.topic_config_service import CONFIG_SYNC_S, TopicConfigService
from rayka.errors import UnknownTopicError
from rayka.messages import (BudgetInfo, ClusterInfo, GroupInfo, GroupListing, HeartbeatStatus, JoinResult,
                            KafkaJoinResult, KafkaSyncResult, OffsetReset, SchemaVersionInfo, TopicConfigInfo)

__all__ = ["CoordinatorActor", "start_coordinator"]

log = logging.getLogger(__name__)

OFFSETS_FILE = "__consumer_offsets.jsonl"
GROUP_TICK_S = 0.1


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16)
class CoordinatorActor:
    """Topic metadata and the directory of partition actors for one rayka cluster.

    Its consumer-group calls go to a :class:`GroupService` and its topic-config and budget
    calls to a :class:`TopicConfigService` (plain logic, given the partition calls they need);
    the actor keeps the topics and partition actors, and runs the two background loops.
    """

    def __init__(self, cluster: str, namespace: str, data_dir: str):
        self._cluster, self._namespace = cluster, namespace
        self._data_dir = str(Path(data_dir).resolve())
        Path(self._data_dir).mkdir(parents=True, exist_ok=True)
        self._meta = ClusterMetadata(MetadataStore(Path(self._data_dir) / METADATA_FILE))
        self._producer_ids = ProducerIdManager(self._meta)
        self._lock = threading.RLock()
        self._replicas = ReplicaActors(cluster, namespace, self._data_dir, self._lock)
        self._node_id = ray.get_runtime_context().get_node_id()
        for name in self._meta.topics():
            self._replicas.leaders(self._meta.get(name))
        self._instance_id = uuid.uuid4().hex
        calls = PartitionCalls(lambda name: self.topic(name)[1])
        # Only a restart keeps the members: after a new session they are gone with the old one.
        restarted = _was_restarted()
        groups = GroupCoordinator(OffsetStore(Path(self._data_dir) / OFFSETS_FILE), SystemClock(),
                                  self._partition_counts, restore_members=restarted)
        if restarted:
            log.warning("coordinator of %s restarted; %d consumer group(s) restored", cluster, len(groups.groups))
        self._groups = GroupService(groups, calls)
        self._stop = threading.Event()
        threading.Thread(target=self._tick_loop, name="rayka-group-tick", daemon=True).start()
        self._configs = TopicConfigService(self._meta, self._lock, self._replicas.config_targets, calls.push_config,
                                           node_memory_by_id)
        threading.Thread(target=self._config_sync_loop, name="rayka-config-sync", daemon=True).start()
        self._controller = ControllerLoop(self._meta, self._locked_replica_handles, self._replicas.recreate,
                                          self._place_replacement, SystemClock(), self._replicas.retire)
        threading.Thread(target=self._controller_loop, name="rayka-controller", daemon=True).start()

    def _locked_replica_handles(self, meta) -> dict:
        return self._replicas.handles(self._meta.get(meta.name))

    def _controller_loop(self) -> None:
        while not self._stop.wait(CHECK_INTERVAL_S):
            try:
                self._controller.tick()
            except Exception:  # keep checking; a bad tick must not end failover for good
                log.exception("controller check failed")

    def _place_replacement(self, meta, p: int, exclude, chosen) -> str | None:
        memory = node_memory_by_id()
        placements = self._meta.replica_placements()
        placements += list(chosen)
        colocate = meta.topic_config.replica_placement == COLOCATE
        return place_replacement(self._configs.budget(), memory, partitions_per_node(placements, memory),
                                 exclude, zones=_ray.node_zones(), colocate=colocate)

    def _tick_loop(self) -> None:
        while not self._stop.wait(GROUP_TICK_S):
            try:
                self._groups.tick()
            except Exception:  # keep ticking; a broken group must not stop the others
                log.exception("group tick failed")

    def _config_sync_loop(self) -> None:
        while not self._stop.wait(CONFIG_SYNC_S):
            try:
                self._configs.sync_pending()
            except Exception:  # keep syncing; one topic's trouble must not stop the others
                log.exception("config sync failed")

    def _partition_counts(self) -> dict[str, int]:
        return {name: self._meta.get(name).partitions for name in self._meta.topics()}

    def _place(self, count: int, action: str) -> list:
        """A node for each of ``count`` new partitions within each node's budget
        (coordinator/placement.py); PartitionBudgetError if there is no room."""
        memory = node_memory_by_id()
        if len(memory) <= 1:  # one node (or Ray reports none): everything lives beside the coordinator
            memory = {self._node_id: sum(memory.values())}
        placements = self._meta.replica_placements()
        on_nodes = partitions_per_node(placements, memory)
        elsewhere = len(placements) - sum(on_nodes.values())
        return place_partitions(self._configs.budget(), memory, on_nodes, count, action, elsewhere=elsewhere)

    # -- topics -----------------------------------------------------------------------------

    def info(self) -> ClusterInfo:
        return ClusterInfo(self._cluster, self._namespace, self._data_dir)

    def create_topic(self, name, partitions, replication_factor=1, config=None, value_schema=None):
        with self._lock:
            nodes = replica_nodes = None  # a bad count or an existing name: the metadata refuses it
            if _valid_count(partitions) and name not in self._meta.topics():
                action = f"create_topic({name!r}, partitions={partitions})"
                if _valid_rf(replication_factor) and replication_factor > 1:
                    replica_nodes = self._place_replicas(partitions, replication_factor, config, action, 0)
                else:
                    nodes = self._place(partitions, action)
            meta = self._meta.create_topic(name, partitions, replication_factor, config, value_schema, nodes=nodes,
                                           replica_nodes=replica_nodes)
            handles = self._replicas.leaders(meta)
        ray.get([h.ping.remote() for h in handles if h is not None])
        self._replicas.announce(meta)
        self._groups.topics_changed()
        return meta

    def _place_replicas(self, count: int, rf: int, config, action: str, first: int) -> list:
        """Nodes for the ``rf`` replicas of ``count`` new partitions (replica_placement.py)."""
        from rayka.config import TopicConfig

        memory = node_memory_by_id()
        placements = self._meta.replica_placements()
        on_nodes = partitions_per_node(placements, memory)
        colocate = TopicConfig.from_dict(config).replica_placement == COLOCATE
        placed = place_replicas(self._configs.budget(), memory, on_nodes, count, rf, action, colocate=colocate,
                                zones=_ray.node_zones(), first_partition=first,
                                elsewhere=len(placements) - sum(on_nodes.values()))
        if placed.warning:
            log.warning("%s", placed.warning)
        return [list(nodes) for nodes in placed.nodes]

    def list_topics(self) -> list[str]:
        return self._meta.topics()

    def topic(self, name: str):
        """(TopicMetadata, [partition actor handles]) for clients to cache."""
        with self._lock:
            meta = self._meta.get(name)
            return meta, self._replicas.leaders(meta)

    def delete_topic(self, name: str) -> None:
        with self._lock:
            meta = self._meta.get(name)
            handles = self._replicas.handles(meta)
            refs = [h.delete.remote() for h in handles.values() if h is not None]
            try:
                ray.get(refs)
            except Exception:
                log.warning("some partitions of %s could not delete their files", name, exc_info=True)
            for h in handles.values():
                if h is not None:
                    _ray.kill(h)
            self._replicas.forget(meta)
            self._meta.delete_topic(name)
        self._groups.topics_changed(deleted=name)

    def add_partitions(self, name: str, total: int):
        with self._lock:
            meta = self._meta.get(name)
            nodes = replica_nodes = None
            if _valid_count(total) and total > meta.partitions:
                action = f"add_partitions({name!r}, total={total})"
                if meta.replication_factor > 1:
                    replica_nodes = self._place_replicas(total - meta.partitions, meta.replication_factor,
                                                         meta.config, action, meta.partitions)
                else:
                    nodes = self._place(total - meta.partitions, action)
            meta = self._meta.add_partitions(name, total, nodes, replica_nodes)
            handles = self._replicas.leaders(meta)
        ray.get([h.ping.remote() for h in handles if h is not None])
        self._replicas.announce(meta)
        self._groups.topics_changed()
        return meta

    def evolve_schema(self, topic: str, schema) -> SchemaVersionInfo:
        """Register ``schema`` (a pa.Schema) as the next value schema version of typed ``topic``
        (ClusterMetadata.evolve_schema: IncompatibleSchemaError when its schema.compatibility
        refuses it); the latest version, which is the one given or an equal one already there."""
        return version_infos(self._meta.evolve_schema(topic, schema))[-1]

    def schema_versions(self, topic: str) -> list[SchemaVersionInfo]:
        """Every value schema version of ``topic``, oldest first (empty: an untyped topic)."""
        return version_infos(self._meta.get(topic))

    def alter_partition(self, topic: str, topic_id: str, partition: int, request):
        """A leader's ISR change (Kafka's AlterPartition), persisted before it is answered; the
        partition's new state (election.alter_partition says what is refused)."""
        meta = self._meta.get(topic)
        if topic_id and meta.topic_id != topic_id:
            raise UnknownTopicError(f"topic {topic!r} was deleted and created again; this replica is of the old one")
        return self._meta.alter_partition(topic, partition, request)

    def elect_preferred_leaders(self, topic: str) -> list[int]:
        """Preferred leader election for ``topic``: the partitions whose leadership moved back
        to their first replica (the replicas learn it at the controller's next check)."""
        return self._controller.elect_preferred(topic)

    def reassign_partitions(self, topic: str, targets: dict | None = None) -> dict:
        """Move replicas of ``topic`` to other nodes: ``targets`` maps a partition to the node ids
        its replicas should live on (None: spread every partition over the alive nodes again, as
        create_topic would place it now). The controller carries it out step by step
        (coordinator/reassignment.py); returns the targets set."""
        with self._lock:
            meta = self._meta.get(topic)
            alive = set(_ray.alive_node_ids())
            if targets is None:
                others = self._meta.replica_placements(except_topic=topic)
                memory = node_memory_by_id()
                placed = place_replicas(self._configs.budget(), memory, partitions_per_node(others, memory),
                                        meta.partitions, len(meta.state(0).replicas), f"reassign({topic!r})",
                                        colocate=meta.topic_config.replica_placement == COLOCATE,
                                        zones=_ray.node_zones())
                targets = {p: list(nodes) for p, nodes in enumerate(placed.nodes)}
            checked = {}
            for p, nodes in dict(targets).items():
                meta.check_partition(p)
                checked[p] = check_target(nodes, alive, f"reassign_partitions({topic!r}) partition {p}")
            for p, nodes in checked.items():
                self._meta.set_reassignment(topic, p, nodes)
            return {p: list(n) for p, n in checked.items()}

    def partition_states(self, topic: str) -> list:
        """The replicated state (leader, ISR, epochs) of every partition of ``topic``."""
        meta = self._meta.get(topic)
        return [meta.state(p) for p in range(meta.partitions)]

    def shutdown(self, delete_data: bool = False) -> None:
        """Close every partition and kill the partition actors; with ``delete_data`` also
        remove every file of this cluster (partitions, topic metadata, committed offsets)."""
        self._stop.set()
        with self._lock:
            for name in self._meta.topics():
                meta = self._meta.get(name)
                handles = [h for h in self._replicas.handles(meta).values() if h is not None]
                try:
                    ray.get([(h.delete if delete_data else h.close).remote() for h in handles], timeout=30)
                except Exception:
                    log.warning("closing %s failed", name, exc_info=True)
                for h in handles:
                    _ray.kill(h)
            self._replicas.forget(None)
            if delete_data:
                root = Path(self._data_dir)
                for name in (METADATA_FILE, OFFSETS_FILE):
                    (root / name).unlink(missing_ok=True)
                shutil.rmtree(root / "topics", ignore_errors=True)

    # -- topic config and partition budget (TopicConfigService) --------------------------------

    def alter_topic_config(self, name: str, changes: dict) -> TopicConfigInfo:
        return self._configs.alter_topic_config(name, changes)

    def describe_topic_config(self, name: str) -> TopicConfigInfo:
        return self._configs.describe_topic_config(name)

    def set_partition_budget(self, changes: dict) -> BudgetInfo:
        return self._configs.set_partition_budget(changes)

    def partition_budget(self) -> BudgetInfo:
        return self._configs.partition_budget()

    # -- consumer groups (GroupService) -----------------------------------------------------

    def join_group(self, group_id, member_id, instance_id, topics, session_timeout_ms, rebalance_timeout_ms,
                   owned, assignor) -> JoinResult:
        return self._groups.join_group(group_id, member_id, instance_id, topics, session_timeout_ms,
                                       rebalance_timeout_ms, owned, assignor)

    def heartbeat(self, group_id, member_id, generation) -> HeartbeatStatus:
        return self._groups.heartbeat(group_id, member_id, generation)

    def leave_group(self, group_id, member_id) -> None:
        self._groups.leave_group(group_id, member_id)

    def commit_offsets(self, group_id, member_id, generation, offsets) -> None:
        self._groups.commit_offsets(group_id, member_id, generation, offsets)

    def fetch_offsets(self, group_id, tps, with_metadata: bool = False) -> list:
        return self._groups.fetch_offsets(group_id, tps, with_metadata)

    def fetch_all_offsets(self, group_id) -> tuple:
        return self._groups.fetch_all_offsets(group_id)

    # Kafka's client-assigned protocol (the gateway's calls; coordinator/client_groups.py)

    def kafka_join_group(self, group_id, member_id, instance_id, protocol_type, protocols, session_timeout_ms,
                         rebalance_timeout_ms, client_id="", client_host="") -> KafkaJoinResult:
        return self._groups.kafka_join_group(group_id, member_id, instance_id, protocol_type, protocols,
                                             session_timeout_ms, rebalance_timeout_ms, client_id, client_host)

    def kafka_sync_group(self, group_id, member_id, generation, instance_id, assignments,
                         assigned=None) -> KafkaSyncResult:
        return self._groups.kafka_sync_group(group_id, member_id, generation, instance_id, assignments, assigned)

    def kafka_heartbeat(self, group_id, member_id, generation, instance_id=None) -> HeartbeatStatus:
        return self._groups.kafka_heartbeat(group_id, member_id, generation, instance_id)

    def kafka_leave_group(self, group_id, member_id, instance_id=None) -> None:
        self._groups.kafka_leave_group(group_id, member_id, instance_id)

    def kafka_commit_offsets(self, group_id, member_id, generation, instance_id, offsets) -> None:
        self._groups.kafka_commit_offsets(group_id, member_id, generation, instance_id, offsets)

    def list_groups(self) -> tuple[GroupListing, ...]:
        return self._groups.list_groups()

    def describe_group(self, group_id) -> GroupInfo:
        return self._groups.describe_group(group_id)

    def delete_group(self, group_id) -> None:
        self._groups.delete_group(group_id)

    def reset_offsets(self, group_id, to, topics=None) -> OffsetReset:
        return self._groups.reset_offsets(group_id, to, topics)

    # -- producers ----------------------------------------------------------------------------

    def init_producer_id(self) -> tuple[int, int]:
        """A Kafka producer's ``(producer_id, epoch)``: unique across restarts (coordinator/producer_ids.py)."""
        return self._producer_ids.init_producer_id()

    # -- misc ---------------------------------------------------------------------------------

    def ping(self) -> bool:
        return True

    def instance_id(self) -> str:
        """A new id per actor incarnation: tells a restarted coordinator from the one before."""
        return self._instance_id


def _valid_rf(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and n >= 1


def _valid_count(n) -> bool:
    return isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_PARTITIONS


def _was_restarted() -> bool:
    """Whether Ray restarted this actor (as opposed to creating it for a new session)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Ray's own property uses a deprecated one
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)


def start_coordinator(cluster: str, namespace: str, data_dir: str):
    """Get the cluster's coordinator, creating it (detached) if it does not exist yet."""
    name = _ray.coordinator_name(cluster)
    handle = _ray.get_actor(name, namespace)
    if handle is None:
        handle = CoordinatorActor.options(
            name=name, namespace=namespace, lifetime="detached", get_if_exists=True,
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False),
        ).remote(cluster, namespace, data_dir)
    return handle
