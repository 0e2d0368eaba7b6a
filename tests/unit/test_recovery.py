"""Crash recovery, the way Kafka's LogTest checks it: tear and corrupt files, reopen, check."""

import os
import random

import pytest

from rayka.config import TopicConfig
from rayka.errors import CorruptRecordError, OutOfOrderSequenceError
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, crash, decode, flip_byte, read_all, read_around_damage, spans


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
    crash(fill(tmp_path, clock)[0])  # never closed: like a killed process
    again = PartitionLog(tmp_path, clock=clock)
    assert read_all(again)[0] == list(range(30)) and again.truncated_bytes == 0


def test_torn_tail_at_every_position_of_the_last_batch_keeps_the_whole_ones(tmp_path, clock):
    log, ends = fill(tmp_path / "src", clock)
    crash(log)
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


ORIGINAL = {o: b"b%d-%d" % (o // 3, o % 3) for o in range(36)}  # what fill() writes, 12 batches


def test_garbage_at_a_random_position_of_a_middle_batch_is_never_served(tmp_path, clock):
    """Kafka's testRecoveryWithCorruptMessage: garbage somewhere in a batch, crash, reopen. No
    altered record is ever served, and since whole batches follow it, whatever the garbage hit
    (framing, metadata, header or body) the damaged batch becomes a hole and every other batch
    stays: nothing is truncated and no offset is reused."""
    rng = random.Random(7)
    for trial in range(24):
        d = tmp_path / f"t{trial}"
        log, _ = fill(d, clock, n_batches=12)
        crash(log)
        seg = _active(d)
        victim = rng.randrange(3, 11)
        pos, size, first, nxt = spans(seg)[victim]
        at = rng.randrange(pos, pos + size - 6)
        with open(seg, "r+b") as f:
            f.seek(at)
            f.write(bytes(rng.randrange(256) for _ in range(6)))
        again = PartitionLog(d, clock=clock)
        got, holes = read_around_damage(again)
        assert all(ORIGINAL[o] == v for o, v in got.items()), (trial, at)
        assert again.truncated_bytes == 0, (trial, at)
        assert holes == again.damaged_offsets == [(first, nxt - 1)], (trial, at)
        assert set(got) == set(range(36)) - set(range(first, nxt)) and again.log_end_offset == 36
        assert again.append(batch([b"after"])).base_offset == 36
        again.close()


def test_a_corrupt_batch_early_in_the_active_segment_keeps_every_later_batch(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    for i in range(20):
        log.append(batch([b"r%d" % (i * 10 + j) for j in range(10)]))
    crash(log)
    seg = _active(tmp_path)
    pos, size, _, _ = spans(seg)[0]
    flip_byte(seg, pos + size - 20)  # inside batch 0's body
    for reopen in ("unclean", "clean", "unclean again"):
        again = PartitionLog(tmp_path, clock=clock)
        assert again.truncated_bytes == 0 and again.log_end_offset == 200 + (reopen != "unclean")
        with pytest.raises(CorruptRecordError, match=r"offsets 0\.\.9 .*checksum.*seek to 10"):
            again.read(0)
        with pytest.raises(CorruptRecordError, match=r"offsets 0\.\.9"):
            again.read(7)
        assert read_all(again, 10)[1][:190] == [b"r%d" % o for o in range(10, 200)]
        if reopen == "unclean":
            assert again.damaged_offsets == [(0, 9)]
            assert again.append(batch([b"new"])).base_offset == 200  # offsets are never reused
        if reopen == "clean":
            again.close()
        else:
            crash(again)


def test_a_read_stops_before_a_hole_and_the_next_read_names_it(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    for i in range(10):
        log.append(batch([b"x%d" % i] * 3))
    log.close()
    seg = _active(tmp_path)
    pos, size, _, _ = spans(seg)[4]
    flip_byte(seg, pos + size - 9)
    again = PartitionLog(tmp_path, clock=clock)
    before = again.read(0)
    assert decode(before)[0] == list(range(12)) and before.next_offset == 12
    with pytest.raises(CorruptRecordError, match=r"offsets 12\.\.14 .*seek to 15"):
        again.read(12)
    assert decode(again.read(15))[0] == list(range(15, 30))


def test_framing_damage_in_a_middle_batch_keeps_every_batch_after_it(tmp_path, clock):
    log, _ = fill(tmp_path, clock)
    crash(log)
    seg = _active(tmp_path)
    pos = spans(seg)[5][0]
    with open(seg, "r+b") as f:
        f.seek(pos)
        f.write(b"\0\0\0\0")  # the IPC continuation marker: batch 5's framing no longer says where 6 starts
    again = PartitionLog(tmp_path, clock=clock)
    assert again.log_end_offset == 30 and again.truncated_bytes == 0 and again.damaged_offsets == [(15, 17)]
    got, holes = read_around_damage(again)
    assert got == {o: v for o, v in ORIGINAL.items() if o < 30 and not 15 <= o <= 17} and holes == [(15, 17)]
    assert again.append(batch([b"after"])).base_offset == 30


def test_a_bit_flip_in_the_complete_last_batch_is_kept_as_a_hole(tmp_path, clock):
    """The file ends exactly where the last batch's framing says it does: the write completed,
    so the batch may have been acknowledged. Its offsets are never given to a new record."""
    log, ends = fill(tmp_path, clock)
    crash(log)
    flip_byte(_active(tmp_path), ends[-1] - 9)
    for reopen in ("unclean", "unclean again"):
        again = PartitionLog(tmp_path, clock=clock)
        assert again.truncated_bytes == 0 and again.damaged_offsets == [(27, 29)]
        assert again.log_end_offset == 30 + (reopen != "unclean")
        assert decode(again.read(0))[0] == list(range(27))  # stops before the hole
        with pytest.raises(CorruptRecordError, match=r"offsets 27\.\.29 .*seek to 30"):
            again.read(27)
        if reopen == "unclean":
            assert again.append(batch([b"new"])).base_offset == 30
        assert decode(again.read(30))[1] == [b"new"]
        crash(again)


@pytest.mark.parametrize("shutdown", ["clean", "unclean"])
def test_a_flipped_byte_in_the_first_batch_of_a_sealed_segment_is_never_served(tmp_path, clock, shutdown):
    cfg = TopicConfig(segment_bytes=8192, index_interval_bytes=512)
    log = PartitionLog(tmp_path, config=cfg, clock=clock)
    for i in range(60):
        log.append(batch([b"s%d" % i + b"z" * 200]))
    assert log.segment_count > 2
    if shutdown == "clean":
        log.close()
    else:
        crash(log)
    sealed = sorted(tmp_path.glob("*.arrows"))[1]
    base = int(sealed.stem)
    pos, size, _, _ = spans(sealed)[0]
    flip_byte(sealed, pos + size - 30)
    again = PartitionLog(tmp_path, config=cfg, clock=clock)
    with pytest.raises(CorruptRecordError, match=rf"offsets {base}\.\.{base} .*seek to {base + 1}"):
        again.read(base)
    assert decode(again.read(base - 3))[1] == [b"s%d" % o + b"z" * 200 for o in range(base - 3, base)]
    assert read_all(again, base + 1)[1] == [b"s%d" % o + b"z" * 200 for o in range(base + 1, 60)]


def test_a_flipped_byte_in_the_first_batch_of_a_cleanly_closed_active_segment_is_never_served(tmp_path, clock):
    cfg = TopicConfig(index_interval_bytes=512)
    log = PartitionLog(tmp_path, config=cfg, clock=clock)
    for i in range(30):
        log.append(batch([b"a%d" % i] * 2))
    log.close()
    seg = _active(tmp_path)
    assert len(spans(seg)) == 30 and (tmp_path / ".clean_shutdown").exists()
    pos, size, _, _ = spans(seg)[0]
    flip_byte(seg, pos + size - 12)
    again = PartitionLog(tmp_path, config=cfg, clock=clock)
    with pytest.raises(CorruptRecordError, match=r"offsets 0\.\.1 .*seek to 2"):
        again.read(0, max_records=1)
    assert read_all(again, 2)[0] == list(range(2, 60))


def test_checksums_are_checked_once_per_batch_not_once_per_read(tmp_path, clock, monkeypatch):
    from rayka.partitions import codec

    log = PartitionLog(tmp_path, config=TopicConfig(index_interval_bytes=512), clock=clock)
    for i in range(50):
        log.append(batch([b"c%d" % i] * 4))
    log.close()
    again = PartitionLog(tmp_path, config=TopicConfig(index_interval_bytes=512), clock=clock)
    checked = []
    real = codec.Message.verify
    monkeypatch.setattr(codec.Message, "verify", lambda m: (checked.append(m.position), real(m))[1])
    read_all(again)
    first_pass = len(checked)
    # Each batch once at most; the few after the last index entry were checked at open already.
    assert len(set(checked)) == first_pass <= 50
    read_all(again)
    read_all(again, 101)
    assert len(checked) == first_pass


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


def test_offset_for_time_steps_over_a_hole(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    for i in range(10):
        log.append(batch([b"t%d" % i] * 3, start_ts=1000 + 3 * i))
    log.close()
    seg = _active(tmp_path)
    pos, size, _, _ = spans(seg)[4]  # offsets and timestamps 12..14
    flip_byte(seg, pos + size - 9)
    again = PartitionLog(tmp_path, clock=clock)
    assert again.offset_for_time(1011) == 11
    assert again.offset_for_time(1013) == 15  # its timestamps are unknown: the next readable one
    assert again.offset_for_time(1020) == 20


@pytest.mark.parametrize("snapshot", ["stale", "missing"])
def test_a_corrupt_producer_header_past_the_snapshot_is_not_trusted(tmp_path, clock, snapshot):
    """Producer state is rebuilt at open from the headers of batches past the snapshot. A header
    whose seq= was altered on disk (a sealed segment, not scanned at a clean open) must fail its CRC
    and count for nothing: the batch is a hole, and a producer re-sending the altered number is not
    answered with the damaged batch's offsets."""
    log = PartitionLog(tmp_path, clock=clock)
    for seq in range(3):
        log.append(batch([b"p%d" % seq]), producer_id="p", sequence=seq)
    log.roll()
    stale = (tmp_path / "producer_state.json").read_bytes()  # complete below offset 3
    for seq in range(3, 6):
        log.append(batch([b"p%d" % seq]), producer_id="p", sequence=seq)
    log.append(batch([b"plain"]))  # so the damaged batch has a valid one after it
    log.roll()
    log.close()
    if snapshot == "stale":  # a snapshot rename lost in a crash: the loader scans from offset 3
        (tmp_path / "producer_state.json").write_bytes(stale)
    else:
        (tmp_path / "producer_state.json").unlink()
    sealed = sorted(tmp_path.glob("*.arrows"))[1]
    pos, size, base, _ = spans(sealed)[2]
    assert base == 5
    data = bytearray(sealed.read_bytes())
    at = data.index(b";seq=5", pos, pos + size)
    data[at + 5] = ord("6")  # the header still parses, with seq=6
    sealed.write_bytes(bytes(data))

    again = PartitionLog(tmp_path, clock=clock)
    assert again.log_end_offset == 7 and again.damaged_offsets == [(5, 5)]
    with pytest.raises(CorruptRecordError, match=r"offsets 5\.\.5 .*seek to 6"):
        again.read(5)
    assert decode(again.read(6))[1] == [b"plain"]
    with pytest.raises(OutOfOrderSequenceError):  # not a "duplicate" of the damaged batch 5
        again.append(batch([b"p6"]), producer_id="p", sequence=6)
    assert again.append(batch([b"p4"]), producer_id="p", sequence=4).duplicate
    assert again.append(batch([b"p5"]), producer_id="p", sequence=5).base_offset == 7
