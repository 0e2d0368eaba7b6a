"""The coordinator's files on a full or failing disk: topic metadata and the committed-offsets log.

A failed write raises a clear LogWriteError (DiskFullError for ENOSPC) and changes nothing, in
memory or on disk (no temp file left, the offsets log cut back to whole lines); the stores work
again when space returns, and reopening them finds exactly what was acknowledged.
"""

import errno
import logging
import random

import pytest

from rayka.coordinator.metadata import ClusterMetadata, MetadataStore
from rayka.coordinator.offset_store import OffsetStore
from rayka.errors import DiskFullError, LogWriteError

from fault_injection import FullDisk


def _meta(tmp_path):
    return ClusterMetadata(MetadataStore(tmp_path / "__cluster_metadata.json"))


def _described(meta):
    return {name: (meta.get(name).partitions, meta.get(name).config) for name in meta.topics()}


@pytest.mark.parametrize("free", [0, 1, 100])
def test_a_failed_metadata_write_changes_nothing_and_leaves_no_temp_file(tmp_path, monkeypatch, free):
    disk = FullDisk(monkeypatch, tmp_path)
    meta = _meta(tmp_path)
    meta.create_topic("a", 2, config={"retention.ms": 60_000})
    path = tmp_path / "__cluster_metadata.json"
    before, on_disk = _described(meta), path.read_bytes()
    disk.free = free
    for change in (lambda: meta.create_topic("b", 3), lambda: meta.add_partitions("a", 4),
                   lambda: meta.delete_topic("a")):
        with pytest.raises(DiskFullError) as info:
            change()
        assert str(tmp_path) in str(info.value) and info.value.retriable and info.value.free_bytes >= 0
        assert _described(meta) == before
        assert path.read_bytes() == on_disk
        assert not (tmp_path / "__cluster_metadata.tmp").exists()
        assert _described(_meta(tmp_path)) == before
    disk.restore()
    meta.create_topic("b", 3)
    meta.add_partitions("a", 4)
    assert _described(_meta(tmp_path)) == {"a": (4, before["a"][1]), "b": (3, meta.get("b").config)}


def test_a_failed_metadata_fsync_is_a_log_write_error(tmp_path, monkeypatch):
    disk = FullDisk(monkeypatch, tmp_path)
    meta = _meta(tmp_path)
    disk.fsync_errno = errno.EIO
    with pytest.raises(LogWriteError) as info:
        meta.create_topic("a", 1)
    assert type(info.value) is LogWriteError and info.value.errno == errno.EIO
    assert meta.topics() == [] and not list(tmp_path.iterdir())


@pytest.mark.parametrize("truncate_fails", [False, True])
def test_failed_commits_leave_the_offsets_log_readable_and_change_nothing(
        tmp_path, monkeypatch, caplog, truncate_fails):
    disk = FullDisk(monkeypatch, tmp_path)
    path = tmp_path / "__consumer_offsets.jsonl"
    store = OffsetStore(path)
    rng = random.Random(5)
    acked: dict[tuple[str, int], int] = {}
    failures = 0
    for i in range(300):
        group = f"g{i % 3}"
        offsets = {("t", p): i * 10 + p for p in rng.sample(range(6), rng.randrange(1, 6))}
        if i % 4 == 1:
            disk.free = rng.randrange(0, 200)  # often mid-line: the disk fills during the write
            disk.truncate_errno = errno.EIO if truncate_fails else None
        try:
            store.commit(group, offsets, now_ms=i)
        except DiskFullError as exc:
            failures += 1
            assert "committed-offsets log" in str(exc) and exc.retriable
            for (t, p) in offsets:  # the failed commit is not visible, the acknowledged one is
                got = store.get(group, t, p)
                assert (got.offset if got else None) == acked.get((group, p))
        else:
            acked.update({(group, p): o for (_, p), o in offsets.items()})
        disk.restore()
    assert failures >= 30
    with caplog.at_level(logging.WARNING):
        again = OffsetStore(path)
    assert not [r for r in caplog.records if "corrupt" in r.getMessage() or "torn" in r.getMessage()]
    for s in (store, again):
        got = {(g, p): s.get(g, "t", p).offset for g in s.groups() for (_, p) in s.offsets(g)}
        assert got == acked


def test_a_failed_group_write_is_retried_and_a_failed_compaction_keeps_the_commits(tmp_path, monkeypatch):
    disk = FullDisk(monkeypatch, tmp_path)
    path = tmp_path / "o.jsonl"
    store = OffsetStore(path, compact_ratio=2, compact_min_lines=5)
    store.set_generation("g", 1)
    disk.free = 3
    with pytest.raises(DiskFullError):
        store.set_generation("g", 2)
    assert store.generation("g") == 1
    disk.restore()
    store.set_generation("g", 2)  # not taken for "unchanged": the failed write counted for nothing
    assert OffsetStore(path).generation("g") == 2
    for i in range(4):
        store.commit("g", {("t", 0): i}, now_ms=i)
    # The next commit makes the file compact; the compaction cannot write, the commit stands.
    disk.free = len(b'{"g":"g","t":"t","p":0,"o":9,"m":"","ts":9}\n')
    store.commit("g", {("t", 0): 9}, now_ms=9)
    assert disk.failures == 2  # the set_generation above, and the compaction
    assert not list(tmp_path.glob("*.compacting"))
    disk.restore()
    assert OffsetStore(path).get("g", "t", 0).offset == 9 and OffsetStore(path).generation("g") == 2
