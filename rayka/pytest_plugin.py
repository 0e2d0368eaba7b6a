"""pytest fixtures for tests that use rayka: one local Ray per test session, a fresh rayka
cluster (in the test's ``tmp_path``) per test.

Use it from the root ``conftest.py``::

    pytest_plugins = ["rayka.pytest_plugin"]

    def test_roundtrip(rayka_cluster, rayka_admin):
        rayka_admin.create_topic("t")
        with rayka.Producer(cluster=rayka_cluster) as p:
            ...

or import the fixtures into any conftest (``from rayka.pytest_plugin import rayka_cluster, ...``).
"""

from __future__ import annotations

import pytest

from rayka.testing import embedded_cluster, start_local_ray

__all__ = ["rayka_ray_session", "rayka_cluster", "rayka_admin"]


@pytest.fixture(scope="session")
def rayka_ray_session():
    """A local Ray (2 CPUs, loopback, no dashboard) for the whole session; its GCS address."""
    import ray

    start_local_ray(num_cpus=2)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def rayka_cluster(rayka_ray_session, tmp_path):
    """A rayka cluster of its own on the session's Ray, files under ``tmp_path``, removed after."""
    with embedded_cluster(tmp_path) as cluster:
        yield cluster


@pytest.fixture
def rayka_admin(rayka_cluster):
    """``rayka.Admin`` of :func:`rayka_cluster`."""
    import rayka

    return rayka.Admin(rayka_cluster)
