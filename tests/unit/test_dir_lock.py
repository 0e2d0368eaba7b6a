"""One partition log at a time owns a partition directory (an exclusive flock on .lock)."""

import gc
import subprocess
import sys

import pytest

from rayka.errors import LogDirLockedError, LogOpenError
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, crash, read_all


def test_a_second_log_on_the_same_directory_is_refused_until_the_first_closes(tmp_path, clock):
    first = PartitionLog(tmp_path, clock=clock)
    first.append(batch([b"a"]))
    with pytest.raises(LogDirLockedError, match=r"in use by another partition log \(held by pid \d+, this "
                                                r"process\).*own data_dir"):
        PartitionLog(tmp_path, clock=clock)
    assert first.append(batch([b"b"])).base_offset == 1  # the refused open touched nothing
    first.close()
    second = PartitionLog(tmp_path, clock=clock)
    assert read_all(second)[0] == [0, 1]


def test_delete_and_a_simulated_crash_release_the_directory(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    log.append(batch([b"a"]))
    crash(log)
    again = PartitionLog(tmp_path, clock=clock)
    assert again.log_end_offset == 1
    again.delete()
    assert PartitionLog(tmp_path, clock=clock).log_end_offset == 0


def test_an_abandoned_log_frees_the_directory_when_collected(tmp_path, clock):
    PartitionLog(tmp_path, clock=clock).append(batch([b"a"]))  # never closed, dropped at once
    gc.collect()
    assert PartitionLog(tmp_path, clock=clock).log_end_offset == 1


def test_a_failed_open_releases_the_lock(tmp_path, clock):
    (tmp_path / "00000000000000000000.arrows").write_bytes(b"not this topic's schema" * 200)
    with pytest.raises(LogOpenError, match="schema"):
        PartitionLog(tmp_path, clock=clock)
    (tmp_path / "00000000000000000000.arrows").unlink()
    assert PartitionLog(tmp_path, clock=clock).log_end_offset == 0


def test_an_owner_in_another_process_holds_it_until_that_process_dies(tmp_path, clock):
    owner = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys, time\n"
         f"fd = os.open({str(tmp_path / '.lock')!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
         "os.write(fd, b'%d' % os.getpid())\n"
         "print('locked', flush=True)\n"
         "time.sleep(60)\n"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert owner.stdout.readline().strip() == "locked"
        with pytest.raises(LogDirLockedError, match=rf"pid {owner.pid}\)"):
            PartitionLog(tmp_path, clock=clock)
    finally:
        owner.kill()  # like a partition actor's process dying: the kernel drops its flock
        owner.wait(10)
    assert PartitionLog(tmp_path, clock=clock).log_end_offset == 0
