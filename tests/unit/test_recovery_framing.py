"""Damaged framing at open: a torn tail is only a write cut short at the end of the file after a
crash; damage (with whole batches after it, or to the last batch itself) is a hole whose offsets
are never reused; after a clean close nothing is a torn tail. The rule: recovery.py's docstring."""

import random
import shutil

import pytest

from rayka.config import TopicConfig
from rayka.errors import CorruptRecordError

from rayka.partitions.log import PartitionLog

from storage_helpers import batch, crash, decode, read_around_damage, spans

N = 40


def _stopped_log(tmp_path, clock, shutdown):
    """(directory, bytes of the active segment, its name, its batch spans) of N one-record
    batches, stopped by a crash or closed cleanly."""
    src = tmp_path / f"src-{shutdown}"
    log = PartitionLog(src, clock=clock)
    for i in range(N):
        log.append(batch([b"v%03d" % i]))
    if shutdown == "clean":
        log.close()
        assert (src / ".clean_shutdown").exists()
    else:
        crash(log)
    seg = sorted(src.glob("*.arrows"))[-1]
    return src, seg.read_bytes(), seg.name, spans(seg)


@pytest.fixture
def crashed_log(tmp_path, clock):
    return _stopped_log(tmp_path, clock, "crash")[1:]


@pytest.fixture(params=["crash", "clean"])
def stopped_log(request, tmp_path, clock):
    """A log of N one-record batches stopped each way: (shutdown, src, data, segment name, spans)."""
    return (request.param, *_stopped_log(tmp_path, clock, request.param))


def reopen_damaged(tmp_path, clock, crashed_log, name, damage, src=None):
    """A copy of the stopped log (every file of ``src``, or only the segment) with
    ``damage(bytearray)`` applied to its active segment, reopened."""
    data, seg_name, _ = crashed_log
    d = tmp_path / name
    if src is not None:
        shutil.copytree(src, d, ignore=shutil.ignore_patterns(".lock"))
    else:
        d.mkdir()
    damaged = bytearray(data)
    damage(damaged)
    (d / seg_name).write_bytes(bytes(damaged))
    return PartitionLog(d, clock=clock)


def reopen_stopped(tmp_path, clock, stopped_log, name, damage):
    _, src, data, seg_name, batches = stopped_log
    return reopen_damaged(tmp_path, clock, (data, seg_name, batches), name, damage, src=src)


def assert_only_hole(log, first, last, end=N):
    """Every offset outside first..last reads back its value; first..last is one hole; no
    truncation; the next record gets the offset after the old end."""
    got, holes = read_around_damage(log)
    assert log.truncated_bytes == 0
    assert holes == log.damaged_offsets == [(first, last)]
    assert got == {o: b"v%03d" % o for o in range(end) if not first <= o <= last}
    assert log.append(batch([b"after"])).base_offset == end


def assert_last_batch_kept_as_hole(log, where):
    """The last batch (offset N-1) damaged: a hole whose offsets start at N-1 and end at or
    after it; nothing truncated; every other record reads back; the next record gets an offset
    past every one the damaged batch may have held, and reads back."""
    got, holes = read_around_damage(log)
    assert log.truncated_bytes == 0, where
    end = log.log_end_offset
    assert end >= N and holes == log.damaged_offsets == [(N - 1, end - 1)], (where, holes, log.damaged_offsets)
    assert got == {o: b"v%03d" % o for o in range(N - 1)}, where
    assert log.append(batch([b"after"])).base_offset == end, where
    assert decode(log.read(end))[1] == [b"after"], where


FRAMING_DAMAGE = {
    "continuation marker zeroed": lambda d, p: d.__setitem__(slice(p, p + 4), b"\0\0\0\0"),
    "length word zeroed": lambda d, p: d.__setitem__(slice(p + 4, p + 8), b"\0\0\0\0"),
    "length word huge": lambda d, p: d.__setitem__(p + 7, d[p + 7] ^ 0x40),
    "length word one word short": lambda d, p: d.__setitem__(
        slice(p + 4, p + 8), (int.from_bytes(d[p + 4 : p + 8], "little") - 8).to_bytes(4, "little")),
    "length word one word long": lambda d, p: d.__setitem__(
        slice(p + 4, p + 8), (int.from_bytes(d[p + 4 : p + 8], "little") + 8).to_bytes(4, "little")),
    "framing overwritten": lambda d, p: d.__setitem__(slice(p, p + 16), b"\x5a" * 16),
}


