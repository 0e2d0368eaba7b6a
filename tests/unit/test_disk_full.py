"""A full or failing disk under a PartitionLog: nothing acknowledged lost or wrong, nothing failed visible.

Faults are injected into the write path (tests/unit/fault_injection.py: partial writes, then
ENOSPC; EIO from fsync; a failing ftruncate), and every test ends with a Jepsen-style check:
unique values, the offset recorded at each acknowledgement, everything read back at exactly
that offset, offsets dense, no value of a failed append anywhere, and the same again after
reopening the directory (after a crash and after a clean close).
"""

import errno
import random

import pytest

from rayka.config import TopicConfig
from rayka.errors import DiskFullError, LogWriteError
from rayka.partitions.log import PartitionLog

from fault_injection import FullDisk
from storage_helpers import batch, crash, decode, read_all


class History:
    """What a producer was told: the value at each acknowledged offset, and the failed values."""

    def __init__(self):
        self.acked: dict[int, bytes] = {}
        self.failed: set[bytes] = set()

    def ack(self, result, values):
        assert result.base_offset == len(self.acked), "offsets must stay dense"
        for i, v in enumerate(values):
            self.acked[result.base_offset + i] = v

    def check(self, log):
        offsets, values = read_all(log)
        assert offsets == list(range(len(self.acked)))
        assert dict(zip(offsets, values)) == self.acked
        assert len(set(values)) == len(values)
        assert not self.failed & set(values)
        assert log.log_end_offset == len(self.acked)
        for offset in random.Random(len(self.acked)).sample(sorted(self.acked), min(50, len(self.acked))):
            got_o, got_v = decode(log.read(offset, max_records=1), offset, 1)
            assert (got_o, got_v) == ([offset], [self.acked[offset]])


def _values(i, rng):
    return [f"b{i}-r{j}-".encode() + bytes(rng.randrange(0, 300)) for j in range(rng.randrange(1, 25))]


def _reopen_and_check(tmp_path, config, clock, log, history):
    crash(log)  # unclean: the active segment is recovered from its bytes
    again = PartitionLog(tmp_path, config=config, clock=clock)
    history.check(again)
    again.close()
    clean = PartitionLog(tmp_path, config=config, clock=clock)
    history.check(clean)
    clean.close()


@pytest.mark.parametrize("policy", ["interval", "batch"])
def test_enospc_mid_write_keeps_every_ack_and_no_failed_batch(tmp_path, clock, monkeypatch, policy):
    config = TopicConfig(segment_bytes=24 * 1024, index_interval_bytes=1024, flush_policy=policy)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    rng = random.Random(11)
    history = History()
    epoch, seq, failures, retried = 0, 0, 0, 0
    batches = 400 if policy == "interval" else 200  # "batch" fsyncs each one: keep it quick
    for i in range(batches):
        values = _values(i, rng)
        pid = f"p.{epoch}"
        if i % 5 == 2:
            disk.free = rng.randrange(0, 2 * sum(map(len, values)))  # fills during the write or roll
        try:
            result = log.append(batch(values), producer_id=pid, sequence=seq)
        except DiskFullError as exc:
            failures += 1
            assert exc.retriable and str(tmp_path) in str(exc) and exc.path == str(tmp_path)
            assert exc.errno == errno.ENOSPC and exc.free_bytes >= 0 and "bytes free" in str(exc)
            disk.restore()  # space returns
            if i % 2:
                # Given up, as a producer past delivery_timeout_ms does: its values must never
                # show, and the producer goes on under a new id (a new epoch).
                history.failed.update(values)
                epoch, seq = epoch + 1, 0
                continue
            result = log.append(batch(values), producer_id=pid, sequence=seq)  # the same batch again
            assert not result.duplicate  # nothing of the failed attempt was kept
            retried += 1
        history.ack(result, values)
        again = log.append(batch(values), producer_id=pid, sequence=seq)  # an unsure client re-sends
        assert again.duplicate and again.base_offset == result.base_offset
        seq += 1
        disk.restore()
        if i % 50 == 0:
            clock.advance(10_000)
            log.tick()
    assert failures >= batches // 10 and retried >= batches // 20 and disk.failures >= failures
    assert log.segment_count > 3
    history.check(log)
    _reopen_and_check(tmp_path, config, clock, log, history)


