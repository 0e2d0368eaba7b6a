"""Projection and filters applied inside the log (partitions/pushdown.py): fewer bytes touched and
shipped, offsets kept right, where to resume after a filter that kept nothing, damage as in a full read."""

import pickle

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from rayka.config import TopicConfig
from rayka.errors import ConfigError, CorruptRecordError
from rayka.partitions import codec, pushdown
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, flip_byte, spans

WIDE = pa.schema([pa.field(f"f{i}", pa.float64()) for i in range(18)] + [pa.field("n", pa.int64()),
                                                                       pa.field("s", pa.string())])


def wide_rows(start: int, n: int) -> pa.Table:
    cols = {f"f{i}": pa.array(np.arange(start, start + n, dtype=np.float64) + i / 100) for i in range(18)}
    cols["n"] = pa.array(np.arange(start, start + n, dtype=np.int64))
    cols["s"] = pa.array([f"s{j % 7}" for j in range(start, start + n)])
    return pa.table(cols)


def decoded(answer, spec):
    """The messages of a pushed-down answer, decoded as one batch (None: nothing kept). Each
    carries a whole header but no CRC (no reader checks one), so none can pass for stored data."""
    if answer.message is None:
        return None
    parts = []
    for msg in codec.iter_messages(answer.message):
        assert msg.header.crc == -1
        with pytest.raises(CorruptRecordError, match="carries no checksum"):
            msg.verify()
        b = codec.decode(msg, spec.schema)
        assert msg.header.base_offset == b.column(0)[0].as_py() and msg.header.count == b.num_rows
        parts.append(b)
    return pa.concat_batches(parts)


@pytest.fixture
def wide_log(tmp_path, clock):
    log = PartitionLog(tmp_path, value_schema=WIDE, clock=clock,
                       config=TopicConfig(segment_bytes=256 * 1024, index_interval_bytes=4096))
    for start in range(0, 6000, 500):
        log.append(wide_rows(start, 500))
    assert log.segment_count > 2  # rows across batches and segments
    yield log
    log.close()


def test_projection_touches_and_ships_fewer_bytes_than_a_full_read(wide_log):
    full = wide_log.read(0, max_records=6000, max_bytes=10**9)
    spec = pushdown.cached(wide_log.schema, ["f3", "n"], None)
    got = pushdown.read_log(wide_log, 0, 6000, 10**9, columns=["f3", "n"])
    b = decoded(got, spec)
    assert b.schema.names == ["offset", "f3", "n"]
    assert b.column("offset").to_pylist() == list(range(6000))
    assert b.column("n").to_pylist() == list(range(6000))
    assert got.next_offset == 6000 and got.rows == 6000
    # 3 of 24 columns (offset, f3, n), every 8 bytes a row: about an eighth of the stored bytes.
    assert got.bytes_read < full.bytes / 5, (got.bytes_read, full.bytes)
    assert got.bytes_shipped < full.bytes / 5
    assert got.bytes_shipped >= 3 * 8 * 6000


def test_a_filter_keeps_the_right_rows_with_their_offsets(wide_log):
    flt = (pc.field("s") == "s3") & (pc.field("f0") >= 1000)
    got = pushdown.read_log(wide_log, 700, 10_000, 10**9, columns=["f1"], filter=flt)
    spec = pushdown.cached(wide_log.schema, ["f1"], flt)
    assert "s" in spec.needed and "f0" in spec.needed and "f5" not in spec.needed  # only what the filter reads
    b = decoded(got, spec)
    want = [o for o in range(1000, 6000) if o % 7 == 3]
    assert b.column("offset").to_pylist() == want
    assert b.column("f1").to_pylist() == [o + 0.01 for o in want]
    assert got.next_offset == 6000 and got.rows == len(want)


def test_a_filter_that_matches_nothing_still_says_where_to_resume(wide_log):
    got = pushdown.read_log(wide_log, 123, 2000, 10**9, filter=pc.field("n") < 0)
    assert got.message is None and got.rows == 0
    assert got.next_offset == 2123  # past everything scanned: a consumer moves on
    again = pushdown.read_log(wide_log, got.next_offset, 10**6, 10**9, filter=pc.field("n") < 0)
    assert again.next_offset == 6000 and again.rows == 0


def test_bounds_max_records_scanned_and_max_bytes_shipped(wide_log):
    got = pushdown.read_log(wide_log, 250, 333, 10**9, columns=["n"])
    assert got.rows == 333 and got.next_offset == 583
    # max_bytes bounds what is shipped: with 16 bytes a row kept, a small budget stops early...
    small = pushdown.read_log(wide_log, 0, 10**6, 20_000, columns=["n"])
    assert 0 < small.rows < 6000 and small.next_offset == small.rows
    # ...and successive reads are continuous.
    offset, seen = 0, []
    while offset < 6000:
        a = pushdown.read_log(wide_log, offset, 10**6, 20_000, columns=["n"], filter=pc.field("s") != "s0")
        b = decoded(a, pushdown.cached(wide_log.schema, ["n"], pc.field("s") != "s0"))
        seen += b.column("n").to_pylist() if b is not None else []
        assert a.next_offset > offset
        offset = a.next_offset
    assert seen == [o for o in range(6000) if o % 7 != 0]


