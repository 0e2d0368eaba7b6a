"""The Producer's options, checked when it is created: ConfigError naming the option, before
any thread or connection exists."""

from __future__ import annotations

import math
import numbers

from rayka.errors import ConfigError

__all__ = ["PRODUCER_OPTIONS", "check_producer_options"]

PRODUCER_OPTIONS = ("acks", "linger_ms", "batch_size", "idempotent", "key_serializer", "value_serializer",
                    "buffer_memory", "max_block_ms", "delivery_timeout_ms", "retry_backoff_ms", "cluster")


def check_producer_options(*, acks, linger_ms, batch_size, idempotent, key_serializer, value_serializer,
                           buffer_memory, max_block_ms, delivery_timeout_ms, retry_backoff_ms) -> None:
    """Byte counts are whole numbers, times finite numbers of ms (not NaN, not inf), ``idempotent``
    a bool and serializers callables; anything else raises ConfigError naming the option."""
    if acks not in (0, 1, -1, "all", "1", "0"):
        raise ConfigError(f"acks must be 0, 1 or 'all', got {acks!r}")
    for name, value in (("batch_size", batch_size), ("buffer_memory", buffer_memory)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise ConfigError(f"{name} must be a whole number of bytes >= 0, got {value!r}")
    for name, value in (("linger_ms", linger_ms), ("max_block_ms", max_block_ms),
                        ("delivery_timeout_ms", delivery_timeout_ms), ("retry_backoff_ms", retry_backoff_ms)):
        if (isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value)
                or value < 0):
            raise ConfigError(f"{name} must be a finite number of milliseconds >= 0, got {value!r}")
    if not isinstance(idempotent, bool):
        raise ConfigError(f"idempotent must be True or False, got {idempotent!r}")
    for name, value in (("key_serializer", key_serializer), ("value_serializer", value_serializer)):
        if value is not None and not callable(value):
            raise ConfigError(
                f"{name} must be a callable that returns bytes (e.g. str.encode, or "
                f"lambda v: json.dumps(v).encode()), got {type(value).__name__} {value!r:.40}"
            )
