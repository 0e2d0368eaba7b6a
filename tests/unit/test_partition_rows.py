"""describe_partitions: the rows describe_topic shows, from the stored metadata."""

import json

from rayka.coordinator.election import PartitionState
from rayka.coordinator.metadata import ClusterMetadata, MetadataStore
from rayka.coordinator.partition_rows import PartitionRow, describe_partitions


def test_rows_show_leader_isr_epochs_and_health():
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("t", 3, replication_factor=2, replica_nodes=[["a", "b"], ["b", "a"], ["a", "b"]])
    meta.set_partition_state("t", 1, PartitionState((0, 1), 0, 0, (0,), 1))
    meta.set_partition_state("t", 2, PartitionState((0, 1), None, 1, (0,), 1))
    rows = describe_partitions(meta.get("t"))
    assert rows[0] == PartitionRow("t", 0, 0, "a", (0, 1), (0, 1), 0, 0, False, False, ((0, "a"), (1, "b")))
    assert rows[1].under_replicated and not rows[1].offline and rows[1].leader_node == "b"
    assert rows[2].offline and rows[2].leader is None and rows[2].leader_node is None
    data = json.loads(json.dumps(rows[2].to_dict()))
    assert data["replicas"] == [0, 1] and data["replica_nodes"] == {"0": "a", "1": "b"} and data["offline"]


def test_a_single_replica_topic_has_one_row_per_partition():
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("plain", 2, nodes=["n1", None])
    rows = describe_partitions(meta.get("plain"))
    assert [(r.leader, r.leader_node, r.replicas, r.isr, r.under_replicated, r.offline) for r in rows] == [
        (0, "n1", (0,), (0,), False, False), (0, None, (0,), (0,), False, False)]
