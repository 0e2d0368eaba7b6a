"""The leader-epoch cache: Kafka's assign/endOffsetFor/truncate rules and its checkpoint file."""

import errno
import os
import random

import pytest

from rayka.errors import DiskFullError, LogOpenError
from rayka.partitions.epoch_cache import EPOCH_FILE, UNDEFINED, EpochCache, EpochEndOffset, EpochEntry


def test_missing_file_opens_empty(tmp_path):
    cache = EpochCache.open(tmp_path)
    assert len(cache) == 0 and cache.latest_epoch == -1 and cache.earliest is None
    assert cache.end_offset_for(0, 10) == UNDEFINED and cache.end_offset_for(0, 10).undefined
    assert not (tmp_path / EPOCH_FILE).exists()


def test_entries_survive_reopen_in_kafkas_format(tmp_path):
    cache = EpochCache.open(tmp_path)
    assert cache.assign(0, 0) and cache.assign(2, 5) and cache.assign(5, 9)
    assert (tmp_path / EPOCH_FILE).read_text() == "0\n3\n0 0\n2 5\n5 9\n"
    again = EpochCache.open(tmp_path)
    assert again.entries == ((0, 0), (2, 5), (5, 9)) and again.latest_epoch == 5
    assert not list(tmp_path.glob("*.tmp"))


def test_assign_same_epoch_later_offset_changes_nothing(tmp_path):
    cache = EpochCache.open(tmp_path)
    cache.assign(1, 3)
    before = (tmp_path / EPOCH_FILE).stat().st_mtime_ns
    assert not cache.assign(1, 7)
    assert cache.entries == ((1, 3),) and (tmp_path / EPOCH_FILE).stat().st_mtime_ns == before


def test_assign_conflicting_entry_drops_later_ones_as_kafka():
    cache = EpochCache([(0, 0), (2, 5), (4, 9)])
    # a lower epoch: every entry with epoch >= 3 or start >= 6 goes, then (3, 6) is appended
    assert cache.assign(3, 6)
    assert cache.entries == ((0, 0), (2, 5), (3, 6))
    # the same epoch at an earlier offset moves its start back
    assert cache.assign(3, 5)
    assert cache.entries == ((0, 0), (3, 5))


def test_assign_refuses_negative_values():
    with pytest.raises(ValueError):
        EpochCache().assign(-1, 0)
    with pytest.raises(ValueError):
        EpochCache().assign(0, -3)


def test_end_offset_for_answers_as_offsets_for_leader_epoch():
    cache = EpochCache([(1, 10), (3, 20), (6, 35)])
    assert cache.end_offset_for(6, 50) == EpochEndOffset(6, 50)  # the latest: the log end
    assert cache.end_offset_for(3, 50) == (3, 35)
    assert cache.end_offset_for(4, 50) == (3, 35)  # unknown epoch: the largest one below it
    assert cache.end_offset_for(5, 50) == (3, 35)
    assert cache.end_offset_for(0, 50) == (0, 10)  # older than every entry: where the first starts
    assert cache.end_offset_for(7, 50) == UNDEFINED  # newer than known
    assert cache.end_offset_for(-1, 50) == UNDEFINED


def test_epoch_for_offset_and_start_offset_of():
    cache = EpochCache([(1, 10), (3, 20)])
    assert [cache.epoch_for_offset(o) for o in (5, 10, 19, 20, 99)] == [-1, 1, 1, 3, 3]
    assert cache.start_offset_of(3) == 20 and cache.start_offset_of(2) is None


def test_truncate_from_end_drops_epochs_at_or_after(tmp_path):
    cache = EpochCache.open(tmp_path)
    for epoch, start in ((0, 0), (1, 4), (2, 8)):
        cache.assign(epoch, start)
    assert not cache.truncate_from_end(9)
    assert cache.truncate_from_end(8)  # epoch 2 has no record left below 8
    assert cache.entries == ((0, 0), (1, 4))
    assert cache.truncate_from_end(2) and cache.entries == ((0, 0),)
    assert EpochCache.open(tmp_path).entries == ((0, 0),)


