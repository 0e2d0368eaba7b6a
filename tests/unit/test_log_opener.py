"""A partition log that cannot open: a failed state answering with one clear error, retried at a
bounded rate, and back by itself once the files are fixed (what the partition actor relies on
instead of a restart loop)."""

import logging
import pickle

import pytest

from rayka.clock import ManualClock
from rayka.errors import LogDirLockedError, LogOpenError
from rayka.partitions.log import PartitionLog
from rayka.partitions.log_opener import LogOpener

from storage_helpers import batch


def test_a_log_that_cannot_open_answers_with_one_clear_error_and_reopens_once_fixed(tmp_path, clock, caplog):
    good = tmp_path / "good"
    with PartitionLog(good, clock=clock) as log:
        log.append(batch([b"a", b"b"]))
    segment = next(good.glob("*.arrows"))
    data = segment.read_bytes()
    segment.write_bytes(b"\x07" * len(data))
    attempts = []

    def open_log():
        attempts.append(1)
        return PartitionLog(good, clock=clock)

    ticks = ManualClock()
    with caplog.at_level(logging.ERROR, logger="rayka.partitions.log_opener"):
        opener = LogOpener(open_log, directory=str(good), retry_interval_s=5.0, clock=ticks)
        errors = []
        for _ in range(3):
            with pytest.raises(LogOpenError) as info:
                opener.ready()
            errors.append(info.value)
        ticks.advance(5_000)
        with pytest.raises(LogOpenError):
            opener.ready()  # tried again: the files are still bad
    assert len(attempts) == 2  # at open, then once the interval passed; not once per call
    err = errors[0]
    assert all(e is err for e in errors) and err.__traceback__ is not None
    assert str(good) in str(err) and segment.name in str(err) and "move the damaged file aside" in str(err).lower()
    assert err.directory == str(good) and "schema" in err.cause
    assert len([r for r in caplog.records if "cannot be opened" in r.getMessage()]) == 1  # logged once
    again = pickle.loads(pickle.dumps(err))  # as Ray ships it to the caller
    assert (str(again), again.directory, again.cause) == (str(err), err.directory, err.cause)

    segment.write_bytes(data)  # fixed
    with pytest.raises(LogOpenError):
        opener.ready()  # not before the interval
    ticks.advance(5_000)
    log = opener.ready()
    assert log.read(0).records == 2 and len(attempts) == 3
    assert opener.ready() is log and opener.error is None
    log.close()


def test_a_stopped_opener_does_not_reopen(tmp_path, clock):
    (tmp_path / "00000000000000000000.arrows").write_bytes(b"\x01" * 4000)
    ticks = ManualClock()
    opener = LogOpener(lambda: PartitionLog(tmp_path, clock=clock), directory=str(tmp_path), clock=ticks)
    opener.stop()
    (tmp_path / "00000000000000000000.arrows").unlink()
    ticks.advance(60_000)
    with pytest.raises(LogOpenError):
        opener.ready()
    assert opener.log is None


def test_an_unreadable_segment_is_a_log_open_error_naming_it(tmp_path, clock):
    (tmp_path / "00000000000000000000.arrows").mkdir()  # not a file at all
    with pytest.raises(LogOpenError, match=r"00000000000000000000\.arrows.*is a directory") as info:
        PartitionLog(tmp_path, clock=clock)
    assert info.value.directory == str(tmp_path)


def test_a_directory_locked_by_another_log_is_tried_again_soon(tmp_path, clock):
    owner = PartitionLog(tmp_path, clock=clock)
    ticks = ManualClock()
    opener = LogOpener(lambda: PartitionLog(tmp_path, clock=clock), directory=str(tmp_path), clock=ticks)
    with pytest.raises(LogDirLockedError):
        opener.ready()
    owner.close()
    ticks.advance(250)  # not the full interval: the owner may just have been exiting
    assert opener.ready().log_end_offset == 0
    opener.log.close()
