"""A damaged .index, .timeindex or schema message never makes data unavailable or wrong: indexes
are checked against the segment at open and rebuilt when they fail; a damaged schema message is
rewritten from the topic's schema; a log that cannot open says why with LogOpenError."""

import pyarrow as pa
import pytest

from rayka.config import TopicConfig
from rayka.errors import CorruptRecordError, LogOpenError
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, crash, read_all

CFG = TopicConfig(segment_bytes=4096, index_interval_bytes=200)
N = 60


def value(o):
    return b"i%02d" % o + b"-" * 60


@pytest.fixture
def closed_log(tmp_path, clock):
    """The files of a cleanly closed log of N one-record batches (timestamps 1000 + 10*o) over a
    few sealed segments, each with several index entries."""
    src = tmp_path / "src"
    log = PartitionLog(src, config=CFG, clock=clock)
    for o in range(N):
        log.append(batch([value(o)], start_ts=1000 + 10 * o))
    assert log.segment_count >= 3
    log.close()
    return {p.name: p.read_bytes() for p in src.iterdir() if p.is_file() and p.name != ".lock"}


def reopen(tmp_path, clock, files, name, changed):
    d = tmp_path / name
    d.mkdir()
    for fname, data in {**files, **changed}.items():
        (d / fname).write_bytes(data)
    return PartitionLog(d, config=CFG, clock=clock)


def assert_all_readable(log):
    offsets, values = read_all(log)
    assert offsets == list(range(N)) and values == [value(o) for o in range(N)]
    for o in range(0, N, 7):
        assert log.read(o, max_records=1).next_offset == o + 1
    for o in range(N):  # every record found by its time, and by a time just before it
        assert log.offset_for_time(1000 + 10 * o) == o
        assert log.offset_for_time(1000 + 10 * o - 5) == o
    assert log.damaged_offsets == [] and log.truncated_bytes == 0


@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_every_byte_of_a_sealed_segments_index_flipped_in_turn_opens_with_correct_reads(tmp_path, clock,
                                                                                       closed_log, suffix):
    name = sorted(n for n in closed_log if n.endswith(suffix))[1]  # a sealed, not the first, segment
    data = closed_log[name]
    assert len(data) >= 4 * 16  # several entries
    for at in range(len(data)):
        flipped = bytearray(data)
        flipped[at] ^= 0xFF
        log = reopen(tmp_path, clock, closed_log, f"{suffix[1:]}{at}", {name: bytes(flipped)})
        assert_all_readable(log)
        log.close()


@pytest.mark.parametrize("suffix", [".index", ".timeindex"])
def test_every_byte_of_the_active_segments_index_flipped_in_turn_opens_with_correct_reads(tmp_path, clock,
                                                                                         closed_log, suffix):
    name = sorted(n for n in closed_log if n.endswith(suffix))[-1]
    data = closed_log[name]
    assert len(data) >= 2 * 16
    for at in range(0, len(data)):
        flipped = bytearray(data)
        flipped[at] ^= 0x01 << (at % 8)
        log = reopen(tmp_path, clock, closed_log, f"a{suffix[1:]}{at}", {name: bytes(flipped)})
        assert_all_readable(log)
        log.close()


def _entry(index_bytes, i, position):
    out = bytearray(index_bytes)
    out[16 * i + 8 : 16 * i + 16] = position.to_bytes(8, "little", signed=True)
    return bytes(out)


@pytest.mark.parametrize("position", [-1, -(2**40), 2**40, "shifted"])
def test_the_issues_damaged_positions_are_rebuilt_not_served(tmp_path, clock, closed_log, position):
    """A negative position (an IndexError at open), a huge one (reads that return nothing) and a
    shifted one (intact records reported as failing their checksum)."""
    name = sorted(n for n in closed_log if n.endswith(".index"))[0]
    data = closed_log[name]
    old = int.from_bytes(data[16 * 2 + 8 : 16 * 3], "little")
    pos = old + 8 if position == "shifted" else position
    log = reopen(tmp_path, clock, closed_log, "p", {name: _entry(data, 2, pos)})
    assert_all_readable(log)
    assert (tmp_path / "p" / name).read_bytes() == data  # rebuilt on disk, as it was written
    log.close()


def test_an_index_changed_on_disk_after_open_is_refused_not_served(tmp_path, clock, closed_log):
    log = reopen(tmp_path, clock, closed_log, "live", {})
    seg = log._segments[0]
    seg.release()
    data = seg.offset_index.path.read_bytes()
    seg.offset_index.path.write_bytes(_entry(data, 1, 5))
    with pytest.raises(CorruptRecordError, match="changed on disk since the partition opened; restart"):
        log.read(seg.next_offset - 1)
    log.close()


@pytest.mark.parametrize("which", ["sealed", "active"])
def test_a_damaged_schema_message_is_rewritten_from_the_topic_schema(tmp_path, clock, closed_log, which):
    names = sorted(n for n in closed_log if n.endswith(".arrows"))
    name = names[1] if which == "sealed" else names[-1]
    schema_size = len(PartitionLog(tmp_path / "probe", config=CFG, clock=clock)._schema_bytes)
    for at in (0, 5, 40, schema_size // 2, schema_size - 9):
        damaged = bytearray(closed_log[name])
        damaged[at] ^= 0x5A
        log = reopen(tmp_path, clock, closed_log, f"s{at}", {name: bytes(damaged)})
        assert_all_readable(log)
        assert (tmp_path / f"s{at}" / name).read_bytes() == closed_log[name]  # repaired in place
        crash(log)


def test_a_segment_of_another_log_is_refused_with_a_clear_error(tmp_path, clock, closed_log):
    other = tmp_path / "other"
    typed = PartitionLog(other, config=CFG, clock=clock,
                         value_schema=pa.schema([("n", pa.int64())]))
    typed.append(pa.table({"n": [1, 2, 3]}))
    typed.close()
    stranger = (other / "00000000000000000000.arrows").read_bytes()
    names = sorted(n for n in closed_log if n.endswith(".arrows"))
    with pytest.raises(LogOpenError) as info:
        reopen(tmp_path, clock, closed_log, "mixed", {names[0]: stranger})
    err = info.value
    assert str(tmp_path / "mixed") in str(err) and names[0] in str(err)
    assert "schema" in err.cause and "move" in str(err).lower()
    assert err.directory == str(tmp_path / "mixed")
