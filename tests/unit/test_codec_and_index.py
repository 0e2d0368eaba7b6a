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


def test_a_changed_array_length_in_the_flatbuffer_fails_the_checksum():
    """v2 CRCs cover the whole metadata, not only the header text: a flipped record-batch
    length or buffer offset would otherwise decode into wrong records with a valid CRC."""
    import struct

    sm, enc, _ = encoded([b"hello world"] * 5)
    head = bytearray(enc.head)
    at = head.find(struct.pack("<q", 5))  # the batch's (or a column's) length: 5 rows
    assert at > 8
    head[at] = 4
    buf = pa.py_buffer(sm + bytes(head) + enc.body.to_pybytes())
    msg = codec.read_message_at(buf, len(sm))  # still parses: only the CRC can tell
    with pytest.raises(CorruptRecordError, match="checksum"):
        msg.verify()


def test_v2_batches_written_before_leader_epochs_read_as_epoch_0():
    sm, _, schema = encoded([b"x"], base=3)
    batch = pa.record_batch({"offset": pa.array([3], pa.int64()), "timestamp_ms": pa.array([1], pa.int64()),
                             "key": pa.array([None], pa.binary()),
                             "headers": pa.array([None], pa.map_(pa.string(), pa.binary())),
                             "value": pa.array([b"x"], pa.binary())}, schema=schema)
    v2 = codec.encode_batch(batch, schema_size=len(sm), max_timestamp_ms=1, append_ms=1, format_version=2)
    v3 = codec.encode_batch(batch, schema_size=len(sm), max_timestamp_ms=1, append_ms=1, leader_epoch=7)
    old = codec.read_message_at(pa.py_buffer(sm + v2.head + v2.body.to_pybytes()), len(sm))
    new = codec.read_message_at(pa.py_buffer(sm + v3.head + v3.body.to_pybytes()), len(sm))
    old.verify()
    new.verify()
    assert (old.header.version, old.header.leader_epoch) == (2, 0)
    assert (new.header.version, new.header.leader_epoch) == (3, 7)


def test_v1_batches_written_by_older_versions_still_verify():
    """Before the v2 format the CRC covered the header text and the body only."""
    import zlib

    sm, enc, schema = encoded([b"old", b"data"], base=7)
    head = enc.head.replace(b"rayka:v3;crc=", b"rayka:v1;crc=")
    at = head.find(b"rayka:v1;crc=") + len(b"rayka:v1;crc=")
    head = head[:at] + b"--------" + head[at + 8:]
    text_end = head.find(b";seq=-1") + len(b";seq=-1")
    crc = zlib.crc32(enc.body, zlib.crc32(head[head.find(b"rayka:v1"):text_end]))
    head = head[:at] + b"%08x" % crc + head[at + 8:]
    msg = codec.read_message_at(pa.py_buffer(sm + head + enc.body.to_pybytes()), len(sm))
    assert msg.header.version == 1
    msg.verify()
    assert codec.decode(msg, schema).column("value").to_pylist() == [b"old", b"data"]
    flipped = bytearray(sm + head + enc.body.to_pybytes())
    flipped[-10] ^= 0xFF
    with pytest.raises(CorruptRecordError):
        codec.read_message_at(pa.py_buffer(bytes(flipped)), len(sm)).verify()


def test_a_slice_is_a_new_message_with_its_own_header_and_checksum():
    sm, enc, schema = encoded([b"r%d" % i for i in range(10)], base=100, pid="p", seq=4)
    msg = codec.read_message_at(pa.py_buffer(sm + enc.head + enc.body.to_pybytes()), len(sm))
    part = codec.encode_slice(msg, schema, schema_size=len(sm), start=3, rows=4)
    again = codec.read_message_at(part.message, 0)
    again.verify()
    h = again.header
    assert (h.base_offset, h.count, h.producer_id, h.sequence, h.append_ms) == (103, 4, None, -1, 6)
    assert codec.decode(again, schema).column("value").to_pylist() == [b"r3", b"r4", b"r5", b"r6"]
    assert part.message.size == part.size == len(part.head) + part.body.size


def test_a_batch_header_corrupted_past_parsing_still_has_a_size_from_its_framing():
    sm, enc, _ = encoded([b"x" * 50])
    data = bytearray(sm + enc.head + enc.body.to_pybytes())
    at = data.find(b"count=") + len("count=")
    data[at] = ord("z")  # the header no longer parses
    buf = pa.py_buffer(bytes(data))
    with pytest.raises(CorruptRecordError, match="malformed"):
        codec.read_message_at(buf, len(sm))
    assert codec.message_size_at(buf, len(sm)) == enc.size
    with pytest.raises(CorruptRecordError):
        codec.message_size_at(pa.py_buffer(bytes(data[: len(sm) + 20])), len(sm))


def test_verified_ranges_merge_and_answer_containment():
    from rayka.partitions.integrity import VerifiedRanges

    r = VerifiedRanges()
    for start, end in [(100, 200), (300, 400), (200, 250), (500, 600), (240, 310)]:
        r.add(start, end)
    assert r.ranges() == [(100, 400), (500, 600)]
    assert r.covers(100, 400) and r.covers(150, 160) and r.covers(500, 600)
    assert not r.covers(90, 110) and not r.covers(390, 410) and not r.covers(450, 460)
    r.add(0, 1000)
    assert r.ranges() == [(0, 1000)] and len(r) == 1
