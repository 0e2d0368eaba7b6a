"""The coordinator's directory of partition replica actors: finding, creating, re-creating, retiring them.

Every replica of every partition is a named, detached PartitionActor
(``rayka:<cluster>:p:<topic_id>:<partition>`` for replica 0, ``...<partition>.r<k>`` for
replica k), pinned to its node with hard node affinity so its files never move. A
replicated partition's replica whose node is gone is not created anywhere else (the
controller replaces it after ``replica.lost.timeout.ms``); an unreplicated one starts
leading at once with the state it was created with.
"""

from __future__ import annotations

import logging
import threading

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rayka.actors import _ray
from rayka.actors.partition import PartitionActor
from rayka.actors.replication import replica_actor_name
from rayka.coordinator.replica_placement import replica_dir

__all__ = ["ReplicaActors"]

log = logging.getLogger(__name__)


class ReplicaActors:
    """The replica actors of one rayka cluster (``cluster``, ``namespace``, ``data_dir``), cached
    by (topic id, partition, replica). ``lock`` is the coordinator's: callers that change topics
    hold it; the controller's calls take it here."""

    def __init__(self, cluster: str, namespace: str, data_dir: str, lock: threading.RLock):
        self._cluster, self._namespace, self._data_dir = cluster, namespace, data_dir
        self._lock = lock
        self._handles: dict[tuple[str, int, int], object] = {}

    def leaders(self, meta) -> list:
        """The leader's actor handle of every partition of ``meta`` (replica 0's when no replica
        leads), creating the replicas' actors that do not exist yet."""
        replicas = self.handles(meta)
        out = []
        for p in range(meta.partitions):
            state = meta.state(p)
            leader = state.leader if state.leader is not None else state.replicas[0]
            out.append(replicas.get((p, leader)) or next((h for (q, _), h in replicas.items() if q == p and h), None))
        return out

    def handles(self, meta) -> dict:
        """``{(partition, replica): handle}`` of every replica of ``meta``; None for a replica
        whose node is gone (it is never created elsewhere: its files are there)."""
        with self._lock:
            return self._handles_of(meta)

    def _handles_of(self, meta) -> dict:
        out = {}
        alive = None
        for p in range(meta.partitions):
            state = meta.state(p)
            for r in state.replicas:
                key = (meta.topic_id, p, r)
                handle = self._handles.get(key)
                if handle is None:
                    if alive is None:
                        alive = set(_ray.alive_node_ids())
                    handle = self.create(meta, p, r, alive)
                    if handle is not None:
                        self._handles[key] = handle
                out[(p, r)] = handle
        return out

    def create(self, meta, p: int, r: int, alive: set | None = None, fresh: bool = False):
        """Create (or find, by name) the actor of replica ``r`` of partition ``p``, pinned to its node."""
        name = replica_actor_name(_ray.partition_name(self._cluster, meta.topic_id, p), r)
        node = meta.replica_nodes_of(p).get(r)
        replicated = meta.replicated(p)
        alive = set(_ray.alive_node_ids()) if alive is None else alive
        options = dict(name=name, namespace=self._namespace, lifetime="detached", get_if_exists=not fresh)
        if node is not None and node in alive:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        elif node is not None and replicated:
            return None  # its node is gone: the controller replaces it after replica.lost.timeout.ms
        initial = None if replicated else meta.state(p).to_dict()
        return PartitionActor.options(**options).remote(
            str(replica_dir(self._data_dir, meta.name, p, r)), meta.config, meta.value_schema,
            meta.name, p, meta.config_version, r, initial, self._namespace,
            meta.schema_versions if meta.value_schema is not None else None,
        )

    def retire(self, meta, p: int, r: int) -> None:
        """A replica that left its partition: its files go (if its node is there), then its actor."""
        with self._lock:
            handle = self._handles.pop((meta.topic_id, p, r), None)
        if handle is None:
            name = replica_actor_name(_ray.partition_name(self._cluster, meta.topic_id, p), r)
            handle = _ray.get_actor(name, self._namespace)
        if handle is None:
            return
        try:
            ray.get(handle.delete.remote(), timeout=10)
        except Exception:  # noqa: BLE001 - its node is gone: the files stay there, unused
            log.info("replica %d of %s-%d could not delete its files", r, meta.name, p)
        _ray.kill(handle)

    def config_targets(self, meta) -> list:
        """``(partition, handle)`` of every replica of ``meta``: a topic config change reaches them all."""
        return [(p, h) for (p, _), h in sorted(self.handles(meta).items(), key=lambda kv: kv[0])]

    def recreate(self, meta, p: int, r: int):
        """A new actor for replica ``r`` (killed for good, or new): never the dead one that may still
        hold the name for a moment (then the old handle stays, and the next check tries again)."""
        key = (meta.topic_id, p, r)
        with self._lock:
            try:
                handle = self.create(meta, p, r, fresh=True)
            except ValueError:  # the name is still the dead actor's
                return self._handles.get(key)
            if handle is not None:
                self._handles[key] = handle
            return handle

    def announce(self, meta) -> None:
        """Tell every replica of a replicated topic its partition's state (and wait for them)."""
        handles = self.handles(meta)
        refs = [h.become.remote(meta.state(p).to_dict()) for (p, _), h in handles.items()
                if h is not None and meta.replicated(p)]
        ray.get(refs)

    def forget(self, meta, keep=()) -> None:
        """Drop the cached handles of ``meta``'s replicas (a deleted topic), or every handle."""
        with self._lock:
            if meta is None:
                self._handles.clear()
            else:
                for key in [k for k in self._handles if k[0] == meta.topic_id]:
                    del self._handles[key]