def test_truncate_from_start_moves_the_first_kept_epoch(tmp_path):
    cache = EpochCache.open(tmp_path)
    for epoch, start in ((0, 0), (1, 4), (2, 8)):
        cache.assign(epoch, start)
    assert cache.truncate_from_start(6)
    assert cache.entries == ((1, 6), (2, 8))
    assert not cache.truncate_from_start(6) and not cache.truncate_from_start(3)
    assert cache.truncate_from_start(8) and cache.entries == ((2, 8),)
    assert cache.truncate_from_start(20) and cache.entries == ((2, 20),)
    assert EpochCache.open(tmp_path).entries == ((2, 20),)


def test_clear_and_copy_is_memory_only(tmp_path):
    cache = EpochCache.open(tmp_path)
    cache.assign(0, 0)
    scratch = cache.copy()
    scratch.truncate_from_end(0)
    assert scratch.path is None and len(scratch) == 0 and cache.entries == ((0, 0),)
    cache.clear()
    assert EpochCache.open(tmp_path).entries == ()


@pytest.mark.parametrize("text, words", [
    ("", "shorter"),
    ("0\n", "shorter"),
    ("1\n0\n", "version"),
    ("0\nx\n", "count"),
    ("0\n2\n0 0\n", "says 2 entries"),
    ("0\n1\n0 zero\n", "line 3"),
    ("0\n1\n0 0 0\n", "line 3"),
    ("0\n1\n-1 0\n", "negative"),
    ("0\n2\n3 0\n2 5\n", "follows"),
    ("0\n2\n1 5\n2 5\n", "follows"),
])
def test_damaged_file_is_refused_naming_it(tmp_path, text, words):
    (tmp_path / EPOCH_FILE).write_text(text)
    with pytest.raises(LogOpenError) as info:
        EpochCache.open(tmp_path)
    assert str(tmp_path / EPOCH_FILE) in str(info.value) and words in str(info.value)
    assert info.value.directory == str(tmp_path) and not info.value.retriable


def test_random_garbage_is_refused_or_read_in_order(tmp_path):
    rng = random.Random(7)
    good = "0\n3\n0 0\n2 5\n5 9\n"
    for _ in range(200):
        data = bytearray(good.encode())
        data[rng.randrange(len(data))] = rng.randrange(256)
        (tmp_path / EPOCH_FILE).write_bytes(bytes(data))
        try:
            cache = EpochCache.open(tmp_path)
        except LogOpenError:
            continue
        entries = cache.entries
        assert all(a.epoch < b.epoch and a.start_offset < b.start_offset for a, b in zip(entries, entries[1:]))


def test_failed_write_keeps_old_file_and_memory(tmp_path, monkeypatch):
    cache = EpochCache.open(tmp_path)
    cache.assign(0, 0)

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(DiskFullError) as info:
        cache.assign(1, 5)
    assert "leader-epoch" in str(info.value) and info.value.retriable
    monkeypatch.undo()
    assert cache.entries == ((0, 0),) and EpochCache.open(tmp_path).entries == ((0, 0),)
    assert not list(tmp_path.glob("*.tmp"))
    assert cache.assign(1, 5) and EpochCache.open(tmp_path).entries == ((0, 0), (1, 5))


def test_constructor_refuses_unordered_entries():
    with pytest.raises(ValueError):
        EpochCache([(2, 0), (1, 5)])
    assert EpochEntry(1, 2).epoch == 1


def test_random_operations_keep_the_order_invariant(tmp_path):
    rng = random.Random(2024)
    cache = EpochCache.open(tmp_path)
    for _ in range(300):
        op = rng.random()
        if op < 0.6:
            cache.assign(rng.randrange(20), rng.randrange(100))
        elif op < 0.8:
            cache.truncate_from_end(rng.randrange(100))
        else:
            cache.truncate_from_start(rng.randrange(100))
        e = cache.entries
        assert all(a.epoch < b.epoch and a.start_offset < b.start_offset for a, b in zip(e, e[1:]))
    assert EpochCache.open(tmp_path).entries == cache.entries
