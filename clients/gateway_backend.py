"""RayBackend: the gateway's :class:`~rayka.gateway.backend.Backend` over rayka's client stubs.

The Kafka protocol core (gateway/, pure) calls it; it calls the coordinator and the
partition actors through :mod:`rayka.clients.stubs` only. It runs on the gateway's
asyncio loop, so nothing here blocks that loop: partition calls are awaited
(:func:`~rayka.clients.stubs.settle`), coordinator calls (which wait and retry while
the coordinator restarts) run on the loop's worker threads.

Broker ids. A Kafka broker id is an int32; a gateway's is :func:`broker_id` of the Ray
node it runs on: the first 31 bits of the node's id. Ray node ids are random and fixed
for the node's life, so every process derives the same id for a node without asking
anybody (no registry to keep consistent), and a node that restarts (a new node id) is
a new broker, as its actors are new too. Two nodes colliding needs two 28-byte random
ids sharing 31 bits (about n^2/2^32 for n nodes); :meth:`RayBackend.brokers` logs it.

Leaders. A partition's leader is advertised as the broker of the node its leader
replica's actor runs on: the node the metadata records when that node is alive (its
actor is pinned there), else the node the actor reports (``stats()``: an unreplicated
partition whose node was lost is created anywhere). A node without a gateway (or one
not known) is advertised as this gateway: any gateway can serve any partition, it
only costs a hop.

Topic metadata is cached for :data:`METADATA_TTL_S` and dropped on NotLeader,
unavailable or unknown-topic errors, so the next request reads it again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa

from rayka.clients.accumulator import to_ipc
from rayka.clients.stubs import CoordinatorClient, GatewayClient, PartitionClient, gather, settle
from rayka.errors import (ConfigError, NotLeaderError, PartitionUnavailableError, RebalanceInProgressError,
                          UnknownTopicError)
from rayka.gateway.backend import (Broker, GroupDescription, GroupJoin, GroupMember, GroupSync, PartitionMeta,
                                   TopicMeta)
from rayka.messages import AppendResult, FetchResponse, HeartbeatStatus, LogBounds, TimeLookup

__all__ = ["RayBackend", "broker_id", "METADATA_TTL_S", "BROKERS_TTL_S"]

log = logging.getLogger(__name__)

#: Seconds a topic's metadata (partitions, leaders' brokers) is served from the cache.
METADATA_TTL_S = 5.0
#: Seconds the list of gateways (brokers) and alive nodes is served from the cache.
BROKERS_TTL_S = 2.0
#: Threads for coordinator calls (each blocks while the coordinator restarts).
COORDINATOR_THREADS = 16
#: Records per fetch call: the partition bounds a read by bytes; this only caps a huge one.
FETCH_MAX_RECORDS = 1_000_000
#: How long a partition's actor gets to tell its node when the metadata's node is gone.
_WHERE_TIMEOUT_S = 2.0


def broker_id(node_id: str) -> int:
    """The Kafka broker id (a non-negative int32) of the gateway on Ray node ``node_id`` (hex)."""
    if not isinstance(node_id, str) or len(node_id) < 8:
        raise ConfigError(f"a Ray node id is a hex string, got {node_id!r}")
    return int(node_id[:8], 16) & 0x7FFFFFFF


def _config_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_kafka_config(config: dict) -> dict:
    """Kafka clients send every config value as a string; rayka's TopicConfig wants ints."""
    out = {}
    for key, value in (config or {}).items():
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                pass
        out[key] = value
    return out


class _Entry:
    __slots__ = ("meta", "clients", "topic", "fetched")

    def __init__(self, meta, clients, topic, fetched):
        self.meta, self.clients, self.topic, self.fetched = meta, clients, topic, fetched


