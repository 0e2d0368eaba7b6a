"""The durable offset store: reopen, torn tail, tombstones, compaction."""

import os

from rayka.coordinator.offset_store import OffsetStore


def test_commits_survive_reopen_and_later_ones_win(tmp_path):
    path = tmp_path / "offsets.jsonl"
    s = OffsetStore(path)
    s.commit("g", {("t", 0): 5, ("t", 1): 7}, now_ms=1)
    s.commit("g", {("t", 0): 9}, now_ms=2)
    s.set_generation("g", 4)
    again = OffsetStore(path)
    assert again.get("g", "t", 0).offset == 9 and again.get("g", "t", 1).offset == 7
    assert again.generation("g") == 4 and again.groups() == ["g"]


def test_every_commit_is_fsynced(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd)))
    OffsetStore(tmp_path / "o.jsonl").commit("g", {("t", 0): 1, ("t", 1): 2}, now_ms=1)
    assert len(calls) == 1


def test_a_torn_last_line_is_dropped_and_truncated(tmp_path):
    path = tmp_path / "offsets.jsonl"
    OffsetStore(path).commit("g", {("t", 0): 3}, now_ms=1)
    good = path.stat().st_size
    with open(path, "ab") as f:
        f.write(b'{"g": "g", "t": "t", "p": 0, "o": 99')  # crash mid-write
    s = OffsetStore(path)
    assert s.get("g", "t", 0).offset == 3
    assert path.stat().st_size == good
    s.commit("g", {("t", 0): 4}, now_ms=2)
    assert OffsetStore(path).get("g", "t", 0).offset == 4


def test_delete_group_and_topic_are_durable(tmp_path):
    path = tmp_path / "offsets.jsonl"
    s = OffsetStore(path)
    s.commit("a", {("t", 0): 1, ("u", 0): 2}, now_ms=1)
    s.commit("b", {("t", 0): 3}, now_ms=1)
    s.delete_group("b")
    s.delete_topic("u")
    again = OffsetStore(path)
    assert again.groups() == ["a"] and again.offsets("a") == {("t", 0): again.get("a", "t", 0)}


def test_compaction_keeps_the_latest_and_shrinks_the_file(tmp_path):
    path = tmp_path / "offsets.jsonl"
    s = OffsetStore(path, compact_ratio=2, compact_min_lines=20)
    for i in range(100):
        s.commit("g", {("t", 0): i}, now_ms=i)
    lines = path.read_text().count("\n")
    assert lines < 25, lines
    assert OffsetStore(path).get("g", "t", 0).offset == 99


def test_memory_only_store():
    s = OffsetStore(None)
    s.commit("g", {("t", 0): 1}, now_ms=1)
    assert s.get("g", "t", 0).offset == 1
