"""The one clock of rayka's pure logic: a zero-argument callable giving integer milliseconds.

Storage (``partitions``) and coordination (``coordinator``) never read the time
themselves: each object that needs it is given a clock, so tests drive time with a
:class:`ManualClock` (``clock.advance(ms)``) instead of sleeping (Ray Serve's mock
timer habit). Two real clocks:

- :class:`SystemClock`, wall-clock time: record timestamps, segment ages and
  retention, group sessions (a restarted coordinator keeps comparing against them);
- :class:`MonotonicClock`, for intervals that must not jump with the wall clock
  (how long to wait before trying to open a log again).

Waits that block a thread (``Condition.wait`` with a timeout) measure real time and do
not take a clock. ``rayka.coordinator.clock`` re-exports these for older imports.
"""

from __future__ import annotations

import time
from typing import Callable

__all__ = ["Clock", "SystemClock", "MonotonicClock", "ManualClock"]

Clock = Callable[[], int]
"""Anything that returns the current time in integer milliseconds when called."""


class SystemClock:
    """Wall-clock milliseconds since the epoch."""

    def __call__(self) -> int:
        return time.time_ns() // 1_000_000


class MonotonicClock:
    """Milliseconds of a clock that never goes back (its zero means nothing: use differences)."""

    def __call__(self) -> int:
        return time.monotonic_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to: ``clock.advance(ms)``. Session timeouts and retry
    intervals in tests are then tested by advancing time, never by sleeping."""

    def __init__(self, start_ms: int = 1_000_000):
        self.now_ms = start_ms

    def __call__(self) -> int:
        return self.now_ms

    def advance(self, ms: int) -> int:
        """Move the time on by ``ms`` milliseconds; returns the new time."""
        if ms < 0:
            raise ValueError(f"a clock does not go back; advance(ms) needs ms >= 0, got {ms}")
        self.now_ms += ms
        return self.now_ms
