"""The durable offset store: reopen, torn tail, corrupt lines, tombstones, compaction, fsyncs."""

import json
import logging
import os
import random
import stat

import pytest

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


def _record_fsyncs(monkeypatch):
    """Record every fsync as "file" or "dir" (and os.replace as "replace"), in order."""
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_every_commit_is_fsynced_and_the_directory_when_the_file_is_created(tmp_path, monkeypatch):
    events = _record_fsyncs(monkeypatch)
    s = OffsetStore(tmp_path / "o.jsonl")
    s.commit("g", {("t", 0): 1, ("t", 1): 2}, now_ms=1)
    assert events == ["file", "dir"]  # without the directory fsync a crash can lose the new file
    events.clear()
    s.commit("g", {("t", 0): 3}, now_ms=2)
    assert events == ["file"]


def test_compaction_fsyncs_the_directory_after_the_rename(tmp_path, monkeypatch):
    s = OffsetStore(tmp_path / "o.jsonl")
    s.commit("g", {("t", 0): 1}, now_ms=1)
    events = _record_fsyncs(monkeypatch)
    s.compact()
    assert events == ["file", "replace", "dir"]


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


def _lines(n):
    return [json.dumps({"g": "g", "t": "t", "p": i, "o": 100 + i, "m": "", "ts": i}) + "\n" for i in range(n)]


@pytest.mark.parametrize("seed", range(5))
def test_a_corrupt_line_in_the_middle_is_skipped_with_a_warning_and_later_lines_count(tmp_path, caplog, seed):
    path = tmp_path / "offsets.jsonl"
    lines = _lines(8)
    bad = random.Random(seed).randrange(0, 7)  # any line but the last
    start = random.Random(seed).randrange(0, len(lines[bad]) - 1)
    garbage = bytearray(lines[bad].encode())
    garbage[start:-1] = b"\x00#garbage" [: len(garbage) - 1 - start]  # keeps the newline
    path.write_bytes(b"".join(x.encode() for x in lines[:bad]) + bytes(garbage)
                     + b"".join(x.encode() for x in lines[bad + 1:]))
    size = path.stat().st_size
    with caplog.at_level(logging.WARNING, logger="rayka.coordinator.offset_store"):
        s = OffsetStore(path)
    assert "corrupt line" in caplog.text
    assert path.stat().st_size == size  # nothing truncated: the later commits are kept
    for i in range(8):
        got = s.get("g", "t", i)
        assert (got is None) if i == bad else (got.offset == 100 + i)
    s.commit("g", {("t", bad): 7}, now_ms=9)
    assert OffsetStore(path).get("g", "t", bad).offset == 7


def test_a_complete_but_invalid_record_is_skipped_too(tmp_path):
    path = tmp_path / "offsets.jsonl"
    lines = _lines(2)
    path.write_text(lines[0] + '{"g": 5, "t": "t"}\n' + '[1, 2]\n' + lines[1])
    s = OffsetStore(path)
    assert s.get("g", "t", 0).offset == 100 and s.get("g", "t", 1).offset == 101


def test_a_file_that_is_only_a_torn_line_is_emptied(tmp_path):
    path = tmp_path / "offsets.jsonl"
    path.write_bytes(b'{"g": "g", "t"')
    assert OffsetStore(path).groups() == [] and path.stat().st_size == 0


def test_group_state_snapshots_survive_reopen_deletion_and_compaction(tmp_path):
    path = tmp_path / "offsets.jsonl"
    s = OffsetStore(path)
    state = {"v": 1, "gen": 3, "members": [{"id": "m"}]}
    s.set_group_state("g", state)
    s.set_group_state("g", dict(state))  # unchanged: nothing written
    assert path.read_text().count("\n") == 1
    s.set_group_state("h", {"v": 1, "gen": 1, "members": []})
    s.delete_group("h")
    s.compact()
    again = OffsetStore(path)
    assert again.group_state("g") == state and again.group_state("h") is None


def test_the_write_that_triggers_compaction_survives_a_restart(tmp_path):
    """Every write is read back after a restart, including each one that made the file compact
    (compaction writes memory out, so it must come after the rows were applied)."""
    commits = OffsetStore(tmp_path / "c.jsonl", compact_ratio=2, compact_min_lines=3)
    for i in range(1, 30):
        commits.commit("g", {("t", 0): i}, now_ms=i)
        assert OffsetStore(tmp_path / "c.jsonl").get("g", "t", 0).offset == i
    deleted = OffsetStore(tmp_path / "d.jsonl", compact_ratio=2, compact_min_lines=3)
    for i in range(4):
        deleted.commit("gone", {("t", 0): i}, now_ms=i)
    deleted.delete_group("gone")
    assert deleted.groups() == [] and OffsetStore(tmp_path / "d.jsonl").groups() == []
    generations = OffsetStore(tmp_path / "g.jsonl", compact_ratio=2, compact_min_lines=3)
    for g in range(1, 12):
        generations.set_generation("grp", g)
        assert OffsetStore(tmp_path / "g.jsonl").generation("grp") == g
