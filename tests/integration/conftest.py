"""One Ray session for all integration tests; a fresh rayka cluster per test (rayka's own
pytest fixtures, under the names these tests use)."""

import pytest

from rayka.pytest_plugin import rayka_admin, rayka_cluster, rayka_ray_session  # noqa: F401


@pytest.fixture(scope="session")
def ray_session(rayka_ray_session):
    return rayka_ray_session


@pytest.fixture
def cluster(rayka_cluster):
    return rayka_cluster


@pytest.fixture
def admin(rayka_admin):
    return rayka_admin
