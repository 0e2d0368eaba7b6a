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


@pytest.fixture
def clock():
    """A millisecond clock for PartitionLog that moves only when told (``clock.advance(ms)``)."""
    return ManualClock(1_700_000_000_000)
