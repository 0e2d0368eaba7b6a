"""The coordinator's clocks: :mod:`rayka.clock` (one clock for all pure logic), re-exported here."""

from __future__ import annotations

from ..clock import Clock, ManualClock, MonotonicClock, SystemClock

__all__ = ["Clock", "SystemClock", "MonotonicClock", "ManualClock"]
