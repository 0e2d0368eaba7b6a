"""Crash recovery, the way Kafka's LogTest checks it: tear and corrupt files, reopen, check."""

import os
import random

import pytest

from rayka.config import TopicConfig
from rayka.errors import CorruptRecordError
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, decode, read_all


def fill(path, clock, n_batches=10, per=3, **cfg):
    log = PartitionLog(path, config=TopicConfig(**cfg), clock=clock)
    ends = []
    for i in range(n_batches):
        log.append(batch([b"b%d-%d" % (i, j) for j in range(per)]))
        ends.append(_active(path).stat().st_size)
    return log, ends


def _active(path):
    return sorted(path.glob("*.arrows"))[-1]


def test_clean_close_and_reopen_keeps_everything(tmp_path, clock):
    log, _ = fill(tmp_path, clock)
    log.close()
    assert (tmp_path / ".clean_shutdown").exists()
    again = PartitionLog(tmp_path, clock=clock)
    assert not (tmp_path / ".clean_shutdown").exists()
    assert read_all(again)[0] == list(range(30))
    assert again.append(batch([b"next"])).base_offset == 30


def test_reopen_without_close_keeps_every_batch(tmp_path, clock):
    fill(tmp_path, clock)  # dropped, never closed: like a killed process
    again = PartitionLog(tmp_path, clock=clock)
    assert read_all(again)[0] == list(range(30)) and again.truncated_bytes == 0


def test_torn_tail_at_every_position_of_the_last_batch_keeps_the_whole_ones(tmp_path, clock):
    _, ends = fill(tmp_path / "src", clock)
    data = _active(tmp_path / "src").read_bytes()
    last_start, last_end = ends[-2], ends[-1]
    for cut in range(last_start + 1, last_end, max(1, (last_end - last_start) // 23)):
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / _active(tmp_path / "src").name).write_bytes(data[:cut])
        log = PartitionLog(d, clock=clock)
        assert log.log_end_offset == 27, cut
        assert log.truncated_bytes == cut - last_start
        assert _active(d).stat().st_size == last_start
        assert log.append(batch([b"after"])).base_offset == 27
        assert read_all(log)[1][-1] == b"after"


def test_garbage_at_a_random_position_truncates_at_that_batch(tmp_path, clock):
    rng = random.Random(7)
    _, ends = fill(tmp_path, clock, n_batches=12)
    seg = _active(tmp_path)
    starts = [ends[0] - (ends[1] - ends[0])] + ends[:-1]  # approximate start of batch 0 is unused
    victim = rng.randrange(3, 11)
    pos = rng.randrange(ends[victim - 1] + 8, ends[victim] - 8)
    with open(seg, "r+b") as f:
        f.seek(pos)
        f.write(bytes(rng.randrange(256) for _ in range(6)))
    log = PartitionLog(tmp_path, clock=clock)
    assert log.log_end_offset == victim * 3, (victim, pos)
    assert seg.stat().st_size == ends[victim - 1]
    assert read_all(log)[0] == list(range(victim * 3))
    del starts


def test_corrupt_byte_in_a_sealed_segment_is_never_served(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096), clock=clock)
    for i in range(40):
        log.append(batch([b"z" * 200]))
    log.close()
    sealed = sorted(tmp_path.glob("*.arrows"))[0]
    size = sealed.stat().st_size
    with open(sealed, "r+b") as f:
        f.seek(size - 40)  # inside the last batch's body
        byte = f.read(1)
        f.seek(size - 40)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096), clock=clock)
    base_of_second = int(sorted(tmp_path.glob("*.arrows"))[1].stem)
    with pytest.raises(CorruptRecordError, match="checksum"):
        again.read(base_of_second - 1)
    assert again.read(base_of_second).records > 0  # other segments still read
    assert again.read(0, max_records=1).records >= 1  # earlier, intact batches too


@pytest.mark.parametrize("damage", ["delete", "garbage"])
def test_damaged_index_files_are_rebuilt(tmp_path, clock, damage):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096, index_interval_bytes=256), clock=clock)
    for i in range(60):
        log.append(batch([b"i%d" % i]))
    log.close()
    for idx in tmp_path.glob("*.index"):
        if damage == "delete":
            idx.unlink()
        else:
            idx.write_bytes(os.urandom(13))
    again = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096, index_interval_bytes=256), clock=clock)
    assert read_all(again)[0] == list(range(60))
    assert again.read(33, max_records=1).records >= 1


def test_a_torn_sealed_segment_keeps_the_later_segments_and_its_hole_raises(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096), clock=clock)
    for i in range(40):
        log.append(batch([b"q" * 200]))
    log.close()
    first, second = sorted(tmp_path.glob("*.arrows"))[:2]
    for idx in tmp_path.glob(first.stem + ".*index"):
        idx.unlink()  # force a full scan of the damaged segment
    with open(first, "r+b") as f:
        f.truncate(first.stat().st_size - 10)  # its last batch is torn
    again = PartitionLog(tmp_path, config=TopicConfig(segment_bytes=4096), clock=clock)
    hole = int(second.stem) - 1
    assert again.log_end_offset == 40 and again.truncated_bytes == 0
    with pytest.raises(CorruptRecordError, match=f"{hole}..{hole}"):
        again.read(hole)
    assert decode(again.read(0, max_records=1000))[0] == list(range(hole))  # stops at the hole
    assert read_all(again, hole + 1)[0] == list(range(hole + 1, 40))  # after it: everything
    assert again.append(batch([b"new"])).base_offset == 40
