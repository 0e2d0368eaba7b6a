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
from rayka.actors.partition import PartitionActor
from rayka.actors.partition_calls import PartitionCalls, node_memory_by_id
from rayka.clock import SystemClock
from rayka.coordinator.group_coordinator import GroupCoordinator
from rayka.coordinator.group_service import GroupService
from rayka.coordinator.metadata import MAX_PARTITIONS, ClusterMetadata, MetadataStore, METADATA_FILE, partition_dir
from rayka.coordinator.offset_store import OffsetStore
from rayka.coordinator.placement import partitions_per_node, place_partitions
from rayka.coordinator.topic_config_service import CONFIG_SYNC_S, TopicConfigService
from rayka.messages import (BudgetInfo, ClusterInfo, GroupInfo, GroupListing, HeartbeatStatus, JoinResult, OffsetReset,
                            TopicConfigInfo)

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
        self._handles: dict[tuple[str, int], object] = {}
        self._lock = threading.RLock()
        self._node_id = ray.get_runtime_context().get_node_id()
        for name in self._meta.topics():
            self._ensure_partitions(self._meta.get(name))
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
        self._configs = TopicConfigService(self._meta, self._lock, self._ensure_partitions, calls.push_config,
                                           node_memory_by_id)
        threading.Thread(target=self._config_sync_loop, name="rayka-config-sync", daemon=True).start()

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

    def _ensure_partitions(self, meta) -> list:
        handles = []
        alive = None
        for p in range(meta.partitions):
            key = (meta.topic_id, p)
            handle = self._handles.get(key)
            if handle is None:
                name = _ray.partition_name(self._cluster, meta.topic_id, p)
                node = meta.nodes[p] if p < len(meta.nodes) else None
                options = dict(name=name, namespace=self._namespace, lifetime="detached", get_if_exists=True)
                if alive is None:
                    alive = set(_ray.alive_node_ids())
                if node is not None and node in alive:
                    options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
                handle = PartitionActor.options(**options).remote(
                    str(partition_dir(self._data_dir, meta.name, p)), meta.config, meta.value_schema,
                    meta.name, p, meta.config_version,
                )
                self._handles[key] = handle
            handles.append(handle)
        return handles

    def _place(self, count: int, action: str) -> list:
        """A node for each of ``count`` new partitions within each node's budget
        (coordinator/placement.py); PartitionBudgetError if there is no room."""
        memory = node_memory_by_id()
        if len(memory) <= 1:  # one node (or Ray reports none): everything lives beside the coordinator
            memory = {self._node_id: sum(memory.values())}
        placements = [node for name in self._meta.topics() for node in self._meta.get(name).nodes]
        on_nodes = partitions_per_node(placements, memory)
        elsewhere = len(placements) - sum(on_nodes.values())
        return place_partitions(self._configs.budget(), memory, on_nodes, count, action, elsewhere=elsewhere)

    # -- topics -----------------------------------------------------------------------------

    def info(self) -> ClusterInfo:
        return ClusterInfo(self._cluster, self._namespace, self._data_dir)

    def create_topic(self, name, partitions, replication_factor=1, config=None, value_schema=None):
        with self._lock:
            nodes = None  # a bad count or an existing name: the metadata refuses it
            if _valid_count(partitions) and name not in self._meta.topics():
                nodes = self._place(partitions, f"create_topic({name!r}, partitions={partitions})")
            meta = self._meta.create_topic(name, partitions, replication_factor, config, value_schema, nodes=nodes)
            handles = self._ensure_partitions(meta)
        ray.get([h.ping.remote() for h in handles])
        self._groups.topics_changed()
        return meta

    def list_topics(self) -> list[str]:
        return self._meta.topics()

    def topic(self, name: str):
        """(TopicMetadata, [partition actor handles]) for clients to cache."""
        with self._lock:
            meta = self._meta.get(name)
            return meta, self._ensure_partitions(meta)

    def delete_topic(self, name: str) -> None:
        with self._lock:
            meta = self._meta.get(name)
            handles = self._ensure_partitions(meta)
            refs = [h.delete.remote() for h in handles]
            try:
                ray.get(refs)
            except Exception:
                log.warning("some partitions of %s could not delete their files", name, exc_info=True)
            for p, h in enumerate(handles):
                _ray.kill(h)
                self._handles.pop((meta.topic_id, p), None)
            self._meta.delete_topic(name)
        self._groups.topics_changed(deleted=name)

    def add_partitions(self, name: str, total: int):
        with self._lock:
            meta = self._meta.get(name)
            nodes = None
            if _valid_count(total) and total > meta.partitions:
                nodes = self._place(total - meta.partitions, f"add_partitions({name!r}, total={total})")
            meta = self._meta.add_partitions(name, total, nodes)
            handles = self._ensure_partitions(meta)
        ray.get([h.ping.remote() for h in handles])
        self._groups.topics_changed()
        return meta

    def shutdown(self, delete_data: bool = False) -> None:
        """Close every partition and kill the partition actors; with ``delete_data`` also
        remove every file of this cluster (partitions, topic metadata, committed offsets)."""
        self._stop.set()
        with self._lock:
            for name in self._meta.topics():
                meta = self._meta.get(name)
                handles = self._ensure_partitions(meta)
                try:
                    ray.get([(h.delete if delete_data else h.close).remote() for h in handles])
                except Exception:
                    log.warning("closing %s failed", name, exc_info=True)
                for h in handles:
                    _ray.kill(h)
            self._handles.clear()
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

    def list_groups(self) -> tuple[GroupListing, ...]:
        return self._groups.list_groups()

    def describe_group(self, group_id) -> GroupInfo:
        return self._groups.describe_group(group_id)

    def delete_group(self, group_id) -> None:
        self._groups.delete_group(group_id)

    def reset_offsets(self, group_id, to, topics=None) -> OffsetReset:
        return self._groups.reset_offsets(group_id, to, topics)

    # -- misc ---------------------------------------------------------------------------------

    def ping(self) -> bool:
        return True

    def instance_id(self) -> str:
        """A new id per actor incarnation: tells a restarted coordinator from the one before."""
        return self._instance_id


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
