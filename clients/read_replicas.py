"""The replica each partition of a Consumer is read from, with ``client_rack`` (KIP-392).

Without ``client_rack`` a consumer reads every partition from its leader. With one, the
:class:`ReadReplicas` of the consumer points each partition's fetches (not its offset
look-ups, not its commits: those stay with the leader and the coordinator) at the replica
coordinator/read_replica.py prefers: an in-sync follower on the consumer's own node
(``"local"``) or in its zone, else the leader. The choice is made from the topic's
metadata and kept for :data:`READ_REPLICA_MAX_AGE_S`; then it is made again from
metadata at most that old (one coordinator call per topic, not per partition).

A follower that cannot serve a fetch (it left the ISR, lost its role, has not heard from
its leader lately, or the offset is outside its log; the fetch answers NotLeaderError,
or any other rayka error) is left: the partition reads from the leader until the next
choice, so a bad follower costs one failed fetch per :data:`READ_REPLICA_MAX_AGE_S`,
never a ping-pong per fetch. A follower's answer never resets a position: only the
leader judges an offset out of range.
"""

from __future__ import annotations

import logging
import time

import ray

from rayka.actors import _ray
from rayka.actors.replication import replica_actor_name
from rayka.clients.stubs import PartitionClient
from rayka.coordinator.read_replica import LOCAL, preferred_read_replica
from rayka.errors import RaykaError

__all__ = ["ReadReplicas", "READ_REPLICA_MAX_AGE_S"]

log = logging.getLogger(__name__)

#: How long a partition keeps its read replica (or, after a follower failed, the leader)
#: before it chooses again from fresh metadata (Kafka keeps its preferred read replica
#: until the next metadata refresh, metadata.max.age.ms).
READ_REPLICA_MAX_AGE_S = 30.0
#: How long a choice waits for the coordinator (a poll must not block on it).
_METADATA_TIMEOUT_S = 0.2


class ReadReplicas:
    """Chooses the read replica of a consumer's partitions for ``client_rack`` (not None).

    Works on the fetcher's PartitionState: ``read_handle`` (the follower's PartitionClient,
    None: read from ``handle``, the leader) and ``read_replica`` (the replica chosen, None
    while the leader is not known).
    """

    def __init__(self, cluster, client_rack: str, *, max_age_s: float = READ_REPLICA_MAX_AGE_S):
        self._cluster = cluster
        self.client_rack = client_rack
        self.max_age_s = max_age_s
        self._node_id: str | None = None
        self._zones: dict[str, str] = {}
        self._zones_at = -float("inf")
        self._followers: dict[str, PartitionClient] = {}  # actor name -> its client

    @property
    def node_id(self) -> str:
        """The Ray node this consumer runs on."""
        if self._node_id is None:
            self._node_id = ray.get_runtime_context().get_node_id()
        return self._node_id

    def choose(self, state, now: float | None = None) -> None:
        """Point ``state``'s fetches at the replica to read from, until ``max_age_s`` from now."""
        now = time.monotonic() if now is None else now
        state.rechoose_at = now + self.max_age_s
        tp = state.tp
        try:
            meta, leaders = self._cluster.topic(tp.topic, max_age_s=self.max_age_s, timeout_s=_METADATA_TIMEOUT_S)
            partition = meta.state(tp.partition)
            nodes = meta.replica_nodes_of(tp.partition)
        except RaykaError as exc:  # the coordinator is restarting, the topic went: keep reading as now
            log.info("%s-%d: no metadata to choose a read replica from (%s)", tp.topic, tp.partition, exc)
            return
        if tp.partition < len(leaders) and leaders[tp.partition] is not None:
            state.handle = leaders[tp.partition]  # the metadata's leader, for everything but these fetches
        chosen = preferred_read_replica(partition, nodes, self.client_rack, node_id=self.node_id,
                                        zones=self._zones_now(now) if self.client_rack != LOCAL else None)
        follower = None
        if chosen is not None and chosen != partition.leader:
            follower = self._follower(meta, tp.partition, chosen)
        if follower is None:
            chosen = partition.leader
        if chosen != state.read_replica:
            log.info("%s-%d: reading from replica %s (%s)", tp.topic, tp.partition, chosen,
                     "an in-sync follower near this consumer" if follower is not None else "the leader")
        state.read_handle, state.read_replica = follower, chosen

    def fall_back(self, state, exc: BaseException, now: float | None = None) -> None:
        """The follower could not serve ``state``'s fetch: read from the leader until the next choice."""
        now = time.monotonic() if now is None else now
        log.info("%s-%d: replica %s cannot serve reads now (%s); reading from the leader for %g s",
                 state.tp.topic, state.tp.partition, state.read_replica, (str(exc).splitlines() or [""])[0],
                 self.max_age_s)
        self._followers = {k: v for k, v in self._followers.items() if v is not state.read_handle}
        state.read_handle = None
        try:
            meta, _ = self._cluster.topic(state.tp.topic, timeout_s=_METADATA_TIMEOUT_S)
            state.read_replica = meta.state(state.tp.partition).leader
        except RaykaError:
            state.read_replica = None
        state.rechoose_at = now + self.max_age_s

    def _follower(self, meta, partition: int, replica: int) -> PartitionClient | None:
        name = replica_actor_name(_ray.partition_name(self._cluster.cluster_name, meta.topic_id, partition), replica)
        client = self._followers.get(name)
        if client is None:
            handle = _ray.get_actor(name, self._cluster.namespace)
            if handle is None:
                return None
            client = self._followers[name] = PartitionClient(handle, self._cluster.attachment)
        return client

    def _zones_now(self, now: float) -> dict[str, str]:
        if now - self._zones_at > self.max_age_s:
            self._zones, self._zones_at = _ray.node_zones(), now
        return self._zones
