"""Topic metadata rules and their durable store, without Ray."""

import json

import pyarrow as pa
import pytest

from rayka.coordinator.metadata import ClusterMetadata, MetadataStore, partition_dir, validate_topic_name
from rayka.errors import ConfigError, InvalidTopicError, TopicExistsError, UnknownPartitionError, UnknownTopicError


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "x" * 250, "a b", "tab\t", "é", None, 5])
def test_invalid_topic_names(name):
    with pytest.raises(InvalidTopicError):
        validate_topic_name(name)


@pytest.mark.parametrize("name", ["a", "x" * 249, "my.topic-1_A", "..."])
def test_valid_topic_names(name):
    assert validate_topic_name(name) == name


def test_partition_dir_stays_inside_the_data_dir(tmp_path):
    assert partition_dir(tmp_path, "t", 3) == (tmp_path / "topics" / "t" / "3").resolve()
    with pytest.raises(InvalidTopicError):
        partition_dir(tmp_path, "..", 0)


def test_metadata_survives_reopen_and_keeps_config_and_schema(tmp_path):
    path = tmp_path / "meta.json"
    meta = ClusterMetadata(MetadataStore(path))
    schema = pa.schema([("x", pa.int32())])
    meta.create_topic("a", 3, config={"retention.ms": 1000}, value_schema=schema)
    meta.create_topic("b", 1)
    meta.add_partitions("b", 4)
    again = ClusterMetadata(MetadataStore(path))
    assert again.topics() == ["a", "b"]
    assert again.get("a").topic_config.retention_ms == 1000
    assert again.get("a").value_schema == schema
    assert again.get("b").partitions == 4 and len(again.get("b").nodes) == 4
    again.delete_topic("a")
    assert ClusterMetadata(MetadataStore(path)).topics() == ["b"]
    assert json.loads(path.read_text())["version"] == 1


def test_bad_requests_change_nothing(tmp_path):
    path = tmp_path / "meta.json"
    meta = ClusterMetadata(MetadataStore(path))
    meta.create_topic("a", 2)
    before = path.read_bytes()
    for call in (lambda: meta.create_topic("a", 2), lambda: meta.create_topic("z", 0),
                 lambda: meta.create_topic("z", 1, replication_factor=17),
                 lambda: meta.create_topic("z", 1, replication_factor=2, config={"min.insync.replicas": 3}),
                 lambda: meta.create_topic("z", 1, config={"nope": 1}),
                 lambda: meta.add_partitions("a", 2), lambda: meta.get("missing"),
                 lambda: meta.create_topic("z", 1, value_schema=pa.schema([("offset", pa.int64())]))):
        with pytest.raises((ConfigError, TopicExistsError, UnknownTopicError, TypeError)):
            call()
    assert path.read_bytes() == before and meta.topics() == ["a"]
    with pytest.raises(UnknownPartitionError, match="0..1"):
        meta.get("a").check_partition(2)


def test_a_failed_save_is_undone(tmp_path, monkeypatch):
    store = MetadataStore(tmp_path / "meta.json")
    meta = ClusterMetadata(store)

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(store, "save", boom)
    with pytest.raises(OSError):
        meta.create_topic("a", 1)
    assert meta.topics() == []
