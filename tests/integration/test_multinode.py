"""rayka on a 3-node ray.cluster_utils.Cluster, including the loss of a node: producers and
consumers (also ones created after the loss, plain and in a group) go on with the partitions
of the other nodes, and Admin describes the lost ones as unavailable.

A multi-node Cluster cannot share a process with the session's ``ray.init``, so
the scenario runs in a child process (``_multinode_scenario.py``) and reports
its findings as JSON on its last line of output.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("_multinode_scenario.py")


@pytest.mark.slow
def test_partitions_spread_over_nodes_and_a_lost_node_fails_only_its_partitions(tmp_path):
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)
    out = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "data")], env=env,
                         capture_output=True, text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["nodes"] == 3
    assert report["distinct_leaders"] >= 2, "partitions should spread over the nodes"
    assert report["consumed"] == report["produced"] == 6000
    assert report["order_ok"]
    # Through the Kafka gateways (one per node): every node's gateway is a broker, and each
    # partition's leader is the broker of the node its actor runs on.
    assert report["kafka_brokers"] == report["gateway_brokers"] and len(report["kafka_brokers"]) == 3
    assert report["kafka_leaders"] == report["node_brokers"]
    assert report["kafka_acked"] == 600 and report["kafka_errors"] == [] and report["kafka_read_back"]
    # After the node holding partition `lost` is removed:
    assert report["lost_partition_error"] == "PartitionUnavailableError"
    assert report["survivors_ok"], "partitions on the remaining nodes must keep working"
    # Consumers created after the loss read every survivor and report the lost partitions.
    survivors = sorted(set(range(6)) - set(report["gone"]))
    for kind in ("plain", "group"):
        assert report[f"{kind}_read"] == 1101 * len(survivors), (kind, report)
        assert report[f"{kind}_partitions"] == survivors, (kind, report)
        assert report[f"{kind}_unavailable"] == report["gone"], (kind, report)
    assert report["described_unavailable"] == report["gone"] and report["described_error"]
    assert report["list_offsets_none"] == report["gone"]
