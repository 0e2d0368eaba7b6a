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


@pytest.fixture(scope="session")
def spark():
    """One local PySpark session (one JVM) shared by every test that needs Spark, on loopback."""
    import os
    import sys

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (SparkSession.builder.master("local[2]").appName("rayka-tests")
               .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
               .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
               .config("spark.sql.session.timeZone", "UTC")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
