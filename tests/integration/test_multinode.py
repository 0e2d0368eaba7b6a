"""rayka on a 3-node ray.cluster_utils.Cluster, including the loss of a node: producers and
consumers (also ones created after the loss, plain and in a group) go on with the partitions
of the other nodes, and Admin describes the lost ones as unavailable.

The scenario (``_multinode_scenario.run``) runs in the child process and on the 3-node
cluster of test_replication.py's scenarios, last (``scenario_report`` in the conftest: a
multi-node Cluster cannot share a process with the session's ``ray.init``).
"""

import pytest


@pytest.mark.slow
@pytest.mark.scenario("multinode")
def test_partitions_spread_over_nodes_and_a_lost_node_fails_only_its_partitions(scenario_report):
    assert "multinode_error" not in scenario_report, scenario_report["multinode_error"] + scenario_report["_log"]
    report = scenario_report["multinode"]
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
