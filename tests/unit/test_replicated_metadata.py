"""Replicated partitions in the cluster metadata: states and replica nodes, persisted, old files."""

import json

import pytest

from rayka.coordinator.election import AlterPartitionRequest, PartitionState
from rayka.coordinator.metadata import ClusterMetadata, MetadataStore
from rayka.errors import ConfigError, FencedLeaderEpochError, InvalidUpdateVersionError, UnknownPartitionError


def _meta(tmp_path):
    return ClusterMetadata(MetadataStore(tmp_path / "meta.json"))


def test_a_replicated_topic_is_stored_and_loaded_again(tmp_path):
    meta = _meta(tmp_path)
    meta.create_topic("t", 2, replication_factor=3, replica_nodes=[["a", "b", "c"], ["b", "c", "a"]])
    again = _meta(tmp_path).get("t")
    assert again.replication_factor == 3
    assert again.state(1) == PartitionState.initial([0, 1, 2])
    assert again.replica_nodes_of(1) == {0: "b", 1: "c", 2: "a"}
    assert again.nodes == ["a", "b"] and again.leader_node(0) == "a"
    assert sorted(again.every_replica_node()) == ["a", "a", "b", "b", "c", "c"]


def test_a_file_from_before_replication_loads_as_one_replica_on_its_node(tmp_path):
    path = tmp_path / "meta.json"
    old = {"name": "old", "partitions": 2, "replication_factor": 1, "config": {"retention.ms": 5000},
           "value_schema_b64": None, "nodes": ["n1", None], "topic_id": "x", "created_ms": 1, "config_version": 0}
    path.write_text(json.dumps({"version": 1, "topics": {"old": old}}))
    meta = ClusterMetadata(MetadataStore(path)).get("old")
    assert meta.state(0) == PartitionState.initial([0])
    assert meta.replica_nodes_of(0) == {0: "n1"} and meta.replica_nodes_of(1) == {0: None}
    assert meta.leader_node(0) == "n1" and meta.nodes == ["n1", None]
    assert meta.topic_config.retention_ms == 5000 and meta.config["min.insync.replicas"] == 1


@pytest.mark.parametrize("rf", [0, 17, True, "2", 2.0])
def test_replication_factor_outside_1_to_16_is_refused(tmp_path, rf):
    with pytest.raises(ConfigError, match="1..16"):
        _meta(tmp_path).create_topic("t", 1, replication_factor=rf)


def test_min_insync_above_the_replication_factor_is_refused_on_create_and_alter(tmp_path):
    meta = _meta(tmp_path)
    with pytest.raises(ConfigError, match='acks="all" could never succeed'):
        meta.create_topic("t", 1, replication_factor=2, config={"min.insync.replicas": 3})
    meta.create_topic("t", 1, replication_factor=2, config={"min.insync.replicas": 2})
    with pytest.raises(ConfigError, match="min.insync.replicas=3"):
        meta.alter_config("t", {"min.insync.replicas": 3})
    assert meta.get("t").topic_config.min_insync_replicas == 2


def test_without_replica_nodes_replica_0_is_on_the_given_node(tmp_path):
    meta = _meta(tmp_path)
    meta.create_topic("t", 2, replication_factor=2, nodes=["a", "b"])
    assert meta.get("t").replica_nodes_of(1) == {0: "b", 1: None}
    with pytest.raises(ValueError):
        meta.create_topic("u", 2, replication_factor=2, replica_nodes=[["a", "b"]])  # one partition short
    with pytest.raises(ValueError):
        meta.create_topic("u", 1, replication_factor=2, nodes=["b"], replica_nodes=[["a", "b"]])


def test_add_partitions_places_the_new_replicas(tmp_path):
    meta = _meta(tmp_path)
    meta.create_topic("t", 1, replication_factor=2, replica_nodes=[["a", "b"]])
    meta.add_partitions("t", 3, new_replica_nodes=[["b", "a"], ["a", "b"]])
    again = _meta(tmp_path).get("t")
    assert again.partitions == 3 and again.nodes == ["a", "b", "a"]
    assert again.state(2) == PartitionState.initial([0, 1]) and again.replica_nodes_of(1) == {0: "b", 1: "a"}


