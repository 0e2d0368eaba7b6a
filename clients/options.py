"""Refusing unknown keyword options with a ConfigError that names the rayka way to do it.

Users come with Kafka habits: ``Producer(bootstrap_servers=..., compression_type="lz4",
retries=5)``. Python alone would answer with a bare TypeError; like kafka-python (which
rejects unknown config keys) rayka refuses them, and says what rayka does instead
where there is an equivalent, or which option was probably meant.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from rayka.errors import ConfigError

__all__ = ["PRODUCER_EQUIVALENTS", "refuse_unknown"]

_CONNECT = (
    "rayka has no brokers to list: call rayka.connect(address=...) with a Ray address (or none, "
    "for the local one) before creating the Producer, or pass cluster=rayka.connect(address=...)"
)

PRODUCER_EQUIVALENTS = {
    "bootstrap_servers": _CONNECT,
    "bootstrap.servers": _CONNECT,
    "compression_type": (
        "rayka does not compress on the producer: records are stored as Arrow IPC segments, "
        "uncompressed (there is no compression setting, producer or topic, yet)"
    ),
    "retries": (
        "the producer retries a failed batch until delivery_timeout_ms has passed (idempotently: "
        "never a duplicate); set delivery_timeout_ms (and retry_backoff_ms)"
    ),
    "enable_idempotence": "use idempotent=True (the default) or idempotent=False",
    "request_timeout_ms": "use delivery_timeout_ms: how long a batch may be retried before its futures fail",
    "max_in_flight_requests_per_connection": (
        "rayka keeps one append in flight per partition, always, so records land in send order"
    ),
    "max_request_size": (
        "the record size limit is the topic's max.message.bytes "
        "(admin.create_topic(..., config={'max.message.bytes': ...}))"
    ),
    "partitioner": (
        "keyed records go by Kafka's murmur2 of the key, keyless ones by the sticky partitioner; "
        "pass partition= to send() to choose one"
    ),
    "client_id": "rayka producers have no client id; the producer's id is producer.producer_id",
    "security_protocol": "rayka's connections are Ray's: secure the Ray cluster (its token authentication)",
    "api_version": "rayka has no wire protocol versions to choose",
}


def refuse_unknown(owner: str, unknown: dict, known: Iterable[str], equivalents: dict[str, str]) -> None:
    """Raise ConfigError for the first of ``unknown`` (keyword -> value), if any."""
    if not unknown:
        return
    known = sorted(known)
    name = next(iter(unknown))
    advice = equivalents.get(name)
    if advice is None:
        underscored = name.replace(".", "_").replace("-", "_")
        if underscored in known:
            advice = f"use {underscored}="
        elif underscored in equivalents:
            advice = equivalents[underscored]
        else:
            close = difflib.get_close_matches(underscored, known, n=1)
            advice = f"did you mean {close[0]}=?" if close else f"the options are {', '.join(known)}"
    raise ConfigError(f"{owner} has no option {name!r}: {advice}")