class RayBackend:
    """The Backend of a gateway: ``coordinator`` of rayka cluster ``cluster_name`` (Ray namespace
    ``namespace``); ``node_id`` the Ray node this gateway runs on, ``host``/``port`` what it
    advertises (:meth:`set_address` once it is bound)."""

    def __init__(self, coordinator: CoordinatorClient, *, cluster_name: str, namespace: str, node_id: str,
                 host: str = "127.0.0.1", port: int = 0):
        self._coordinator = coordinator
        self._cluster, self._namespace = cluster_name, namespace
        self._node_id = node_id
        self.broker_id = broker_id(node_id)
        self._self = Broker(self.broker_id, host, port)
        self._topics: dict[str, _Entry] = {}
        self._lookups: dict[str, asyncio.Future] = {}
        self._threads = ThreadPoolExecutor(max_workers=COORDINATOR_THREADS, thread_name_prefix="rayka-gateway")
        self._brokers: tuple[float, list[Broker], set] | None = None

    @classmethod
    def from_cluster(cls, cluster, *, node_id: str | None = None, host: str = "127.0.0.1",
                     port: int = 0) -> "RayBackend":
        """A backend over a :class:`rayka.Cluster` (``rayka.connect()``), on this process's node."""
        import ray

        node_id = node_id or ray.get_runtime_context().get_node_id()
        return cls(cluster.coordinator, cluster_name=cluster.cluster_name, namespace=cluster.namespace,
                   node_id=node_id, host=host, port=port)

    def set_address(self, host: str, port: int) -> None:
        """What this gateway advertises, once its socket is bound."""
        self._self = Broker(self.broker_id, host, port)
        self._brokers = None

    async def _co(self, method, *args):
        """A coordinator call off the loop (it blocks while it waits and retries), on this
        backend's own threads: held JoinGroup/SyncGroup polls and a restarting coordinator do
        not take the threads that metadata lookups on the produce/fetch path need."""
        return await asyncio.get_running_loop().run_in_executor(self._threads, functools.partial(method, *args))

    # -- cluster and topics

    async def _cluster_view(self) -> tuple[list[Broker], set]:
        """(every gateway as a Broker, alive node ids), cached for BROKERS_TTL_S."""
        cached = self._brokers
        if cached is not None and time.monotonic() - cached[0] < BROKERS_TTL_S:
            return cached[1], cached[2]
        from rayka.actors import _ray

        def look():
            names = _ray.named_actors(_ray.gateway_prefix(self._cluster), self._namespace)
            handles = [_ray.get_actor(n, self._namespace) for n in names]
            return [GatewayClient(h) for h in handles if h is not None], set(_ray.alive_node_ids())

        gateways, alive = await asyncio.to_thread(look)
        answers = await asyncio.to_thread(gather, [g.address() for g in gateways], _WHERE_TIMEOUT_S)
        found = {self.broker_id: self._self}
        for answer in answers:
            if isinstance(answer, BaseException):
                continue  # a gateway restarting or stopping: not advertised until it answers
            bid, host, port = answer
            if bid in found and (found[bid].host, found[bid].port) != (host, port) and bid != self.broker_id:
                log.error("two gateways share broker id %d (%s:%d and %s:%d)", bid, found[bid].host,
                          found[bid].port, host, port)
            if bid != self.broker_id:
                found[bid] = Broker(bid, host, port)
        brokers = sorted(found.values(), key=lambda b: b.node_id)
        self._brokers = (time.monotonic(), brokers, alive)
        return brokers, alive

    async def brokers(self) -> list[Broker]:
        return list((await self._cluster_view())[0])

    def controller_id(self) -> int:
        # Every gateway serves the admin requests (they go to the coordinator): this one will do.
        return self.broker_id

    def cluster_id(self) -> str:
        return f"rayka-{self._cluster}"

    async def list_topics(self) -> list[str]:
        return list(await self._co(self._coordinator.list_topics))

    def _forget(self, name: str) -> None:
        self._topics.pop(name, None)

    async def _entry(self, name: str, *, refresh: bool = False) -> _Entry:
        entry = self._topics.get(name)
        if entry is not None and not refresh and time.monotonic() - entry.fetched < METADATA_TTL_S:
            return entry
        # One lookup per topic at a time: the requests that find the entry expired together share it.
        lookup = self._lookups.get(name)
        if lookup is None:
            lookup = self._lookups[name] = asyncio.ensure_future(self._look_up(name))
            lookup.add_done_callback(lambda _, name=name: self._lookups.pop(name, None))
        return await asyncio.shield(lookup)

    async def _look_up(self, name: str) -> _Entry:
        try:
            meta, clients = await self._co(self._coordinator.topic, name)
        except UnknownTopicError:
            self._forget(name)
            raise
        topic = await self._topic_meta(meta, clients)
        entry = _Entry(meta, clients, topic, time.monotonic())
        self._topics[name] = entry
        return entry

    async def _topic_meta(self, meta, clients: list[PartitionClient]) -> TopicMeta:
        brokers, alive = await self._cluster_view()
        known = {b.node_id for b in brokers}
        nodes = [meta.leader_node(p) for p in range(meta.partitions)]
        unsure = [p for p, node in enumerate(nodes) if (node is None or node not in alive) and clients[p] is not None]
        if unsure:  # ask those actors where they run (their metadata's node is gone)
            answers = await asyncio.to_thread(gather, [clients[p].stats() for p in unsure], _WHERE_TIMEOUT_S)
            for p, answer in zip(unsure, answers):
                nodes[p] = None if isinstance(answer, BaseException) else answer.node_id

        def on(node) -> int:
            bid = broker_id(node) if node else -1
            return bid if bid in known else self.broker_id

        parts = []
        for p in range(meta.partitions):
            state = meta.state(p)
            where = meta.replica_nodes_of(p)
            leader = on(nodes[p]) if clients[p] is not None and state.leader is not None else -1
            replicas = tuple(dict.fromkeys(on(where.get(r)) if r != state.leader else leader
                                           for r in state.replicas))
            isr = tuple(dict.fromkeys(on(where.get(r)) if r != state.leader else leader for r in state.isr))
            parts.append(PartitionMeta(p, leader, state.leader_epoch, replicas, isr))
        try:
            topic_id = bytes.fromhex(meta.topic_id)[:16].ljust(16, b"\0")
        except ValueError:
            topic_id = bytes(16)
        config = {k: _config_value(v) for k, v in meta.config.items()}
        return TopicMeta(meta.name, topic_id, tuple(parts), typed=meta.value_schema_b64 is not None, config=config)

    async def topic(self, name: str) -> TopicMeta | None:
        try:
            return (await self._entry(name)).topic
        except UnknownTopicError:
            return None

    async def create_topic(self, name: str, partitions: int, replication_factor: int, config: dict) -> None:
        await self._co(self._coordinator.create_topic, name, partitions, replication_factor,
                       _from_kafka_config(config), None)
        self._forget(name)

    async def delete_topic(self, name: str) -> None:
        self._forget(name)
        await self._co(self._coordinator.delete_topic, name)
        self._forget(name)

    async def create_partitions(self, name: str, total: int) -> None:
        await self._co(self._coordinator.add_partitions, name, total)
        self._forget(name)

    async def describe_topic_config(self, name: str) -> dict[str, str]:
        info = await self._co(self._coordinator.describe_topic_config, name)
        return {k: _config_value(v) for k, v in info.as_dict().items()}

    # -- records

    async def _partition(self, topic: str, partition: int) -> PartitionClient:
        entry = await self._entry(topic)
        client = entry.clients[entry.meta.check_partition(partition)]
        if client is None:
            self._forget(topic)
            raise PartitionUnavailableError(f"partition {topic}-{partition} has no replica that can lead now "
                                            "(its node is gone); try again later")
        return client

    async def _settle(self, topic: str, pending):
        try:
            return await settle(pending)
        except (NotLeaderError, PartitionUnavailableError, UnknownTopicError):
            self._forget(topic)  # it moved, restarts or was deleted: read the metadata again next time
            raise

    async def append(self, topic: str, partition: int, batch: pa.RecordBatch, producer_id: str | None,
                     sequence: int, acks: int, leader_epoch: int = -1) -> AppendResult:
        client = await self._partition(topic, partition)
        # One call per partition per request: the whole batch as one IPC stream buffer.
        return await self._settle(topic, client.append(to_ipc(batch), producer_id, sequence,
                                                       -1 if acks == -1 else 1, leader_epoch))

    async def fetch(self, topic: str, partition: int, offset: int, max_bytes: int,
                    max_wait_ms: int, leader_epoch: int = -1) -> FetchResponse:
        client = await self._partition(topic, partition)
        return await self._settle(topic, client.fetch(offset, FETCH_MAX_RECORDS, max_bytes, max(0, max_wait_ms),
                                                      True, leader_epoch=leader_epoch))

    async def offsets(self, topic: str, partition: int) -> LogBounds:
        client = await self._partition(topic, partition)
        return await self._settle(topic, client.offsets())

    async def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> TimeLookup | None:
        client = await self._partition(topic, partition)
        return await self._settle(topic, client.offset_for_time(timestamp_ms))

    async def init_producer_id(self) -> tuple[int, int]:
        return tuple(await self._co(self._coordinator.init_producer_id))

    # -- groups (Kafka's client-assigned protocol in the coordinator; each call answers at once,
    # the protocol core polls a pending join or sync)

    async def join_group(self, group_id: str, member_id: str | None, instance_id: str | None,
                         protocol_type: str, protocols: list[tuple[str, bytes]], session_timeout_ms: int,
                         rebalance_timeout_ms: int, client_id: str, client_host: str) -> GroupJoin:
        got = await self._co(self._coordinator.kafka_join_group, group_id, member_id or None, instance_id,
                             protocol_type, [(n, bytes(m)) for n, m in protocols], session_timeout_ms,
                             rebalance_timeout_ms, client_id, client_host)
        return GroupJoin(not got.ok, got.member_id, got.generation, got.protocol_name, got.leader, got.members)

    async def sync_group(self, group_id: str, member_id: str, generation: int, instance_id: str | None,
                         assignments: dict[str, bytes],
                         assigned: dict[str, list[tuple[str, int]]] | None = None) -> GroupSync:
        got = await self._co(self._coordinator.kafka_sync_group, group_id, member_id, generation, instance_id,
                             {m: bytes(a) for m, a in assignments.items()}, assigned)
        return GroupSync(not got.ok, got.assignment, got.protocol_name)

    async def heartbeat(self, group_id: str, member_id: str, generation: int, instance_id: str | None) -> None:
        status = await self._co(self._coordinator.kafka_heartbeat, group_id, member_id, generation, instance_id)
        if status == HeartbeatStatus.REBALANCE:
            raise RebalanceInProgressError(f"group {group_id!r} is rebalancing: join it again")

    async def leave_group(self, group_id: str, member_id: str | None, instance_id: str | None) -> None:
        await self._co(self._coordinator.kafka_leave_group, group_id, member_id or None, instance_id)

    async def commit_offsets(self, group_id: str, member_id: str | None, generation: int,
                             offsets: list[tuple[str, int, int, str | None]],
                             instance_id: str | None = None) -> None:
        rows = [(t, p, o, m) for t, p, o, m in offsets]
        await self._co(self._coordinator.kafka_commit_offsets, group_id, member_id or None, generation,
                       instance_id, rows)

    async def fetch_offsets(self, group_id: str, tps: list[tuple[str, int]] | None
                            ) -> dict[tuple[str, int], tuple[int, str | None]]:
        if tps is None:  # every partition the group committed
            rows = await self._co(self._coordinator.fetch_all_offsets, group_id)
            return {tuple(tp): (offset, metadata or None) for tp, offset, metadata in rows}
        tps = [tuple(tp) for tp in tps]
        got = await self._co(self._coordinator.fetch_offsets, group_id, tps, True)
        return {tp: (c[0], c[1] or None) for tp, c in zip(tps, got) if c is not None}

    async def list_groups(self) -> list[tuple[str, str, str]]:
        """``(group_id, protocol_type, state)``; rayka's own groups are listed as "consumer" groups."""
        listed = await self._co(self._coordinator.list_groups)
        return [(g.group_id, g.protocol_type or "consumer", g.state) for g in listed]

    async def describe_group(self, group_id: str) -> GroupDescription:
        info = await self._co(self._coordinator.describe_group, group_id)
        members = tuple(GroupMember(m.member_id, m.instance_id, m.client_id, m.client_host, m.metadata,
                                    m.assignment_bytes) for m in info.members)
        return GroupDescription(info.group_id, info.state, info.protocol_type or "consumer", info.protocol or "",
                                members)
