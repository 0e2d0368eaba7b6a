"""The coordinator's config push: unreached partitions stay pending and get the config when
they answer again (TopicConfigService with PartitionCalls.push_config over fake partition
handles and a fake ``ray``; no Ray, no threads: each sync pass is called by the test)."""

import threading
import types

import pytest

from rayka.actors import partition_calls
from rayka.coordinator.metadata import ClusterMetadata, MetadataStore
from rayka.coordinator.topic_config_service import TopicConfigService
from rayka.messages import TopicConfigInfo


class _Ref:
    def __init__(self, handle, config, version):
        self.handle, self.config, self.version = handle, config, version


class _Partition:
    """A partition handle whose update_config fails while ``down``."""

    def __init__(self):
        self.down = False
        self.version, self.config = 0, None
        self.update_config = types.SimpleNamespace(remote=lambda config, version: _Ref(self, config, version))


def _get(ref, timeout=None):
    h = ref.handle
    if h.down:
        raise RuntimeError("actor died")  # what a RayActorError would be: the call may not have run
    if ref.version > h.version:
        h.version, h.config = ref.version, dict(ref.config)
    return h.version


def _service(meta, handles):
    return TopicConfigService(meta, threading.RLock(), lambda m: list(enumerate(handles[: m.partitions])),
                              partition_calls.PartitionCalls.push_config, lambda: {"node": 8e9})


@pytest.fixture
def fake_ray(monkeypatch):
    fake = types.SimpleNamespace(wait=lambda refs, num_returns, timeout: (list(refs), []), get=_get)
    monkeypatch.setattr(partition_calls, "ray", fake)


def test_an_unreached_partition_gets_the_config_when_it_answers_again(fake_ray):
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("t", 3)
    parts = [_Partition() for _ in range(3)]
    parts[1].down = True
    service = _service(meta, parts)
    result = service.alter_topic_config("t", {"retention.ms": 5000})
    assert result.pending == (1,) and result.version == 1 and result.as_dict()["retention.ms"] == 5000
    assert [p.version for p in parts] == [1, 0, 1]
    assert service.pending == {"t": 1}
    result = service.alter_topic_config("t", {"segment.bytes": 8192})  # a second change while it is down
    assert result.pending == (1,)
    service.sync_pending()
    assert service.pending == {"t": 2}  # still down: still pending
    parts[1].down = False
    service.sync_pending()
    assert service.pending == {}
    assert [p.version for p in parts] == [2, 2, 2]
    assert parts[1].config["retention.ms"] == 5000 and parts[1].config["segment.bytes"] == 8192


def test_a_new_coordinator_pushes_changed_configs_once_and_forgets_deleted_topics(fake_ray):
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("changed", 2)
    meta.create_topic("gone", 1)
    meta.create_topic("plain", 1)
    meta.alter_config("changed", {"retention.ms": 7000})
    meta.alter_config("gone", {"retention.ms": 7000})
    parts = [_Partition() for _ in range(2)]
    parts[0].down = parts[1].down = True  # nothing answers at first
    service = _service(meta, parts)
    assert set(service.pending) == {"changed", "gone"}  # "plain" was never changed
    meta.delete_topic("gone")
    service.sync_pending()
    assert set(service.pending) == {"changed"}
    parts[0].down = parts[1].down = False
    service.sync_pending()
    assert service.pending == {}
    assert [p.version for p in parts] == [1, 1] and parts[0].config["retention.ms"] == 7000


def test_the_partition_budget_is_kept_in_the_metadata_and_counts_every_partition():
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("t", 3)
    service = _service(meta, [])
    before = service.partition_budget()
    assert before.partitions == 3 and before.node_memory_bytes == (8e9,)
    assert before.to_dict() == {**service.budget().to_dict(), "node_memory_bytes": [8e9],
                                "limit": before.limit, "partitions": 3}  # what Admin.partition_budget returns
    after = service.set_partition_budget({"partition.memory.fraction": 0.5})
    assert after.memory_fraction == 0.5 and after.to_dict()["partition.memory.fraction"] == 0.5
    assert meta.settings()["partition_budget"] == {"partition.memory.fraction": 0.5}
    assert service.budget().memory_fraction == 0.5
    again = service.set_partition_budget({"partition.memory.fraction": None})
    assert again.memory_fraction == before.memory_fraction and hash(again) == hash(before)


def test_describe_topic_config_is_the_stored_config_and_version(fake_ray):
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("t", 1)
    service = _service(meta, [_Partition()])
    first = service.describe_topic_config("t")
    assert isinstance(first, TopicConfigInfo) and first.version == 0 and first.pending == ()
    assert first.as_dict() == dict(meta.get("t").config)
    service.alter_topic_config("t", {"retention.ms": 9000})
    now = service.describe_topic_config("t")
    assert now.version == 1 and now.as_dict()["retention.ms"] == 9000
    assert hash(now) != hash(first) and list(now.as_dict()) == list(meta.get("t").config)  # same key order
