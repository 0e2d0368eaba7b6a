"""rayka.testing's helpers without Ray: bounded waits, consume_all, the manual clock."""

import itertools
import subprocess
import sys

import pytest

from rayka.coordinator import clock
from rayka.testing import ManualClock, consume_all, wait_for


def test_wait_for_returns_the_first_true_value():
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "ready", 5, interval_s=0) == "ready"


def test_wait_for_fails_naming_what_it_waited_for():
    with pytest.raises(AssertionError, match="timed out after 0.05s waiting for the moon"):
        wait_for(lambda: False, 0.05, 0.01, "the moon")


class _Consumer:
    def __init__(self, batches):
        self.batches, self.calls = list(batches), []

    def poll(self, timeout_ms, max_records):
        self.calls.append((timeout_ms, max_records))
        return self.batches.pop(0) if self.batches else []


def test_consume_all_polls_until_it_has_n_records():
    c = _Consumer([[1, 2], [], [3, 4, 5], [6]])
    assert consume_all(c, 4, timeout_s=5) == [1, 2, 3, 4, 5]
    assert len(c.calls) == 3 and c.calls[0] == (500, 10_000)


def test_consume_all_returns_what_it_got_at_the_deadline():
    assert consume_all(_Consumer([[1]]), 3, timeout_s=0.01) == [1]


def test_manual_clock_is_the_coordinators():
    assert ManualClock is clock.ManualClock
    c = ManualClock(start_ms=10)
    assert (c(), c.advance(5), c()) == (10, 15, 15)


def test_the_kit_and_its_pytest_plugin_load_no_ray():
    probe = ("import rayka.testing, rayka.pytest_plugin, sys; "
             "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", probe], check=True)
