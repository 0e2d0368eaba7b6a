"""Cluster and topic requests: ApiVersions, Metadata, FindCoordinator, CreateTopics, DeleteTopics,
CreatePartitions, DescribeConfigs."""

from __future__ import annotations

import asyncio
import logging

from kafka.protocol.admin import (CreatePartitionsResponse, CreateTopicsResponse, DeleteTopicsResponse,
                                  DescribeConfigsResponse)
from kafka.protocol.metadata import ApiVersionsResponse, FindCoordinatorResponse, MetadataResponse

from ... import errors as E
from .. import apis
from .common import NO_OPERATIONS, Code, error_code, error_message, response

__all__ = ["api_versions", "metadata", "find_coordinator", "create_topics", "delete_topics",
           "create_partitions", "describe_configs"]

log = logging.getLogger("rayka.gateway")

_Broker = MetadataResponse.MetadataResponseBroker
_Topic = MetadataResponse.MetadataResponseTopic
_Partition = _Topic.MetadataResponsePartition
_LEADER_NOT_AVAILABLE = 5
_TOPIC_RESOURCE, _BROKER_RESOURCE = 2, 4
_COORDINATOR_GROUP = 0
# A bound on one topic's partitions asked through the gateway (each is an actor); rayka's partition
# budget may refuse fewer.
MAX_PARTITIONS = 100_000


def _api_keys():
    return [ApiVersionsResponse.ApiVersion(api_key=k, min_version=lo, max_version=hi)
            for k, (lo, hi) in sorted(apis.VERSIONS.items())]


async def api_versions(conn, request):
    """The offered versions; a request above them gets the v0-format UNSUPPORTED_VERSION body
    listing them (clients then retry at a version they share)."""
    if request.body is None:
        return ApiVersionsResponse(version=0, error_code=Code.UNSUPPORTED_VERSION, api_keys=_api_keys())
    return response(request, error_code=0, api_keys=_api_keys(), throttle_time_ms=0)


async def _topic_meta(conn, name: str, allow_create: bool):
    """``(error_code, TopicMeta | None)`` for one topic, creating it when the options allow."""
    backend = conn.backend
    try:
        meta = await backend.topic(name)
        if meta is None and allow_create and conn.options.auto_create_topics:
            try:
                await backend.create_topic(name, conn.options.default_partitions, 1, {})
            except E.TopicExistsError:
                pass  # another client created it meanwhile
            meta = await backend.topic(name)
    except E.RaykaError as exc:
        return error_code(exc, f"in Metadata for {name!r}"), None
    return (Code.UNKNOWN_TOPIC_OR_PARTITION, None) if meta is None else (0, meta)


def _topic_entry(name, code, meta):
    if meta is None:
        return _Topic(error_code=code, name=name, topic_id=b"\0" * 16, is_internal=False, partitions=[],
                      authorized_operations=NO_OPERATIONS)
    parts = [_Partition(error_code=0 if p.leader >= 0 else _LEADER_NOT_AVAILABLE, partition_index=p.partition,
                        leader_id=p.leader, leader_epoch=p.leader_epoch, replica_nodes=list(p.replicas),
                        isr_nodes=list(p.isr), offline_replicas=[])
             for p in meta.partitions]
    return _Topic(error_code=0, name=meta.name, topic_id=meta.topic_id or b"\0" * 16, is_internal=False,
                  partitions=parts, authorized_operations=NO_OPERATIONS)


