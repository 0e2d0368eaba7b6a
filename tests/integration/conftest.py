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


#: The scenarios of ``_replication_scenario.py``, in the order they run; ``multinode`` (test_multinode.py)
#: last, as it removes a node for good and leaves a rayka cluster of its own connected.
SCENARIOS = ["failover", "acks1_window", "fencing", "healing", "reassign", "follower_reads", "chaos", "multinode"]


@pytest.fixture(scope="session")
def scenario_report(request, tmp_path_factory):
    """What the 3-node scenarios observed: the ones named by a ``scenario`` mark of a test of
    this session, run in one child process on one ``ray.cluster_utils.Cluster`` (a multi-node
    Cluster cannot share a process with the session's ``ray.init``; starting it, about 15 s,
    is paid once for test_replication.py and test_multinode.py)."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    wanted = {mark.args[0] for item in request.session.items for mark in item.iter_markers("scenario")}
    unknown = wanted - set(SCENARIOS)
    assert not unknown, f"no such scenario in _replication_scenario.py: {sorted(unknown)}"
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    data = tmp_path_factory.mktemp("scenarios") / "data"
    script = Path(__file__).with_name("_replication_scenario.py")
    out = subprocess.run([sys.executable, str(script), str(data), *[s for s in SCENARIOS if s in wanted]], env=env,
                         capture_output=True, text=True, timeout=900)
    lines = [line for line in out.stdout.strip().splitlines() if line.startswith("{")]
    assert out.returncode == 0 and lines, out.stdout[-3000:] + out.stderr[-5000:]
    found = json.loads(lines[-1])
    found["_log"] = out.stderr[-4000:]
    return found
