"""Clocks for the pure coordinator logic: the system clock, and a manual one for tests."""

from __future__ import annotations

import time

__all__ = ["SystemClock", "ManualClock"]


class SystemClock:
    """Wall-clock milliseconds."""

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to: ``clock.advance(ms)``. Session timeouts in tests
    are then tested by advancing time, never by sleeping."""

    def __init__(self, start_ms: int = 1_000_000):
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> int:
        self.now_ms += ms
        return self.now_ms
