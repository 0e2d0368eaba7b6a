"""Helpers shared by the integration tests (bounded polls, never bare sleeps)."""

import time


def wait_for(predicate, timeout_s=30.0, interval_s=0.05, what="condition"):
    """Poll ``predicate`` until true or fail after ``timeout_s`` (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def consume_all(consumer, expected, timeout_s=60.0):
    """Poll until ``expected`` records arrived (or fail at the deadline)."""
    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out += consumer.poll(timeout_ms=500, max_records=10_000)
    return out