@pytest.mark.parametrize("kind", sorted(FRAMING_DAMAGE))
def test_framing_damage_at_every_batch_boundary_keeps_every_whole_batch_after_it(tmp_path, clock, stopped_log,
                                                                                  kind):
    """Every batch, the last one included, after a crash and after a clean close."""
    shutdown, _, _, _, batches = stopped_log
    for i, (pos, _, first, nxt) in enumerate(batches):
        log = reopen_stopped(tmp_path, clock, stopped_log, f"b{i}", lambda d: FRAMING_DAMAGE[kind](d, pos))
        if i < len(batches) - 1:
            assert_only_hole(log, first, nxt - 1)
        else:  # the last batch: its hole may reserve more offsets than it held (never fewer)
            assert_last_batch_kept_as_hole(log, (shutdown, kind))
            if shutdown == "clean":  # the log end recorded at the close makes it exact
                assert log.damaged_offsets == [(first, nxt - 1)]
        log.close()


def test_damage_across_a_batch_boundary_is_one_hole_of_both_batches(tmp_path, clock, stopped_log):
    """The end of batch i-1 and the framing of batch i garbled, for every i, the last included
    (the fuzz-found case: the damage reaches the framing of the last batch)."""
    _, _, _, _, batches = stopped_log
    for i in range(1, N):
        pos = batches[i][0]

        def damage(d):
            d[pos - 4 : pos + 8] = b"\xee" * 12  # the end of batch i-1 and the framing of batch i

        log = reopen_stopped(tmp_path, clock, stopped_log, f"x{i}", damage)
        got, holes = read_around_damage(log)
        assert log.truncated_bytes == 0, i
        end = log.log_end_offset
        last = i if i < N - 1 else end - 1  # the last batch's hole may reserve more than it held
        assert end >= N and holes == log.damaged_offsets == [(i - 1, last)], (i, holes)
        assert got == {o: b"v%03d" % o for o in range(N) if o not in (i - 1, i)}, i
        assert log.append(batch([b"after"])).base_offset == end
        log.close()


def test_random_framing_damage_fuzz_never_truncates_acknowledged_batches(tmp_path, clock, crashed_log):
    """Random bytes at a random place in the framing and metadata of a random batch that has a
    whole batch after it (fixed seed): one hole, that batch's offsets, and nothing else lost."""
    _, _, batches = crashed_log
    rng = random.Random(20261201)
    for trial in range(60):
        i = rng.randrange(0, N - 1)
        pos, size, first, nxt = batches[i]
        at = pos + rng.randrange(0, min(size, 96))
        garbage = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9)))

        def damage(d):
            d[at : at + len(garbage)] = garbage

        log = reopen_damaged(tmp_path, clock, crashed_log, f"f{trial}", damage)
        got, holes = read_around_damage(log)
        if holes:  # garbage equal to the bytes it replaced changes nothing
            assert holes == log.damaged_offsets == [(first, nxt - 1)], (trial, at, garbage)
        assert got == {o: b"v%03d" % o for o in range(N) if o not in range(first, nxt) or not holes}
        assert log.truncated_bytes == 0 and log.log_end_offset == N
        log.close()


