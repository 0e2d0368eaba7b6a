"""The partition budget rule, its config, and topic config changes in the metadata (no Ray)."""

import pickle

import pytest

from rayka.config import PartitionBudget, TopicConfig
from rayka.coordinator.budget import check_partition_budget, partition_limit
from rayka.coordinator.metadata import ClusterMetadata, MetadataStore
from rayka.errors import ConfigError, PartitionBudgetError
from rayka.partitions.config_file import read_config, write_config

MiB = 1024 * 1024
GiB = 1024 * MiB


def test_limit_is_per_node_memory_times_fraction_over_the_partition_cost():
    budget = PartitionBudget(partition_memory_bytes=100 * MiB, memory_fraction=0.5)
    # 1000 MiB * 0.5 / 100 MiB = 5 on the first node, 2.5 -> 2 on the second (partitions are whole)
    assert partition_limit(budget, [1000 * MiB, 500 * MiB]) == 7
    assert partition_limit(budget, []) == 0
    assert partition_limit(PartitionBudget(max_partitions=3), [64 * GiB]) == 3
    assert partition_limit(PartitionBudget(max_partitions=-1), [1 * MiB]) is None


def test_check_allows_up_to_the_limit_and_refuses_past_it_with_the_figures():
    budget = PartitionBudget(partition_memory_bytes=128 * MiB, memory_fraction=0.8)
    memory = [16 * GiB]  # 16 GiB * 0.8 / 128 MiB = 102 partitions
    check_partition_budget(budget, memory, existing=100, requested=2, action="create_topic('t', partitions=2)")
    with pytest.raises(PartitionBudgetError) as err:
        check_partition_budget(budget, memory, existing=100, requested=3, action="create_topic('t', partitions=3)")
    e = err.value
    assert (e.per_partition_bytes, e.existing, e.requested, e.limit) == (128 * MiB, 100, 3, 102)
    text = str(e)
    for part in ("create_topic('t', partitions=3)", "nothing was created", "128 MiB", "102 partitions", "100 exist",
                 "3 new partition", "room is left for 2", "max.partitions", "partition.memory.fraction=0.8",
                 "16.0 GiB"):
        assert part in text, part
    again = pickle.loads(pickle.dumps(e))  # crosses Ray as a pickled error
    assert isinstance(again, PartitionBudgetError) and again.limit == 102 and str(again) == text


def test_an_override_replaces_the_computed_limit_either_way():
    memory = [16 * GiB]
    with pytest.raises(PartitionBudgetError, match="max.partitions=5"):
        check_partition_budget(PartitionBudget(max_partitions=5), memory, 4, 2, "add_partitions('t', total=6)")
    check_partition_budget(PartitionBudget(max_partitions=100_000), memory, 0, 50_000, "create_topic")
    check_partition_budget(PartitionBudget(max_partitions=-1), [0], 10**6, 10**6, "create_topic")


def test_budget_config_keys_env_and_validation():
    b = PartitionBudget.from_dict({"max.partitions": 7, "partition.memory.fraction": 0.5})
    assert (b.max_partitions, b.memory_fraction, b.partition_memory_bytes) == (7, 0.5, 128 * MiB)
    assert PartitionBudget.from_dict({"partition.memory.bytes": MiB}, base=b).max_partitions == 7
    assert PartitionBudget.from_dict(b.to_dict()) == b
    env = {"RAYKA_MAX_PARTITIONS": "12", "RAYKA_PARTITION_MEMORY_FRACTION": "0.25",
           "RAYKA_PARTITION_MEMORY_BYTES": str(64 * MiB)}
    assert PartitionBudget.from_env(env) == PartitionBudget(max_partitions=12, memory_fraction=0.25,
                                                            partition_memory_bytes=64 * MiB)
    assert PartitionBudget.from_env({}) == PartitionBudget()
    with pytest.raises(ConfigError, match="RAYKA_MAX_PARTITIONS"):
        PartitionBudget.from_env({"RAYKA_MAX_PARTITIONS": "lots"})
    with pytest.raises(ConfigError, match="known keys: max.partitions"):
        PartitionBudget.from_dict({"max_partitions_per_broker": 1})
    for bad in ({"partition.memory.fraction": 0}, {"partition.memory.fraction": 1.5},
                {"partition.memory.bytes": 0}, {"max.partitions": -2}, {"max.partitions": "10"},
                {"max.partitions": True}):
        with pytest.raises(ConfigError):
            PartitionBudget.from_dict(bad)


