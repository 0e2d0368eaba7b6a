"""One clock for the pure logic (rayka.clock): integer milliseconds, a manual one for tests."""

import time

import pytest

from rayka import clock
from rayka.coordinator import clock as coordinator_clock


def test_the_coordinator_clocks_are_the_one_clock():
    for name in ("Clock", "SystemClock", "MonotonicClock", "ManualClock"):
        assert getattr(coordinator_clock, name) is getattr(clock, name)


def test_real_clocks_give_integer_milliseconds():
    before = time.time_ns() // 1_000_000
    now = clock.SystemClock()()
    assert isinstance(now, int) and before <= now <= time.time_ns() // 1_000_000
    mono = clock.MonotonicClock()
    first = mono()
    assert isinstance(first, int) and mono() >= first


def test_a_manual_clock_moves_only_forward_and_only_when_told():
    manual = clock.ManualClock(500)
    assert manual() == manual() == 500
    assert manual.advance(250) == 750 == manual()
    with pytest.raises(ValueError, match="does not go back"):
        manual.advance(-1)
    assert manual() == 750
