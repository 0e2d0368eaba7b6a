"""The Consumer's options, checked when it is created: ConfigError naming the option, before it
connects (a bad value must not start a runtime first, nor fail later inside a poll)."""

from __future__ import annotations

import math
import numbers

from rayka.errors import ConfigError

__all__ = ["check_consumer_options"]


def _whole(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ConfigError(f"{name} must be a whole number >= {minimum}, got {value!r}")


def _millis(name: str, value, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number of milliseconds >= 0"
                          + (" (or None)" if optional else "") + f", got {value!r}")


def check_consumer_options(*, enable_auto_commit, auto_commit_interval_ms, key_deserializer,
                           value_deserializer, fetch_max_wait_ms, max_poll_records,
                           max_partition_fetch_records, max_partition_fetch_bytes,
                           consumer_timeout_ms) -> None:
    """Counts are whole numbers >= 1, times finite ms >= 0, flags bools, deserializers callables."""
    if not isinstance(enable_auto_commit, bool):
        raise ConfigError(f"enable_auto_commit must be True or False, got {enable_auto_commit!r}")
    _millis("auto_commit_interval_ms", auto_commit_interval_ms)
    _millis("fetch_max_wait_ms", fetch_max_wait_ms)
    _millis("consumer_timeout_ms", consumer_timeout_ms, optional=True)
    _whole("max_poll_records", max_poll_records, 1)
    _whole("max_partition_fetch_records", max_partition_fetch_records, 1)
    _whole("max_partition_fetch_bytes", max_partition_fetch_bytes, 1)
    for name, value in (("key_deserializer", key_deserializer), ("value_deserializer", value_deserializer)):
        if value is not None and not callable(value):
            raise ConfigError(f"{name} must be a callable taking bytes (e.g. bytes.decode, or json.loads), "
                              f"got {type(value).__name__} {value!r:.40}")