def _fill_to_roll(log, history, config):
    """Append until the next batch of ~1 KiB will roll the active segment."""
    i = 0
    while log._segments[-1].size + 2048 < config.segment_bytes:
        values = [f"fill-{i}-".encode() + bytes(900)]
        history.ack(log.append(batch(values)), values)
        i += 1


def _segment_files(path):
    return sorted(p.name for p in path.iterdir() if p.suffix in (".arrows", ".index", ".timeindex"))


@pytest.mark.parametrize("free", [0, 7, 300, 600])
def test_a_roll_that_cannot_create_the_new_segment_changes_nothing(tmp_path, clock, monkeypatch, free):
    config = TopicConfig(segment_bytes=16 * 1024, index_interval_bytes=512, flush_ms=1)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    _fill_to_roll(log, history, config)
    clock.advance(10)
    log.tick()  # writes the pending index entries: the roll has only the new segment to write
    files, segments, end = _segment_files(tmp_path), log.segment_count, log.log_end_offset
    # Too little room for the new segment's schema message (472 bytes), or room for it and
    # none for the batch after it.
    disk.free = free
    values = [b"rolls-" + bytes(4000)]
    with pytest.raises(DiskFullError):
        log.append(batch(values))
    assert disk.failures == 1 and log.log_end_offset == end
    if free < len(log._schema_bytes):  # the roll failed: no new file left behind
        assert log.segment_count == segments and _segment_files(tmp_path) == files
    else:  # the roll worked, the batch in the new segment failed: that segment is empty
        active = log._segments[-1]
        assert log.segment_count == segments + 1
        assert active.is_empty and active.size == active.path.stat().st_size
    assert not list(tmp_path.glob("*.tmp"))
    history.failed.update(values)
    disk.restore()
    rolled = log.segment_count - segments
    values = [b"small"]  # fits the segment that stayed active: no roll needed to take it
    history.ack(log.append(batch(values)), values)
    assert log.segment_count == segments + rolled
    values = [b"after-" + bytes(4000)]
    history.ack(log.append(batch(values)), values)
    assert log.segment_count == segments + 1
    history.check(log)
    _reopen_and_check(tmp_path, config, clock, log, history)


def test_a_failed_fsync_under_batch_policy_undoes_the_write(tmp_path, clock, monkeypatch):
    config = TopicConfig(flush_policy="batch")
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    for i in range(5):
        values = [f"ok-{i}".encode()]
        history.ack(log.append(batch(values), producer_id="p", sequence=i), values)
    size = log._segments[-1].path.stat().st_size
    disk.fsync_errno = errno.EIO
    values = [b"synced-or-not"]
    with pytest.raises(LogWriteError) as info:
        log.append(batch(values), producer_id="p", sequence=5)
    assert type(info.value) is LogWriteError and info.value.retriable and info.value.errno == errno.EIO
    assert log._segments[-1].path.stat().st_size == size
    disk.restore()
    result = log.append(batch(values), producer_id="p", sequence=5)
    assert not result.duplicate
    history.ack(result, values)
    history.check(log)
    _reopen_and_check(tmp_path, config, clock, log, history)


def test_a_cut_that_fails_too_is_redone_before_the_next_write(tmp_path, clock, monkeypatch):
    config = TopicConfig(index_interval_bytes=256)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    for i in range(20):
        values = [f"ok-{i}-".encode() + bytes(100)]
        history.ack(log.append(batch(values)), values)
    disk.free, disk.truncate_errno = 50, errno.EIO
    values = [b"torn-" + bytes(500)]
    with pytest.raises(DiskFullError):
        log.append(batch(values))
    history.failed.update(values)
    active = log._segments[-1]
    assert active.path.stat().st_size == active.size + 50  # the partial bytes are still there
    history.check(log)  # and never served
    disk.restore()
    values = [b"next-" + bytes(500)]
    history.ack(log.append(batch(values)), values)
    assert active.path.stat().st_size == active.size
    history.check(log)
    _reopen_and_check(tmp_path, config, clock, log, history)


