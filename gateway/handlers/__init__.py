"""The request handlers, one module per family: ``meta`` (ApiVersions, Metadata, FindCoordinator,
topic admin, DescribeConfigs), ``data`` (Produce, Fetch, ListOffsets, InitProducerId) and
``groups`` (the group protocol, committed offsets, ListGroups, DescribeGroups).

Each handler is ``async def handler(conn: Connection, request: wire.Request) -> response body
| None``: it maps the decoded request onto the connection's Backend and answers each
partition's (or group's) rayka error as its Kafka error code; a broken frame never gets here.
"""

from __future__ import annotations

from ..apis import ApiKey
from . import data, groups, meta

__all__ = ["HANDLERS"]

HANDLERS = {
    ApiKey.API_VERSIONS: meta.api_versions,
    ApiKey.METADATA: meta.metadata,
    ApiKey.FIND_COORDINATOR: meta.find_coordinator,
    ApiKey.CREATE_TOPICS: meta.create_topics,
    ApiKey.DELETE_TOPICS: meta.delete_topics,
    ApiKey.CREATE_PARTITIONS: meta.create_partitions,
    ApiKey.DESCRIBE_CONFIGS: meta.describe_configs,
    ApiKey.PRODUCE: data.produce,
    ApiKey.FETCH: data.fetch,
    ApiKey.LIST_OFFSETS: data.list_offsets,
    ApiKey.INIT_PRODUCER_ID: data.init_producer_id,
    ApiKey.JOIN_GROUP: groups.join_group,
    ApiKey.SYNC_GROUP: groups.sync_group,
    ApiKey.HEARTBEAT: groups.heartbeat,
    ApiKey.LEAVE_GROUP: groups.leave_group,
    ApiKey.OFFSET_COMMIT: groups.offset_commit,
    ApiKey.OFFSET_FETCH: groups.offset_fetch,
    ApiKey.LIST_GROUPS: groups.list_groups,
    ApiKey.DESCRIBE_GROUPS: groups.describe_groups,
}

assert set(HANDLERS) == set(ApiKey.__dict__[k] for k in vars(ApiKey) if k.isupper()), "an API without a handler"