def test_the_issue_log_of_300_batches_with_damaged_framing_at_batch_100(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    for i in range(300):
        log.append(batch([b"r%d" % i]))
    crash(log)
    seg = sorted(tmp_path.glob("*.arrows"))[-1]
    pos = spans(seg)[100][0]
    data = bytearray(seg.read_bytes())
    data[pos + 4 : pos + 8] = (10**6).to_bytes(4, "little")  # a length word pointing past the end
    seg.write_bytes(bytes(data))
    again = PartitionLog(tmp_path, clock=clock)
    assert again.truncated_bytes == 0 and again.damaged_offsets == [(100, 100)]
    got, holes = read_around_damage(again)
    assert got == {o: b"r%d" % o for o in range(300) if o != 100} and holes == [(100, 100)]
    assert again.append(batch([b"new"])).base_offset == 300


def test_every_byte_of_the_last_batch_damaged_is_a_hole_never_a_torn_tail(tmp_path, clock, stopped_log):
    """Each byte of the last batch, from its continuation marker to its last body byte, inverted
    in turn, after a crash and after a clean close: its write completed (the file holds all of
    it), so it may have been acknowledged. Its offsets are reserved; nothing is truncated."""
    shutdown, _, _, _, batches = stopped_log
    pos, size, first, _ = batches[-1]
    assert first == N - 1
    for at in range(pos, pos + size):
        log = reopen_stopped(tmp_path, clock, stopped_log, f"l{at}", lambda d: d.__setitem__(at, d[at] ^ 0xFF))
        assert_last_batch_kept_as_hole(log, (shutdown, at - pos))
        log.close()
        shutil.rmtree(tmp_path / f"l{at}")


def test_every_bit_flip_in_the_framing_of_the_last_batch_is_a_hole(tmp_path, clock, stopped_log):
    """The 64 single-bit flips of the last batch's 8 framing bytes (continuation marker and
    length word: the bytes its CRC does not cover)."""
    shutdown, _, _, _, batches = stopped_log
    pos = batches[-1][0]
    for at in range(pos, pos + 8):
        for bit in range(8):
            log = reopen_stopped(tmp_path, clock, stopped_log, f"f{at}-{bit}",
                                 lambda d: d.__setitem__(at, d[at] ^ (1 << bit)))
            assert_last_batch_kept_as_hole(log, (shutdown, at - pos, bit))
            log.close()
            shutil.rmtree(tmp_path / f"f{at}-{bit}")


def test_damage_then_appends_then_a_crash_keeps_every_acknowledged_record(tmp_path, clock, stopped_log):
    """Damage in the last batch, reopen, append, crash, reopen: the hole stays where it was, the
    records appended after it keep their offsets and values (every 7th byte of the batch)."""
    shutdown, _, _, _, batches = stopped_log
    pos, size, _, _ = batches[-1]
    for at in range(pos, pos + size, 7):
        log = reopen_stopped(tmp_path, clock, stopped_log, f"a{at}", lambda d: d.__setitem__(at, d[at] ^ 0xFF))
        hole = log.damaged_offsets
        appended = log.append(batch([b"after1", b"after2"]))
        assert appended.base_offset >= N, (shutdown, at - pos)
        crash(log)
        again = PartitionLog(tmp_path / f"a{at}", clock=clock)
        got, holes = read_around_damage(again)
        assert again.truncated_bytes == 0 and holes == hole, (shutdown, at - pos, holes, hole)
        assert got == {**{o: b"v%03d" % o for o in range(N - 1)},
                       appended.base_offset: b"after1", appended.base_offset + 1: b"after2"}, (shutdown, at - pos)
        assert again.log_end_offset == appended.base_offset + 2
        again.close()
        shutil.rmtree(tmp_path / f"a{at}")


def test_a_last_batch_cut_short_is_a_torn_tail_and_its_offsets_are_reused(tmp_path, clock, crashed_log):
    data, _, batches = crashed_log
    pos, size, first, _ = batches[-1]
    for cut in (pos + 3, pos + 8, pos + 100, pos + size - 1):
        log = reopen_damaged(tmp_path, clock, crashed_log, f"c{cut}", lambda d: d.__delitem__(slice(cut, None)))
        assert log.truncated_bytes == cut - pos and log.damaged_offsets == [] and log.log_end_offset == first
        assert log.append(batch([b"retry"])).base_offset == first  # that append never returned
        log.close()


def test_zeros_after_the_last_batch_are_a_torn_tail(tmp_path, clock, crashed_log):
    """A file extended without its data reaching the disk (a power loss) ends in zeros."""
    log = reopen_damaged(tmp_path, clock, crashed_log, "z", lambda d: d.extend(b"\0" * 5000))
    assert log.truncated_bytes == 5000 and log.damaged_offsets == [] and log.log_end_offset == N
    log.close()


def test_the_leftover_of_a_failed_write_before_the_retried_batch_loses_nothing(tmp_path, clock, crashed_log):
    """A write that failed half way (a full disk) left a prefix of batch 20; the retried batch 20
    follows it. The leftover holds no offset: it is skipped, nothing is reported damaged."""
    data, _, batches = crashed_log
    pos, size, _, _ = batches[20]

    def damage(d):
        d[pos:pos] = data[pos : pos + size // 2]

    log = reopen_damaged(tmp_path, clock, crashed_log, "left", damage)
    got, holes = read_around_damage(log)
    assert got == {o: b"v%03d" % o for o in range(N)} and holes == log.damaged_offsets == []
    assert log.truncated_bytes == 0 and log.append(batch([b"after"])).base_offset == N


@pytest.mark.parametrize("shutdown", ["unclean", "clean"])
def test_a_batch_missing_between_two_valid_ones_is_a_gap_its_offsets_never_reused(tmp_path, clock, crashed_log,
                                                                                   shutdown):
    """Batch 10's bytes gone, batch 11 right after batch 9 (no writer does this, but a copy or
    a file system can): offset 10 is reported missing, everything else reads, nothing is reused."""
    _, _, batches = crashed_log
    pos, size, _, _ = batches[10]
    log = reopen_damaged(tmp_path, clock, crashed_log, "gap", lambda d: d.__delitem__(slice(pos, pos + size)))
    if shutdown == "clean":
        log.close()
        log = PartitionLog(tmp_path / "gap", clock=clock)
    got, holes = read_around_damage(log)
    assert got == {o: b"v%03d" % o for o in range(N) if o != 10} and holes == [(10, 10)]
    if shutdown == "unclean":  # found by recovery (after a clean close, by the first read of it)
        assert log.damaged_offsets == [(10, 10)]
    assert log.truncated_bytes == 0 and log.append(batch([b"after"])).base_offset == N
    with pytest.raises(CorruptRecordError, match=r"offsets 10\.\.10 .*missing.*seek to 11"):
        log.read(10)


def test_framing_damage_in_a_sealed_segment_is_a_hole_found_by_reads(tmp_path, clock):
    """The same policy for sealed segments (not rescanned at open): a read that meets the damage
    scans forward for the next valid batch, wherever the index entries are."""
    src = tmp_path / "src"
    cfg = TopicConfig(segment_bytes=16384, index_interval_bytes=2000)  # an entry every few batches
    log = PartitionLog(src, config=cfg, clock=clock)
    for i in range(60):
        log.append(batch([b"s%03d" % i + b"." * 150]))
    assert log.segment_count >= 3
    log.close()
    sealed = sorted(src.glob("*.arrows"))[1]
    for i, (pos, _, first, nxt) in enumerate(spans(sealed)[:-1]):
        d = tmp_path / f"s{i}"
        shutil.copytree(src, d)
        with open(d / sealed.name, "r+b") as f:
            f.seek(pos + 4)
            f.write(b"\xff\xff\xff\x7f")  # a length word far past the end
        again = PartitionLog(d, config=cfg, clock=clock)
        got, holes = read_around_damage(again)
        assert holes == [(first, nxt - 1)], i
        assert got == {o: b"s%03d" % o + b"." * 150 for o in range(60) if not first <= o < nxt}, i
        assert again.truncated_bytes == 0 and again.log_end_offset == 60
        again.close()


@pytest.mark.parametrize("shutdown", ["crash", "clean"])
@pytest.mark.parametrize("records, count", [(3, b"9"), (3, b"0"), (100, b"900")])  # 900: past the log end
def test_a_damaged_count_in_a_sealed_segment_never_moves_its_end(tmp_path, clock, shutdown, records, count):
    """The count in the header of a sealed segment's last batch changed on disk (the rest intact,
    indexes too, one entry per segment so the open reads that header). The segment still ends at
    the next segment's base: the damaged batch is the hole, exactly, and the error names the next
    segment's base to seek to; every other record reads back."""
    cfg = TopicConfig(segment_bytes=4000 if records == 3 else 8000, index_interval_bytes=100_000)
    log = PartitionLog(tmp_path, config=cfg, clock=clock)
    values = {}
    for i in range(40 if records == 3 else 8):
        vs = [b"v%03d-%d" % (i, j) for j in range(records)]
        r = log.append(batch(vs))
        values.update({r.base_offset + j: v for j, v in enumerate(vs)})
    log.close() if shutdown == "clean" else crash(log)
    sealed = sorted(tmp_path.glob("*.arrows"))[0]
    pos, _, first, nxt = spans(sealed)[-1]
    data = bytearray(sealed.read_bytes())
    at = data.index(b";count=%d;" % records, pos) + len(b";count=")
    assert len(count) == len(str(records))  # the same width: no byte moves
    data[at : at + len(count)] = count
    sealed.write_bytes(bytes(data))
    again = PartitionLog(tmp_path, config=cfg, clock=clock)
    segments = again._segments
    assert all(s.next_offset <= b for s, b in zip(segments, again._segments.bases[1:]))
    assert again.damaged_offsets == [(first, nxt - 1)]
    with pytest.raises(CorruptRecordError, match=f"seek to {nxt} ") as err:
        again.read(first)
    assert (err.value.first_offset, err.value.next_offset) == (first, nxt)
    got, holes = read_around_damage(again)
    assert holes == [(first, nxt - 1)]
    assert got == {o: v for o, v in values.items() if not first <= o < nxt}
    again.close()