def test_set_partition_state_moves_the_leader_node_and_checks_epochs(tmp_path):
    meta = _meta(tmp_path)
    meta.create_topic("t", 1, replication_factor=3, replica_nodes=[["a", "b", "c"]])
    state = meta.partition_state("t", 0)
    elected = state.replace(leader=1, leader_epoch=1, isr=(1, 2), partition_epoch=1)
    assert meta.set_partition_state("t", 0, elected, expected_partition_epoch=0) == elected
    again = _meta(tmp_path)
    assert again.partition_state("t", 0) == elected and again.get("t").nodes == ["b"]
    with pytest.raises(InvalidUpdateVersionError, match="expected 0"):
        meta.set_partition_state("t", 0, elected.replace(partition_epoch=2), expected_partition_epoch=0)
    with pytest.raises(ValueError, match="not above"):
        meta.set_partition_state("t", 0, elected)
    with pytest.raises(UnknownPartitionError):
        meta.partition_state("t", 1)


def test_a_replacement_needs_a_node_and_drops_the_lost_replica(tmp_path):
    meta = _meta(tmp_path)
    meta.create_topic("t", 1, replication_factor=2, replica_nodes=[["a", "b"]])
    replaced = PartitionState(replicas=(0, 2), leader=0, leader_epoch=0, isr=(0,), partition_epoch=1)
    with pytest.raises(ValueError, match=r"\[2\] with no node"):
        meta.set_partition_state("t", 0, replaced)
    meta.set_partition_state("t", 0, replaced, replica_nodes={2: "c"})
    assert _meta(tmp_path).get("t").replica_nodes_of(0) == {0: "a", 2: "c"}


def test_a_failed_write_of_a_state_is_undone(tmp_path, monkeypatch):
    meta = _meta(tmp_path)
    meta.create_topic("t", 1, replication_factor=2, replica_nodes=[["a", "b"]])

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(meta._store, "save", boom)
    with pytest.raises(OSError):
        meta.set_partition_state("t", 0, PartitionState((0, 1), 1, 1, (1,), 1))
    assert meta.partition_state("t", 0) == PartitionState.initial([0, 1]) and meta.get("t").nodes == ["a"]
    with pytest.raises(OSError):
        meta.add_partitions("t", 2)
    assert meta.get("t").partitions == 1 and len(meta.get("t").states) == 1


def test_alter_partition_persists_an_isr_change_and_answers_a_repeat(tmp_path):
    meta = _meta(tmp_path)
    meta.create_topic("t", 1, replication_factor=3, replica_nodes=[["a", "b", "c"]])
    shrink = AlterPartitionRequest(leader=0, leader_epoch=0, partition_epoch=0, isr=(0, 1))
    after = meta.alter_partition("t", 0, shrink)
    assert after.isr == (0, 1) and after.partition_epoch == 1
    assert _meta(tmp_path).partition_state("t", 0) == after
    assert meta.alter_partition("t", 0, shrink) == after  # a retry whose answer was lost
    with pytest.raises(InvalidUpdateVersionError):
        meta.alter_partition("t", 0, AlterPartitionRequest(0, 0, 0, (0,)))
    with pytest.raises(FencedLeaderEpochError):
        meta.alter_partition("t", 0, AlterPartitionRequest(0, 5, 1, (0,)))


def test_a_damaged_replica_map_fails_on_load(tmp_path):
    path = tmp_path / "meta.json"
    ClusterMetadata(MetadataStore(path)).create_topic("t", 1, replication_factor=2, replica_nodes=[["a", "b"]])
    doc = json.loads(path.read_text())
    doc["topics"]["t"]["replica_nodes"] = [{"0": "a"}]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="do not match"):
        ClusterMetadata(MetadataStore(path))


def test_replica_placements_count_every_replica_of_every_topic_but_the_one_named(tmp_path):
    meta = _meta(tmp_path)
    meta.create_topic("r", 2, replication_factor=2, replica_nodes=[["a", "b"], ["b", "c"]])
    meta.create_topic("s", 1, nodes=["c"])
    assert sorted(meta.replica_placements()) == ["a", "b", "b", "c", "c"]
    assert sorted(meta.replica_placements(except_topic="r")) == ["c"]
    assert meta.get("r").replicated() and meta.get("r").replicated(1)
    assert not meta.get("s").replicated() and not meta.get("s").replicated(0)
    with pytest.raises(UnknownPartitionError):
        meta.get("s").replicated(1)
