"""atomic_write: the old file or the new one, never a mix, and no temp file left behind."""

import errno
import json
import logging
import os

import pytest

from rayka.partitions.atomic_file import atomic_write

from fault_injection import FullDisk


def test_writes_bytes_or_what_a_writer_writes_and_leaves_only_the_file(tmp_path):
    path = tmp_path / "state.json"
    atomic_write(path, b'{"a": 1}')
    assert path.read_bytes() == b'{"a": 1}'
    atomic_write(path, lambda f: f.write(json.dumps({"a": 2}).encode()))
    assert json.loads(path.read_text()) == {"a": 2}
    atomic_write(path, b"")
    assert path.read_bytes() == b""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


@pytest.mark.parametrize("free", [0, 1, 10])
def test_a_write_that_fails_midway_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, free):
    path = tmp_path / "state.json"
    atomic_write(path, b"old content")
    disk = FullDisk(monkeypatch, tmp_path)
    disk.free = free  # the write crossing the limit is partial, the next one raises ENOSPC
    with pytest.raises(OSError) as info:
        atomic_write(path, b"new content, longer than the space left" * 10)
    assert info.value.errno == errno.ENOSPC and disk.failures == 1
    assert path.read_bytes() == b"old content"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
    disk.restore()
    atomic_write(path, b"new")
    assert path.read_bytes() == b"new"


def test_a_failed_fsync_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "offsets"
    atomic_write(path, b"old", tmp_suffix=".compacting")
    disk = FullDisk(monkeypatch, tmp_path)
    disk.fsync_errno = errno.EIO
    with pytest.raises(OSError) as info:
        atomic_write(path, b"new", tmp_suffix=".compacting")
    assert info.value.errno == errno.EIO
    assert path.read_bytes() == b"old" and not (tmp_path / "offsets.compacting").exists()


def test_a_writer_that_raises_or_a_failed_rename_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "state.json"
    atomic_write(path, b"old")

    def half_then_fail(f):
        f.write(b"half")
        raise KeyboardInterrupt  # not only OSError: any exit removes the temp file

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]

    def refuse(src, dst):
        raise OSError(errno.EXDEV, "rename refused")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError):
        atomic_write(path, b"new")
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_the_directory_is_fsynced_and_its_failure_only_logged(tmp_path, monkeypatch, caplog):
    path = tmp_path / "state.json"
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        if os.path.isdir(synced[-1]) and fail:
            raise OSError(errno.EIO, "directory fsync failed")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    fail = False
    atomic_write(path, b"one")
    assert synced == [str(tmp_path / "state.tmp"), str(tmp_path)]
    synced.clear()
    atomic_write(path, b"two", fsync_dir=False)
    assert synced == [str(tmp_path / "state.tmp")]
    fail = True
    with caplog.at_level(logging.WARNING, logger="rayka.partitions.atomic_file"):
        atomic_write(path, b"three")  # the file is in place: not an error for the caller
    assert path.read_bytes() == b"three"
    assert any("fsync of its directory failed" in r.getMessage() for r in caplog.records)


def test_the_temp_file_cannot_be_the_file(tmp_path):
    with pytest.raises(ValueError):
        atomic_write(tmp_path / "x.tmp", b"data")
