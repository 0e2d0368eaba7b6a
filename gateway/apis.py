"""The ApiVersions table: for each Kafka API the gateway serves, the versions it offers.

Each API is offered from the lowest version any of librdkafka 2.16, kafka-python
3.0.12, aiokafka 0.14 or kcat sends (clients pick the highest version both sides
know) up to the highest the handlers implement. The codec (kafka-python's
``kafka.protocol``, generated from Kafka's JSON specs) reads and writes every
version, flexible ones (tagged fields, compact strings) included, so each range
ends at least at the API's first flexible version when its fields mean the same
there. What limits a range is the semantics: Produce below v3 and Fetch below v4
carry the old message sets (magic 0/1) the gateway does not speak; Metadata v10+,
Fetch v13+ and Produce v13 move to topic ids (the handlers go by topic name), Produce
v10+ to leader hints (Fetch v12 has them as optional tags: unsent); JoinGroup v7+/SyncGroup v5+ add protocol checks
and reasons; ListOffsets v7+ the max-timestamp lookup; InitProducerId v3+ epoch
bumps; OffsetFetch v8+ batched groups.
"""

from __future__ import annotations

import kafka.protocol.admin as _admin
import kafka.protocol.consumer as _consumer
import kafka.protocol.metadata as _metadata
import kafka.protocol.producer as _producer
from kafka.protocol.api_message import ApiMessage

__all__ = ["ApiKey", "VERSIONS", "request_class", "response_class", "offered"]


class ApiKey:
    """Kafka's api keys for the APIs the gateway serves."""

    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    INIT_PRODUCER_ID = 22
    DESCRIBE_CONFIGS = 32
    CREATE_PARTITIONS = 37


# api key -> (min, max) offered
VERSIONS: dict[int, tuple[int, int]] = {
    ApiKey.PRODUCE: (3, 9),
    ApiKey.FETCH: (4, 12),
    ApiKey.LIST_OFFSETS: (1, 6),
    ApiKey.METADATA: (0, 9),
    ApiKey.OFFSET_COMMIT: (2, 8),
    ApiKey.OFFSET_FETCH: (1, 7),
    ApiKey.FIND_COORDINATOR: (0, 4),
    ApiKey.JOIN_GROUP: (0, 6),
    ApiKey.HEARTBEAT: (0, 4),
    ApiKey.LEAVE_GROUP: (0, 4),
    ApiKey.SYNC_GROUP: (0, 4),
    ApiKey.DESCRIBE_GROUPS: (0, 5),
    ApiKey.LIST_GROUPS: (0, 4),
    ApiKey.API_VERSIONS: (0, 3),
    ApiKey.CREATE_TOPICS: (0, 5),
    ApiKey.DELETE_TOPICS: (0, 4),
    ApiKey.INIT_PRODUCER_ID: (0, 2),
    ApiKey.DESCRIBE_CONFIGS: (0, 4),
    ApiKey.CREATE_PARTITIONS: (0, 2),
}


def _classes() -> tuple[dict[int, type], dict[int, type]]:
    requests, responses = {}, {}
    for module in (_admin, _consumer, _metadata, _producer):
        for name in module.__all__:
            klass = getattr(module, name)
            if isinstance(klass, type) and issubclass(klass, ApiMessage) and klass._json is not None:
                (requests if klass.is_request() else responses)[klass.API_KEY] = klass
    return requests, responses


_REQUESTS, _RESPONSES = _classes()
assert all(k in _REQUESTS and k in _RESPONSES for k in VERSIONS), "the codec lacks an offered API"
assert all(VERSIONS[k][1] <= _RESPONSES[k].max_version for k in VERSIONS), "an offered version the codec lacks"


def offered(api_key: int, version: int) -> bool:
    """Whether the gateway serves ``api_key`` at ``version``."""
    span = VERSIONS.get(api_key)
    return span is not None and span[0] <= version <= span[1]


def request_class(api_key: int) -> type | None:
    """kafka-python's request class for ``api_key`` (the codec knows more APIs than are offered)."""
    return _REQUESTS.get(api_key)


def response_class(api_key: int) -> type | None:
    """kafka-python's response class for ``api_key``."""
    return _RESPONSES.get(api_key)
