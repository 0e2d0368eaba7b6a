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
