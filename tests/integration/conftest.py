"""One Ray session for all integration tests; a fresh rayka cluster per test."""

import uuid

import pytest
import ray

import rayka
from rayka.testing import start_local_ray


@pytest.fixture(scope="session")
def ray_session():
    start_local_ray(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def cluster(ray_session, tmp_path):
    c = rayka.connect(data_dir=tmp_path / "data", cluster_name=f"t-{uuid.uuid4().hex[:10]}")
    yield c
    c.shutdown(delete_data=True)


@pytest.fixture
def admin(cluster):
    return rayka.Admin(cluster)


def wait_for(predicate, timeout_s=30.0, interval_s=0.05, what="condition"):
    """Poll ``predicate`` until true or fail after ``timeout_s`` (a deadline, not a fixed sleep)."""
    import time

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def consume_all(consumer, expected, timeout_s=60.0):
    """Poll until ``expected`` records arrived (or fail at the deadline)."""
    import time

    out = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out += consumer.poll(timeout_ms=500, max_records=10_000)
    return out
