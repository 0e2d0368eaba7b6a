"""The coordinator's producer-id allocator (coordinator/producer_ids.py): unique ids in durable
blocks, never repeated across restarts. No Ray."""

import threading

import pytest

from rayka.coordinator.metadata import ClusterMetadata, MetadataStore
from rayka.coordinator.producer_ids import HIGH_WATER_KEY, ProducerIdManager
from rayka.errors import ConfigError, LogWriteError


def meta_at(path):
    return ClusterMetadata(MetadataStore(path))


def test_ids_are_unique_and_epoch_zero(tmp_path):
    ids = ProducerIdManager(meta_at(tmp_path / "m.json"), block_size=10)
    got = [ids.init_producer_id() for _ in range(25)]
    assert [pid for pid, _ in got] == list(range(25)) and {epoch for _, epoch in got} == {0}


def test_block_is_durable_before_its_ids_leave(tmp_path):
    meta = meta_at(tmp_path / "m.json")
    ids = ProducerIdManager(meta, block_size=10)
    ids.init_producer_id()
    assert meta_at(tmp_path / "m.json").settings()[HIGH_WATER_KEY] == 10  # read back from the file
    for _ in range(9):
        ids.init_producer_id()
    assert meta.settings()[HIGH_WATER_KEY] == 10  # one write per block, not per id
    ids.init_producer_id()
    assert meta.settings()[HIGH_WATER_KEY] == 20


def test_ids_never_repeat_across_restarts(tmp_path):
    path = tmp_path / "m.json"
    seen = []
    for run in range(4):  # each "restart" is a new coordinator on the same file
        ids = ProducerIdManager(meta_at(path), block_size=7)
        seen += [ids.init_producer_id()[0] for _ in range(run * 5 + 3)]
    assert len(seen) == len(set(seen)) and min(seen) >= 0
    # the unused rest of each block was skipped, not reused
    assert seen[:3] == [0, 1, 2] and seen[3] == 7


def test_topics_and_other_settings_are_kept(tmp_path):
    path = tmp_path / "m.json"
    meta = meta_at(path)
    meta.create_topic("t", 2)
    meta.set_setting("partition_budget", {"max.partitions": 9})
    ProducerIdManager(meta).init_producer_id()
    again = meta_at(path)
    assert again.topics() == ["t"] and again.settings()["partition_budget"] == {"max.partitions": 9}


def test_concurrent_callers_get_distinct_ids(tmp_path):
    ids = ProducerIdManager(meta_at(tmp_path / "m.json"), block_size=3)
    got, lock = [], threading.Lock()

    def take():
        mine = [ids.init_producer_id()[0] for _ in range(50)]
        with lock:
            got.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(200))


def test_a_failed_reservation_hands_out_nothing(tmp_path, monkeypatch):
    meta = meta_at(tmp_path / "m.json")
    ids = ProducerIdManager(meta, block_size=2)
    assert ids.init_producer_id()[0] == 0
    ids.init_producer_id()

    def full(*_a, **_k):
        raise LogWriteError("disk full")

    monkeypatch.setattr(meta, "set_setting", full)
    with pytest.raises(LogWriteError):
        ids.init_producer_id()
    monkeypatch.undo()
    assert ids.init_producer_id()[0] == 2


@pytest.mark.parametrize("bad", [-1, "12", 1.5, True, 2**63 + 1])
def test_a_damaged_mark_is_refused_not_guessed(tmp_path, bad):
    meta = meta_at(tmp_path / "m.json")
    meta.set_setting(HIGH_WATER_KEY, bad)
    with pytest.raises(ConfigError, match=HIGH_WATER_KEY):
        ProducerIdManager(meta).init_producer_id()


def test_exhaustion_and_bad_block_size(tmp_path):
    meta = meta_at(tmp_path / "m.json")
    meta.set_setting(HIGH_WATER_KEY, 2**63 - 2)
    ids = ProducerIdManager(meta, block_size=10)
    assert [ids.init_producer_id()[0] for _ in range(2)] == [2**63 - 2, 2**63 - 1]
    with pytest.raises(ConfigError, match="handed out"):
        ids.init_producer_id()
    with pytest.raises(ConfigError):
        ProducerIdManager(meta, block_size=0)


def test_memory_only_metadata_still_gives_unique_ids():
    ids = ProducerIdManager(ClusterMetadata(MetadataStore(None)), block_size=2)
    assert [ids.init_producer_id()[0] for _ in range(5)] == [0, 1, 2, 3, 4]
