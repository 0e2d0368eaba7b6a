"""Unit tests never start Ray (Ray Serve's habit): ray.init raises here."""

import pytest

from rayka.testing import ManualClock


@pytest.fixture(autouse=True)
def _no_ray(monkeypatch):
    try:
        import ray
    except ImportError:  # pragma: no cover
        return

    def refuse(*args, **kwargs):
        raise AssertionError("unit tests must not start Ray; put this test under tests/integration")

    monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture(autouse=True)
def _fsync_is_free(monkeypatch):
    """``os.fsync`` returns at once: what it adds, that the bytes survive a power loss, no unit
    test can see (they reopen files in the same process, through the page cache), and on this
    disk it was a quarter of the recovery tests' time. It is still called where it was: a test
    that counts the calls or makes them fail patches it on top of this one."""
    import os

    monkeypatch.setattr(os, "fsync", lambda fd: None)


@pytest.fixture
def clock():
    """A millisecond clock for PartitionLog that moves only when told (``clock.advance(ms)``)."""
    return ManualClock(1_700_000_000_000)