async def metadata(conn, request):
    """Brokers (every node's gateway) and the asked topics with their partition leaders.

    v0: an empty topic list means all topics; v1+: null means all, [] none."""
    body = request.body
    backend = conn.backend
    if body.topics is None or (request.api_version == 0 and not body.topics):
        names = sorted(await backend.list_topics())
        allow_create = False
    else:
        names = [t.name for t in body.topics]
        allow_create = request.api_version < 4 or body.allow_auto_topic_creation
    every = body.topics is None or (request.api_version == 0 and not body.topics)
    brokers = await backend.brokers()
    found = await asyncio.gather(*(_topic_meta(conn, n, allow_create) for n in names))
    if every:  # a topic deleted since it was listed is left out, not answered as unknown
        names, found = [n for n, f in zip(names, found) if f[1] is not None], [f for f in found if f[1] is not None]
    return response(
        request, throttle_time_ms=0,
        brokers=[_Broker(node_id=b.node_id, host=b.host, port=b.port, rack=b.rack) for b in brokers],
        cluster_id=backend.cluster_id(), controller_id=backend.controller_id(),
        topics=[_topic_entry(n, code, meta) for n, (code, meta) in zip(names, found)],
        authorized_operations=NO_OPERATIONS)


async def _own_broker(conn):
    for b in await conn.backend.brokers():
        if b.node_id == conn.broker_id:
            return b
    return None


async def find_coordinator(conn, request):
    """This gateway's own broker coordinates every group (the coordinator actor behind it is one
    for the cluster); transactions are not served (COORDINATOR_NOT_AVAILABLE)."""
    body = request.body
    me = await _own_broker(conn)
    key_type = body.key_type if request.api_version >= 1 else _COORDINATOR_GROUP

    def answer(key):
        if key_type != _COORDINATOR_GROUP:
            return Code.COORDINATOR_NOT_AVAILABLE, f"key type {key_type} (transactions) is not served", None
        if me is None:
            log.error("gateway: broker %d is not among the backend's brokers", conn.broker_id)
            return Code.COORDINATOR_NOT_AVAILABLE, f"broker {conn.broker_id} is not registered", None
        return 0, None, me

    if request.api_version >= 4:
        coords = []
        for key in body.coordinator_keys:
            code, msg, b = answer(key)
            coords.append(FindCoordinatorResponse.Coordinator(
                key=key, node_id=b.node_id if b else -1, host=b.host if b else "", port=b.port if b else -1,
                error_code=code, error_message=msg))
        return response(request, throttle_time_ms=0, coordinators=coords)
    code, msg, b = answer(body.key)
    return response(request, throttle_time_ms=0, error_code=code, error_message=msg,
                    node_id=b.node_id if b else -1, host=b.host if b else "", port=b.port if b else -1)


async def create_topics(conn, request):
    """Create each topic (num_partitions -1: the gateway's default; replication_factor -1: 1)."""
    body = request.body
    Result = CreateTopicsResponse.CreatableTopicResult

    async def one(t):
        parts = conn.options.default_partitions if t.num_partitions == -1 else t.num_partitions
        rf = 1 if t.replication_factor == -1 else t.replication_factor
        try:
            if not 1 <= parts <= MAX_PARTITIONS:
                return Result(name=t.name, error_code=Code.INVALID_PARTITIONS,
                              error_message=f"num_partitions must be 1..{MAX_PARTITIONS}, got {parts}")
            if rf < 1:
                return Result(name=t.name, error_code=Code.INVALID_REPLICATION_FACTOR,
                              error_message=f"replication_factor must be >= 1, got {rf}")
            if t.assignments:
                return Result(name=t.name, error_code=Code.INVALID_REQUEST,
                              error_message="manual replica assignments are not supported")
            config = {c.name: c.value for c in t.configs}
            if body.validate_only:
                if await conn.backend.topic(t.name) is not None:
                    raise E.TopicExistsError(f"topic {t.name!r} already exists")
            else:
                await conn.backend.create_topic(t.name, parts, rf, config)
        except E.RaykaError as exc:
            return Result(name=t.name, error_code=error_code(exc, "in CreateTopics"), error_message=error_message(exc))
        # v5+ answers what was created: the partitions, the replication factor and the topic's config.
        created = dict(num_partitions=parts, replication_factor=rf)
        if request.api_version >= 5 and not body.validate_only:
            try:
                described = await conn.backend.describe_topic_config(t.name)
            except E.RaykaError:  # deleted again meanwhile: the creation itself succeeded
                described = {}
            created["configs"] = [
                Result.CreatableTopicConfigs(name=k, value=v, read_only=False, config_source=1, is_sensitive=False)
                for k, v in sorted(described.items())]
        return Result(name=t.name, error_code=0, error_message=None, **created)

    results = await asyncio.gather(*(one(t) for t in body.topics))
    return response(request, throttle_time_ms=0, topics=list(results))


