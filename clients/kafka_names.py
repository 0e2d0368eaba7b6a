"""Kafka client settings that rayka clients do not take, and what to use instead.

A Kafka user's first Consumer often carries ``bootstrap_servers=...`` or
``fetch_min_bytes=...``. Instead of a TypeError from an internal class, the client
refuses the keyword with a ConfigError naming the rayka equivalent (or saying
there is none, and why), or the closest known keyword for a typo.
"""

from __future__ import annotations

import difflib

from rayka.errors import ConfigError

__all__ = ["KAFKA_EQUIVALENTS", "unknown_option_error"]

_TRANSPORT = "Ray carries every call (no sockets or brokers to tune); remove it"
_SECURITY = ("rayka has no listeners of its own: the Ray cluster's security applies (Ray's token "
             "authentication); remove it")

# Kafka (kafka-python) setting -> what to do in rayka.
KAFKA_EQUIVALENTS: dict[str, str] = {
    "bootstrap_servers": "rayka has no brokers to list: connect with rayka.connect(address=...) (a Ray "
                         "address, or none for the embedded default) and pass cluster=... or nothing",
    "client_id": "rayka does not name clients; remove it",
    "fetch_min_bytes": "a fetch answers as soon as any record is there; fetch_max_wait_ms bounds the wait",
    "fetch_max_bytes": "use max_partition_fetch_bytes (the bound of one partition's fetch)",
    "request_timeout_ms": "calls go through Ray; commits are bounded by default_api_timeout_ms",
    "retry_backoff_ms": "the consumer retries unavailable partitions by itself, with a backoff",
    "reconnect_backoff_ms": _TRANSPORT,
    "reconnect_backoff_max_ms": _TRANSPORT,
    "max_in_flight_requests_per_connection": _TRANSPORT,
    "receive_buffer_bytes": _TRANSPORT,
    "send_buffer_bytes": _TRANSPORT,
    "socket_options": _TRANSPORT,
    "connections_max_idle_ms": _TRANSPORT,
    "api_version": "rayka speaks to its partitions directly; remove it",
    "api_version_auto_timeout_ms": "rayka speaks to its partitions directly; remove it",
    "check_crcs": "every batch's CRC is always checked before it is served; remove it",
    "metadata_max_age_ms": "topic metadata is refreshed when it changes; remove it",
    "isolation_level": "rayka has no transactions: every acknowledged record is readable; remove it",
    "allow_auto_create_topics": "topics are created with rayka.Admin().create_topic(...)",
    "exclude_internal_topics": "rayka has no internal topics; remove it",
    "default_offset_commit_callback": "pass callback= to commit_async()",
    "auto_commit_enable": "use enable_auto_commit",
    "enable_auto_offset_store": "use enable_auto_commit",
    "client_rack": "rayka has one replica per partition; remove it",
    "group_protocol": "use partition_assignment_strategy",
    "topics": "pass the topics positionally: Consumer('a', 'b'), or subscribe([...])",
    "pattern": "call subscribe(pattern=...) on a Consumer with a group_id",
    "metric_reporters": "read Consumer.metrics(); remove it",
    "metrics_num_samples": "read Consumer.metrics(); remove it",
    "metrics_sample_window_ms": "read Consumer.metrics(); remove it",
    "compression_type": "compression is a topic setting: config={'compression.type': ...} in create_topic",
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


def unknown_option_error(kind: str, name: str, known) -> ConfigError:
    """The ConfigError for keyword ``name`` that ``kind`` (say "Consumer") does not take."""
    hint = KAFKA_EQUIVALENTS.get(name)
    if hint is None and name.startswith(("ssl_", "sasl_")):
        hint = _SECURITY
    if hint is not None:
        return ConfigError(f"{kind} does not take {name!r} (a Kafka setting): {hint}")
    close = difflib.get_close_matches(name, list(known), n=1)
    did_you_mean = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(f"{kind} got an unknown keyword {name!r}{did_you_mean}; it takes: {', '.join(sorted(known))}")
