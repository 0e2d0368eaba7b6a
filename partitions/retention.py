"""Retention and roll decisions, as pure functions over segment sizes and timestamps.

Kafka's rules: a segment is past ``retention.ms`` when its newest record is older
than that; while a partition is larger than ``retention.bytes``, its oldest
segments go as long as what remains still holds at least ``retention.bytes``.
Only whole, sealed segments are deleted; an active segment past retention must
roll first; the active segment rolls by age after ``segment.ms`` from its first
append.
"""

from __future__ import annotations

from ..config import TopicConfig

__all__ = ["deletable_prefix", "active_expired", "roll_due"]


def deletable_prefix(sizes: list[int], max_timestamps: list[int], now_ms: int, config: TopicConfig) -> int:
    """How many of the oldest *sealed* segments to delete (``sizes``/``max_timestamps`` cover
    every segment, the active one last, which is never counted)."""
    total = sum(sizes)
    count = 0
    for size, newest in zip(sizes[:-1], max_timestamps[:-1]):
        expired = config.retention_ms > 0 and now_ms - newest > config.retention_ms
        oversize = config.retention_bytes > 0 and total - size >= config.retention_bytes
        if not (expired or oversize):
            break
        total -= size
        count += 1
    return count


def active_expired(is_empty: bool, max_timestamp_ms: int, now_ms: int, config: TopicConfig) -> bool:
    """The active segment holds only records past retention.ms: roll it so it can go."""
    return config.retention_ms > 0 and not is_empty and now_ms - max_timestamp_ms > config.retention_ms


def roll_due(is_empty: bool, first_append_ms: int | None, now_ms: int, config: TopicConfig) -> bool:
    """The active segment is older than segment.ms."""
    return not is_empty and first_append_ms is not None and now_ms - first_append_ms >= config.segment_ms