def test_alter_config_merges_validates_bumps_the_version_and_persists(tmp_path):
    path = tmp_path / "meta.json"
    meta = ClusterMetadata(MetadataStore(path))
    meta.create_topic("t", 2, config={"retention.ms": 60_000})
    assert meta.get("t").config_version == 0
    changed = meta.alter_config("t", {"segment.bytes": 4096, "retention_bytes": 10_000})
    assert changed.config_version == 1
    assert changed.config["segment.bytes"] == 4096 and changed.config["retention.bytes"] == 10_000
    assert changed.config["retention.ms"] == 60_000  # untouched keys stay
    reset = meta.alter_config("t", {"retention.ms": None})
    assert reset.config["retention.ms"] == TopicConfig().retention_ms and reset.config_version == 2
    again = ClusterMetadata(MetadataStore(path)).get("t")
    assert again.config == reset.config and again.config_version == 2


@pytest.mark.parametrize("changes, match", [
    ({"retention.msec": 5}, "known keys: .*retention.ms"),
    ({"segment.bytes": 10}, "segment.bytes must be >= 1024"),
    ({"flush.policy": "sometimes"}, "flush.policy"),
    ({}, "non-empty dict"),
    ("retention.ms=5", "non-empty dict"),
])
def test_alter_config_refuses_bad_input_with_nothing_changed(tmp_path, changes, match):
    path = tmp_path / "meta.json"
    meta = ClusterMetadata(MetadataStore(path))
    meta.create_topic("t", 1)
    before = path.read_text()
    with pytest.raises(ConfigError, match=match):
        meta.alter_config("t", changes)
    assert meta.get("t").config_version == 0 and meta.get("t").config == TopicConfig().to_dict()
    assert path.read_text() == before


def test_a_failed_save_undoes_the_config_change(tmp_path, monkeypatch):
    store = MetadataStore(tmp_path / "meta.json")
    meta = ClusterMetadata(store)
    meta.create_topic("t", 1)

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(store, "save", boom)
    with pytest.raises(OSError):
        meta.alter_config("t", {"retention.ms": 5000})
    assert meta.get("t").config_version == 0 and meta.get("t").config["retention.ms"] == TopicConfig().retention_ms


def test_cluster_settings_persist_beside_the_topics(tmp_path):
    path = tmp_path / "meta.json"
    meta = ClusterMetadata(MetadataStore(path))
    meta.create_topic("t", 1)
    meta.set_setting("partition_budget", {"max.partitions": 9})
    again = ClusterMetadata(MetadataStore(path))
    assert again.settings() == {"partition_budget": {"max.partitions": 9}} and again.topics() == ["t"]
    again.set_setting("partition_budget", None)
    assert ClusterMetadata(MetadataStore(path)).settings() == {}


def test_partition_config_file_round_trip_owner_and_damage(tmp_path):
    owner = "rayka:c:p:topicid1:0"
    assert read_config(tmp_path, owner) is None
    write_config(tmp_path, 3, {"retention.ms": 5}, owner)
    assert read_config(tmp_path, owner) == (3, {"retention.ms": 5})
    # left behind by a deleted topic of the same name (another topic id): not applied
    assert read_config(tmp_path, "rayka:c:p:topicid2:0") is None
    (tmp_path / "topic_config.json").write_text('{"version": 3, "conf')
    assert read_config(tmp_path, owner) is None  # a torn file loses only the change; the coordinator re-sends it
    (tmp_path / "topic_config.json").write_text('[1, 2]')
    assert read_config(tmp_path, owner) is None
