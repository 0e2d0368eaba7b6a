"""The coordinator's config push: unreached partitions stay pending and get the config when
they answer again (TopicConfigApi with fake partition handles; no Ray)."""

import threading
import types

import pytest

from rayka.actors import topic_config_api
from rayka.coordinator.metadata import ClusterMetadata, MetadataStore
from rayka.testing import wait_for


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


class _Coordinator(topic_config_api.TopicConfigApi):
    def __init__(self, meta, handles):
        self._meta, self._lock, self._stop = meta, threading.RLock(), threading.Event()
        self._handles = handles
        self._start_config_sync()

    def _ensure_partitions(self, meta):
        return self._handles[: meta.partitions]


@pytest.fixture
def fake_ray(monkeypatch):
    fake = types.SimpleNamespace(wait=lambda refs, num_returns, timeout: (list(refs), []), get=_get)
    monkeypatch.setattr(topic_config_api, "ray", fake)
    monkeypatch.setattr(topic_config_api, "CONFIG_SYNC_S", 0.02)


def _wait(predicate, timeout_s=10.0):
    wait_for(predicate, timeout_s, interval_s=0.01, what="the config push")


def test_an_unreached_partition_gets_the_config_when_it_answers_again(fake_ray):
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("t", 3)
    parts = [_Partition() for _ in range(3)]
    parts[1].down = True
    coord = _Coordinator(meta, parts)
    try:
        result = coord.alter_topic_config("t", {"retention.ms": 5000})
        assert result["pending"] == [1] and result["version"] == 1
        assert [p.version for p in parts] == [1, 0, 1]
        assert coord._pending_configs == {"t": 1}
        result = coord.alter_topic_config("t", {"segment.bytes": 8192})  # a second change while it is down
        assert result["pending"] == [1]
        parts[1].down = False
        _wait(lambda: not coord._pending_configs)
        assert [p.version for p in parts] == [2, 2, 2]
        assert parts[1].config["retention.ms"] == 5000 and parts[1].config["segment.bytes"] == 8192
    finally:
        coord._stop.set()


def test_a_new_coordinator_pushes_changed_configs_once_and_forgets_deleted_topics(fake_ray):
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("changed", 2)
    meta.create_topic("gone", 1)
    meta.create_topic("plain", 1)
    meta.alter_config("changed", {"retention.ms": 7000})
    meta.alter_config("gone", {"retention.ms": 7000})
    parts = [_Partition() for _ in range(2)]
    parts[0].down = parts[1].down = True  # nothing answers at first
    coord = _Coordinator(meta, parts)
    try:
        assert set(coord._pending_configs) == {"changed", "gone"}  # "plain" was never changed
        meta.delete_topic("gone")
        _wait(lambda: set(coord._pending_configs) == {"changed"})
        parts[0].down = parts[1].down = False
        _wait(lambda: not coord._pending_configs)
        assert [p.version for p in parts] == [1, 1] and parts[0].config["retention.ms"] == 7000
    finally:
        coord._stop.set()