def test_index_writes_on_a_full_disk_leave_whole_entries_and_catch_up(tmp_path, clock, monkeypatch):
    config = TopicConfig(index_interval_bytes=64, flush_ms=1)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    for i in range(30):
        values = [f"ok-{i}-".encode() + bytes(100)]
        history.ack(log.append(batch(values)), values)
    active = log._segments[-1]
    disk.free = 24  # one and a half index entries
    clock.advance(10)
    log.tick()  # the interval flush writes index entries: it fails, the tick goes on
    assert active.offset_index.path.stat().st_size % 16 == 0
    assert active.time_index.path.stat().st_size % 16 == 0
    disk.restore()
    clock.advance(10)
    log.tick()
    assert active.offset_index.path.stat().st_size == 16 * len(active.offset_index)
    history.check(log)
    _reopen_and_check(tmp_path, config, clock, log, history)


def test_a_roll_on_a_full_disk_fails_whole_and_close_stays_recoverable(tmp_path, clock, monkeypatch):
    config = TopicConfig(segment_bytes=8 * 1024)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    for i in range(40):
        values = [f"ok-{i}-".encode() + bytes(500)]
        history.ack(log.append(batch(values), producer_id="p", sequence=i), values)
    segments = log.segment_count
    disk.free = 0
    with pytest.raises(DiskFullError):
        log.roll()  # the pending index entries cannot be written
    assert log.segment_count == segments and not list(tmp_path.glob("*.tmp"))
    log.close()  # cannot write its indexes either: it closes without the clean marker
    assert not (tmp_path / ".clean_shutdown").exists()
    disk.restore()
    reopened = PartitionLog(tmp_path, config=config, clock=clock)
    history.check(reopened)
    assert reopened.append(batch([b"x"]), producer_id="p", sequence=39).duplicate  # producer state kept
    reopened.close()


def test_a_producer_snapshot_that_cannot_be_written_leaves_no_temp_file(tmp_path, clock, monkeypatch):
    config = TopicConfig(flush_ms=1)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    for i in range(10):
        values = [f"ok-{i}".encode()]
        history.ack(log.append(batch(values), producer_id="p", sequence=i), values)
    clock.advance(10)
    log.tick()  # index entries written: the roll has only the new segment and the snapshot to write
    disk.free = len(log._schema_bytes)  # room for the new segment, none for the snapshot
    log.roll()  # the snapshot is an optimisation: the roll goes on without it
    assert log.segment_count == 2 and disk.failures == 1
    assert not list(tmp_path.glob("*.tmp"))
    disk.restore()
    values = [b"after"]
    history.ack(log.append(batch(values), producer_id="p", sequence=10), values)
    crash(log)
    reopened = PartitionLog(tmp_path, config=config, clock=clock)
    history.check(reopened)
    assert reopened.append(batch([b"x"]), producer_id="p", sequence=10).duplicate  # rebuilt from headers
    reopened.close()


@pytest.mark.parametrize("clean", [False, True])
def test_a_log_reopens_on_a_full_disk_serves_everything_and_refuses_writes_clearly(
        tmp_path, clock, monkeypatch, clean):
    config = TopicConfig(segment_bytes=8 * 1024, index_interval_bytes=512)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    for i in range(60):
        values = [f"ok-{i}-".encode() + bytes(300)]
        history.ack(log.append(batch(values), producer_id="p", sequence=i), values)
    log.close() if clean else crash(log)
    disk.free = 0  # a restart on a disk that is still full
    again = PartitionLog(tmp_path, config=config, clock=clock)
    history.check(again)
    values = [b"while-full"]
    with pytest.raises(DiskFullError):
        again.append(batch(values), producer_id="p", sequence=60)
    history.check(again)
    disk.restore()
    history.ack(again.append(batch(values), producer_id="p", sequence=60), values)
    history.check(again)
    _reopen_and_check(tmp_path, config, clock, again, history)