async def delete_topics(conn, request):
    """Delete each named topic."""
    Result = DeleteTopicsResponse.DeletableTopicResult

    async def one(name):
        try:
            await conn.backend.delete_topic(name)
        except E.RaykaError as exc:
            return Result(name=name, error_code=error_code(exc, "in DeleteTopics"), error_message=error_message(exc))
        return Result(name=name, error_code=0)

    results = await asyncio.gather(*(one(n) for n in request.body.topic_names))
    return response(request, throttle_time_ms=0, responses=list(results))


async def create_partitions(conn, request):
    """Grow each topic to ``count`` partitions (never shrink: INVALID_PARTITIONS)."""
    body = request.body
    Result = CreatePartitionsResponse.CreatePartitionsTopicResult

    async def one(t):
        try:
            meta = await conn.backend.topic(t.name)
            if meta is None:
                raise E.UnknownTopicError(f"topic {t.name!r} does not exist")
            if t.count > MAX_PARTITIONS:
                return Result(name=t.name, error_code=Code.INVALID_PARTITIONS,
                              error_message=f"count must be at most {MAX_PARTITIONS}, got {t.count}")
            if t.count <= len(meta.partitions):
                return Result(name=t.name, error_code=Code.INVALID_PARTITIONS,
                              error_message=f"topic {t.name!r} has {len(meta.partitions)} partitions; "
                                            f"the new count {t.count} must be larger")
            if t.assignments:
                return Result(name=t.name, error_code=Code.INVALID_REQUEST,
                              error_message="manual replica assignments are not supported")
            if not body.validate_only:
                await conn.backend.create_partitions(t.name, t.count)
        except E.RaykaError as exc:
            return Result(name=t.name, error_code=error_code(exc, "in CreatePartitions"),
                          error_message=error_message(exc))
        return Result(name=t.name, error_code=0, error_message=None)

    results = await asyncio.gather(*(one(t) for t in body.topics))
    return response(request, throttle_time_ms=0, results=list(results))


async def describe_configs(conn, request):
    """A topic's config (every key the backend tells; those asked when keys are given). A broker
    resource answers no entries: the gateway has no broker configs of its own to tell."""
    Result = DescribeConfigsResponse.DescribeConfigsResult
    Entry = Result.DescribeConfigsResourceResult

    async def one(res):
        if res.resource_type == _BROKER_RESOURCE:
            return Result(error_code=0, error_message=None, resource_type=res.resource_type,
                          resource_name=res.resource_name, configs=[])
        if res.resource_type != _TOPIC_RESOURCE:
            return Result(error_code=Code.INVALID_REQUEST, error_message=f"resource type {res.resource_type} "
                          "is not served", resource_type=res.resource_type, resource_name=res.resource_name,
                          configs=[])
        try:
            config = await conn.backend.describe_topic_config(res.resource_name)
        except E.RaykaError as exc:
            return Result(error_code=error_code(exc, "in DescribeConfigs"), error_message=error_message(exc),
                          resource_type=res.resource_type, resource_name=res.resource_name, configs=[])
        keys = res.configuration_keys
        entries = [Entry(name=k, value=None if v is None else str(v), read_only=False, is_default=False,
                         config_source=1, is_sensitive=False, synonyms=[])  # 1: DYNAMIC_TOPIC_CONFIG
                   for k, v in sorted(config.items()) if keys is None or k in keys]
        return Result(error_code=0, error_message=None, resource_type=res.resource_type,
                      resource_name=res.resource_name, configs=entries)

    results = await asyncio.gather(*(one(r) for r in request.body.resources))
    return response(request, throttle_time_ms=0, results=list(results))
