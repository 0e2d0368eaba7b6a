"""The batch codec's checksummed header and the sparse index files."""

import pyarrow as pa
import pytest

from rayka.errors import CorruptRecordError
from rayka.partitions import codec
from rayka.partitions.index import OffsetIndex, TimeIndex
from rayka.partitions.records import log_schema, prepare_batch, stamp_offsets


def encoded(values, base=0, pid=None, seq=-1):
    schema = log_schema()
    b = prepare_batch(pa.table({"value": pa.array(values, pa.binary())}), schema, now_ms=5, max_message_bytes=10**6)
    sm = codec.schema_message(schema)
    enc = codec.encode_batch(stamp_offsets(b, base), schema_size=len(sm), max_timestamp_ms=5, append_ms=6,
                             producer_id=pid, sequence=seq)
    return sm, enc, schema


def test_header_round_trips_and_checksum_verifies():
    sm, enc, schema = encoded([b"a", b"bb"], base=40, pid="p9", seq=3)
    buf = pa.py_buffer(sm + enc.head + enc.body.to_pybytes())
    msg = codec.read_message_at(buf, len(sm))
    msg.verify()
    h = msg.header
    assert (h.base_offset, h.count, h.max_timestamp_ms, h.append_ms, h.producer_id, h.sequence) == (40, 2, 5, 6, "p9", 3)
    assert codec.decode(msg, schema).column("value").to_pylist() == [b"a", b"bb"]


@pytest.mark.parametrize("where", ["body", "header"])
def test_any_flipped_byte_fails_the_checksum(where):
    sm, enc, _ = encoded([b"hello world"] * 5)
    data = bytearray(sm + enc.head + enc.body.to_pybytes())
    if where == "body":
        data[-20] ^= 0x01
    else:
        at = data.find(b"count=") + len("count=")
        data[at] = ord("9")
    buf = pa.py_buffer(bytes(data))
    with pytest.raises(CorruptRecordError):
        msg = codec.read_message_at(buf, len(sm))
        msg.verify()
        codec.decode(msg, log_schema())


def test_torn_message_is_reported_not_parsed():
    sm, enc, _ = encoded([b"x" * 100])
    whole = sm + enc.head + enc.body.to_pybytes()
    for cut in (len(sm) + 3, len(sm) + 20, len(whole) - 1):
        with pytest.raises(CorruptRecordError):
            codec.read_message_at(pa.py_buffer(whole[:cut]), len(sm))


def test_offset_index_floor_and_reload(tmp_path):
    idx = OffsetIndex(tmp_path / "a.index")
    for off, pos in [(0, 472), (100, 5000), (250, 9000)]:
        idx.append(off, pos)
    idx.flush()
    assert idx.floor(99) == (0, 472) and idx.floor(100) == (100, 5000) and idx.floor(10**9) == (250, 9000)
    again = OffsetIndex(tmp_path / "a.index")
    assert again.load() and again.floor(260) == (250, 9000)
    with pytest.raises(AssertionError):
        idx.append(10, 1)


def test_time_index_below_and_bad_files(tmp_path):
    idx = TimeIndex(tmp_path / "a.timeindex")
    for ts, off in [(-(2**63), 0), (1000, 50), (1000, 70), (3000, 90)]:
        idx.append(ts, off)
    assert idx.below(1000) == (-(2**63), 0)
    assert idx.below(1001) == (1000, 70)
    assert idx.below(10**12) == (3000, 90)
    (tmp_path / "torn.timeindex").write_bytes(b"\x00" * 17)
    assert not TimeIndex(tmp_path / "torn.timeindex").load()
    assert not TimeIndex(tmp_path / "missing.timeindex").load()