def test_creating_a_log_on_a_full_disk_raises_disk_full_and_leaves_it_openable(tmp_path, clock, monkeypatch):
    disk = FullDisk(monkeypatch, tmp_path)
    disk.free = 0
    with pytest.raises(DiskFullError) as info:
        PartitionLog(tmp_path / "p", clock=clock)
    assert "opening partition log" in str(info.value) and str(tmp_path / "p") in str(info.value)
    assert not list((tmp_path / "p").glob("*.arrows"))
    disk.restore()
    log = PartitionLog(tmp_path / "p", clock=clock)  # the directory lock was released
    history = History()
    history.ack(log.append(batch([b"a"])), [b"a"])
    history.check(log)
    log.close()


def test_write_errors_say_what_failed_and_cross_process_boundaries_whole():
    import pickle

    full = LogWriteError.from_os_error(OSError(errno.ENOSPC, "No space left on device"), "/nowhere/t/0",
                                       "appending offsets 5..9 to partition log /nowhere/t/0")
    assert type(full) is DiskFullError and full.retriable and full.errno == errno.ENOSPC
    assert full.free_bytes >= 0  # measured on the nearest existing parent ("/")
    assert "/nowhere/t/0 is full" in str(full) and "bytes free" in str(full)
    quota = LogWriteError.from_os_error(OSError(errno.EDQUOT, "Disk quota exceeded"), "/x", "writing")
    assert type(quota) is DiskFullError
    eio = LogWriteError.from_os_error(OSError(errno.EIO, "Input/output error"), "/x", "writing")
    assert type(eio) is LogWriteError and eio.retriable
    for err in (full, eio):
        back = pickle.loads(pickle.dumps(err))
        assert (type(back), str(back), back.path, back.errno, back.free_bytes) == (
            type(err), str(err), err.path, err.errno, err.free_bytes)


def test_an_append_that_lands_anywhere_but_the_log_end_is_undone(tmp_path, clock):
    config = TopicConfig()
    log = PartitionLog(tmp_path, config=config, clock=clock)
    history = History()
    for i in range(5):
        values = [f"ok-{i}".encode()]
        history.ack(log.append(batch(values)), values)
    with open(next(tmp_path.glob("*.arrows")), "ab") as f:
        f.write(b"\xff" * 10)  # the file no longer ends where the log does
    values = [b"misplaced"]
    with pytest.raises(LogWriteError) as info:
        log.append(batch(values))  # it would land 10 bytes late, where no read would find it
    assert info.value.errno == errno.EIO and "ends at byte" in str(info.value)
    history.failed.update(values)
    history.check(log)
    values = [b"after"]
    history.ack(log.append(batch(values)), values)
    history.check(log)
    _reopen_and_check(tmp_path, config, clock, log, history)


def test_retention_frees_space_on_a_full_disk_even_when_the_roll_it_wants_fails(tmp_path, clock, monkeypatch):
    config = TopicConfig(segment_bytes=4096, retention_ms=60_000)
    disk = FullDisk(monkeypatch, tmp_path)
    log = PartitionLog(tmp_path, config=config, clock=clock)
    acked = {}
    for i in range(40):
        values = [f"old-{i}-".encode() + bytes(400)]
        acked[log.append(batch(values)).base_offset] = values[0]
    sealed = log.segment_count - 1
    assert sealed >= 3
    clock.advance(120_000)  # every record is past retention, the active segment's too
    disk.free = 0
    log.tick()  # rolling the expired active segment fails; the sealed ones go all the same
    assert disk.failures >= 1 and log.segment_count == 1
    assert not list(tmp_path.glob("*.tmp"))
    start = log.log_start_offset
    offsets, values = read_all(log)
    assert offsets == list(range(start, len(acked))) and values == [acked[o] for o in offsets]
    disk.restore()
    log.tick()  # now the roll works, and the expired segment goes too
    assert log.log_start_offset == log.log_end_offset == len(acked)
    assert log.append(batch([b"new"])).base_offset == len(acked)
    log.close()