def test_upto_ends_a_pushed_read_like_a_high_watermark(wide_log):
    got = pushdown.read_log(wide_log, 0, 10**6, 10**9, columns=["n"], upto=777)
    assert got.next_offset == 777 and got.rows == 777


def test_untyped_topic_keys_headers_and_timestamps(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    n = 60
    log.append(batch([b"v%d" % i for i in range(n)], start_ts=5000, keys=[b"k%d" % (i % 3) for i in range(n)],
                     headers=[[("h", b"%d" % i)] if i % 2 else None for i in range(n)]))
    log.append(batch([b"w%d" % i for i in range(n)], start_ts=9000, keys=[b"k%d" % (i % 3) for i in range(n)]))
    flt = pc.field("key") == b"k1"
    got = pushdown.read_log(log, 10, 1000, 10**9, columns=["headers", "timestamp_ms", "value"], filter=flt)
    b = decoded(got, pushdown.cached(log.schema, ["headers", "timestamp_ms", "value"], flt))
    assert b.schema.names == ["offset", "headers", "timestamp_ms", "value"]
    offs = [o for o in range(10, 2 * n) if o % 3 == 1]
    assert b.column("offset").to_pylist() == offs
    assert b.column("value").to_pylist() == [(b"v%d" % o) if o < n else (b"w%d" % (o - n)) for o in offs]
    assert b.column("timestamp_ms").to_pylist() == [5000 + o if o < n else 9000 + o - n for o in offs]
    assert b.column("headers").to_pylist()[:2] == [None, [("h", b"13")]]
    log.close()


def test_bad_columns_and_filters_are_config_errors(wide_log):
    with pytest.raises(ConfigError, match="no column 'nope'"):
        pushdown.read_log(wide_log, 0, 10, 10**6, columns=["nope"])
    with pytest.raises(ConfigError, match="pyarrow.compute expression"):
        pushdown.read_log(wide_log, 0, 10, 10**6, filter="n > 3")
    with pytest.raises(ConfigError, match="does not apply"):
        pushdown.read_log(wide_log, 0, 10, 10**6, filter=pc.field("missing") > 3)


def test_an_expression_survives_pickling_as_a_remote_call_sends_it():
    flt = (pc.field("n") > 3) & pc.field("s").isin(["a", "b"])
    assert pickle.loads(pickle.dumps(flt)).equals(flt)


def _sealed_wide_with_damage(path, clock):
    log = PartitionLog(path, value_schema=WIDE, clock=clock)
    for start in range(0, 100, 10):
        log.append(wide_rows(start, 10))
    log.roll()
    log.append(wide_rows(100, 10))
    log.close()
    segment = sorted(path.glob("*.arrows"))[0]
    position, size, base, nxt = spans(segment)[5]
    assert (base, nxt) == (50, 60)
    flip_byte(segment, position + size - 8)  # near the body's end (the string column), far from f0
    return PartitionLog(path, value_schema=WIDE, clock=clock)


def test_damage_under_projection_is_reported_as_a_full_read_reports_it(tmp_path, clock):
    """The damaged byte lies in a column the projection drops: the batch is still refused, since
    no row is served from a batch whose CRC has not passed (pushdown.py, Integrity)."""
    log = _sealed_wide_with_damage(tmp_path, clock)
    first = pushdown.read_log(log, 0, 1000, 10**9, columns=["f0"])
    assert first.next_offset == 50 and first.rows == 50  # served up to the damage, as a full read is
    assert log.read(0, max_records=1000).next_offset == 50
    with pytest.raises(CorruptRecordError, match=r"offsets 50\.\.59") as pushed_exc:
        pushdown.read_log(log, 50, 1000, 10**9, columns=["f0"])
    with pytest.raises(CorruptRecordError) as full_exc:
        log.read(50, max_records=1000)
    assert pushed_exc.value.next_offset == full_exc.value.next_offset == 60
    after = pushdown.read_log(log, 60, 1000, 10**9, columns=["f0"], filter=pc.field("n") >= 105)
    assert after.rows == 5 and after.next_offset == 110
    log.close()


def test_read_counters_add_up():
    c = pushdown.ReadCounters()
    c.full(1000)
    c.pushed(pushdown.PushedRead(0, None, 0, 10, 300, 0))
    assert c.as_dict() == {"full_fetches": 1, "full_read_bytes": 1000, "full_shipped_bytes": 1000,
                           "pushdown_fetches": 1, "pushdown_read_bytes": 300, "pushdown_shipped_bytes": 0}
