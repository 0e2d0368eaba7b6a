"""Kafka client settings that rayka clients do not take, and what to use instead: one table
for Producer, Consumer and Admin.

A Kafka user's first client often carries ``bootstrap_servers=...``, ``retries=5`` or
``fetch_min_bytes=...``. Instead of a TypeError from an internal class, the client refuses
the keyword with a ConfigError naming the rayka equivalent (or saying there is none, and
why), the option meant when it was spelled the Java way (``linger.ms``), or the closest
known keyword for a typo. (``rayka.connect()``'s keywords are checked in connection.py.)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from rayka.errors import ConfigError

__all__ = ["KAFKA_EQUIVALENTS", "unknown_option_error", "refuse_unknown"]

_TRANSPORT = "Ray carries every call (no sockets or brokers to tune); remove it"
_SECURITY = ("rayka has no listeners of its own: the Ray cluster's security applies (Ray's token "
             "authentication); remove it")
_CONNECT = ("rayka has no brokers to list: connect with rayka.connect(address=...) (a Ray address, or "
            "none for the embedded default) and pass cluster=... or nothing")

# Kafka (kafka-python) setting -> what to do in rayka, for every client ...
KAFKA_EQUIVALENTS: dict[str, str] = {
    "bootstrap_servers": _CONNECT,
    "client_id": "rayka does not name clients; remove it",
    "compression_type": ("compression is a topic config in rayka, not a producer option: set compression.type "
                         "(none, lz4 or zstd: Arrow IPC buffer compression) at create_topic or with "
                         "alter_topic_config, and the producer compresses what it ships with the topic's codec; "
                         "remove it"),
    "request_timeout_ms": "calls go through Ray; remove it",
    "reconnect_backoff_ms": _TRANSPORT,
    "reconnect_backoff_max_ms": _TRANSPORT,
    "max_in_flight_requests_per_connection": _TRANSPORT,
    "receive_buffer_bytes": _TRANSPORT,
    "send_buffer_bytes": _TRANSPORT,
    "socket_options": _TRANSPORT,
    "connections_max_idle_ms": _TRANSPORT,
    "api_version": "rayka speaks to its partitions directly; remove it",
    "api_version_auto_timeout_ms": "rayka speaks to its partitions directly; remove it",
    "metadata_max_age_ms": "topic metadata is refreshed when it changes; remove it",
    "metric_reporters": "read the client's metrics(); remove it",
    "metrics_num_samples": "read the client's metrics(); remove it",
    "metrics_sample_window_ms": "read the client's metrics(); remove it",
    "security_protocol": _SECURITY,
    "sasl_mechanism": _SECURITY,
    "sasl_plain_username": _SECURITY,
    "sasl_plain_password": _SECURITY,
    "sasl_kerberos_service_name": _SECURITY,
    "sasl_oauth_token_provider": _SECURITY,
    "ssl_context": _SECURITY,
    "ssl_check_hostname": _SECURITY,
    "ssl_cafile": _SECURITY,
    "ssl_certfile": _SECURITY,
    "ssl_keyfile": _SECURITY,
    "ssl_password": _SECURITY,
    "ssl_crlfile": _SECURITY,
    "ssl_ciphers": _SECURITY,
}

# ... and where one client's answer differs.
_BY_CLIENT: dict[str, dict[str, str]] = {
    "Producer": {
        "bootstrap_servers": ("rayka has no brokers to list: call rayka.connect(address=...) with a Ray "
                              "address (or none, for the local one) before creating the Producer, or pass "
                              "cluster=rayka.connect(address=...)"),
        "retries": ("the producer retries a failed batch until delivery_timeout_ms has passed (idempotently: "
                    "never a duplicate); set delivery_timeout_ms (and retry_backoff_ms)"),
        "enable_idempotence": "use idempotent=True (the default) or idempotent=False",
        "request_timeout_ms": "use delivery_timeout_ms: how long a batch may be retried before its futures fail",
        "max_in_flight_requests_per_connection": (
            "rayka keeps one append in flight per partition, always, so records land in send order"),
        "max_request_size": ("the record size limit is the topic's max.message.bytes "
                             "(admin.create_topic(..., config={'max.message.bytes': ...}))"),
        "partitioner": ("keyed records go by Kafka's murmur2 of the key, keyless ones by the sticky "
                        "partitioner; pass partition= to send() to choose one"),
        "client_id": "rayka producers have no client id; the producer's id is producer.producer_id",
        "transactional_id": "rayka has no transactions; idempotence (the default) keeps retries exactly once",
        "client_rack": "producers always write to the leader; client_rack is a Consumer option; remove it",
    },
    "Consumer": {
        "fetch_min_bytes": "a fetch answers as soon as any record is there; fetch_max_wait_ms bounds the wait",
        "fetch_max_bytes": "use max_partition_fetch_bytes (the bound of one partition's fetch)",
        "request_timeout_ms": "calls go through Ray; commits are bounded by default_api_timeout_ms",
        "retry_backoff_ms": "the consumer retries unavailable partitions by itself, with a backoff",
        "check_crcs": "every batch's CRC is always checked before it is served; remove it",
        "isolation_level": "rayka has no transactions: every acknowledged record is readable; remove it",
        "allow_auto_create_topics": "topics are created with rayka.Admin().create_topic(...)",
        "exclude_internal_topics": "rayka has no internal topics; remove it",
        "default_offset_commit_callback": "pass callback= to commit_async()",
        "auto_commit_enable": "use enable_auto_commit",
        "enable_auto_offset_store": "use enable_auto_commit",
        "group_protocol": "use partition_assignment_strategy",
        "topics": "pass the topics positionally: Consumer('a', 'b'), or subscribe([...])",
        "pattern": "call subscribe(pattern=...) on a Consumer with a group_id",
    },
    "Admin": {
        "bootstrap_servers": ("rayka has no brokers to list: call rayka.connect(address=...) (a Ray address, or "
                              "none for the embedded default) and pass its result: Admin(rayka.connect(...)), "
                              "or Admin() for the current connection"),
        "request_timeout_ms": "calls go through Ray; describe_topic(name, timeout_s=...) bounds a description",
        "client_id": "rayka does not name clients; remove it",
        "client_rack": "client_rack is a Consumer option (reads from a nearby replica); remove it",
    },
}


def unknown_option_error(kind: str, name: str, known: Iterable[str]) -> ConfigError:
    """The ConfigError for keyword ``name`` that ``kind`` ("Producer", "Consumer", "Admin") does not take."""
    known = sorted(known)
    underscored = name.replace(".", "_").replace("-", "_")  # Kafka's Java spelling: linger.ms
    table = {**KAFKA_EQUIVALENTS, **_BY_CLIENT.get(kind, {})}
    hint = table.get(name) or (table.get(underscored) if underscored != name else None)
    if hint is None and underscored.startswith(("ssl_", "sasl_")):
        hint = _SECURITY
    if hint is not None:
        return ConfigError(f"{kind} does not take {name!r} (a Kafka setting): {hint}")
    if underscored != name and underscored in known:
        return ConfigError(f"{kind} does not take {name!r}: use {underscored}=")
    close = difflib.get_close_matches(underscored, known, n=1)
    did_you_mean = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{kind} got an unknown keyword {name!r}{did_you_mean}; the options are {', '.join(known)}")


def refuse_unknown(kind: str, unknown: dict, known: Iterable[str]) -> None:
    """Raise :func:`unknown_option_error` for the first of ``unknown`` (keyword -> value), if any."""
    if unknown:
        raise unknown_option_error(kind, sorted(unknown)[0], known)
