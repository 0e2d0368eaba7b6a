"""RecordBatch v2 codec (rayka.gateway.records): round trips, batches from and for a real
client's codec (kafka-python 3.0.12's DefaultRecordBatch), and every kind of corruption."""

from __future__ import annotations

import struct
import types

import cramjam
import crc32c
import numpy as np
import pyarrow as pa
import pytest

import kafka.codec
import kafka.record.default_records as kdr
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords, MemoryRecordsBuilder
from rayka.errors import (ConfigError, CorruptRecordError, InvalidRecordError, RecordTooLargeError,
                          SchemaMismatchError)
from rayka.gateway._compression import XERIAL_MAGIC
from rayka.gateway.records import DecodedBatch, decode_batches, encode_batch, encode_batches
from rayka.partitions.records import HEADERS_TYPE, input_schema, log_schema

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
CODEC_ID = {None: 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def stored(rows, first_offset=0, offsets=None) -> pa.RecordBatch:
    """A stored-layout batch from (timestamp_ms, key, headers, value) tuples."""
    n = len(rows)
    offsets = list(range(first_offset, first_offset + n)) if offsets is None else offsets
    return pa.RecordBatch.from_pydict(
        {"offset": offsets, "timestamp_ms": [r[0] for r in rows], "key": [r[1] for r in rows],
         "headers": [r[2] for r in rows], "value": [r[3] for r in rows]}, schema=log_schema(None))


ROWS = [
    (1_700_000_000_000, b"k1", None, b"v" * 100),
    (1_700_000_000_005, None, [("a", b"1"), ("a", b"2"), ("b", b"")], b""),
    (1_699_999_999_000, b"", [("trace", None)], None),  # an earlier timestamp: a negative delta
    (1_700_000_000_001, b"kkk" * 50, [("é-ü", b"\x00\xff")], b"z" * 300),
    (0, None, None, None),
]


def expected_rows(rows):
    # The input layout: no offset; a record without headers (or with an empty list) reads null.
    return [{"timestamp_ms": t, "key": k, "headers": h or None, "value": v} for t, k, h, v in rows]


@pytest.fixture
def kafka_codecs(monkeypatch):
    """kafka-python's snappy and lz4 need python-snappy / lz4, which are not installed: give its
    own codec code (xerial framing included) cramjam underneath."""
    shim = types.SimpleNamespace(compress=lambda b: bytes(cramjam.snappy.compress_raw(bytes(b))),
                                 decompress=lambda b: bytes(cramjam.snappy.decompress_raw(bytes(b))))
    monkeypatch.setattr(kafka.codec, "snappy", shim)
    monkeypatch.setattr(kafka.codec, "lz4", types.SimpleNamespace())
    monkeypatch.setattr(kdr, "lz4_encode", lambda b: bytes(cramjam.lz4.compress(bytes(b))))
    monkeypatch.setattr(kdr, "lz4_decode", lambda b: bytes(cramjam.lz4.decompress(bytes(b))))


# --- round trips ---------------------------------------------------------------------------

@pytest.mark.parametrize("codec", CODECS)
def test_round_trip_keeps_every_field(codec):
    wire = encode_batch(stored(ROWS, first_offset=42), compression=codec, partition_leader_epoch=7)
    [d] = decode_batches(wire)
    assert isinstance(d, DecodedBatch)
    assert d.batch.schema == input_schema(None)
    assert d.batch.to_pylist() == expected_rows(ROWS)
    assert (d.base_offset, d.last_offset_delta, d.record_count) == (42, 4, 5)
    assert d.partition_leader_epoch == 7
    assert d.base_timestamp == ROWS[0][0] and d.max_timestamp == max(r[0] for r in ROWS)
    assert (d.producer_id, d.producer_epoch, d.base_sequence) == (-1, -1, -1)
    assert d.compression == codec and d.attributes == CODEC_ID[codec]
    assert not (d.log_append_time or d.transactional or d.control)


def test_log_append_time_sets_bit_three():
    [d] = decode_batches(encode_batch(stored(ROWS), log_append_time=True, compression="lz4"))
    assert d.log_append_time and d.attributes == 8 | 3


def test_offset_gaps_survive_as_deltas():
    wire = encode_batch(stored(ROWS[:3], offsets=[10, 12, 20]))
    [d] = decode_batches(wire)
    assert (d.base_offset, d.last_offset_delta, d.record_count) == (10, 10, 3)
    records = list(DefaultRecordBatch(bytearray(wire)))
    assert [r.offset for r in records] == [10, 12, 20]


def test_headers_all_null_and_empty_read_null():
    rows = [(5, b"k", [], b"v"), (6, b"k", None, b"v")]
    [d] = decode_batches(encode_batch(stored(rows)))
    assert d.batch.column("headers").null_count == 2
    assert d.batch.column("headers").type == HEADERS_TYPE


def test_many_batches_back_to_back_with_mixed_codecs():
    rng = np.random.default_rng(3)
    batches, wires, first = [], [], 0
    for i in range(40):
        n = int(rng.integers(1, 30))
        rows = [(1000 + j, None if j % 3 == 0 else b"k%d" % j, [("h", b"%d" % j)] if j % 2 else None,
                 bytes(rng.integers(0, 4, int(rng.integers(0, 200)), dtype=np.uint8))) for j in range(n)]
        batches.append((first, rows))
        wires.append(encode_batch(stored(rows, first_offset=first), compression=CODECS[i % 5]))
        first += n
    decoded = decode_batches(b"".join(wires))
    assert len(decoded) == 40
    for d, (first, rows) in zip(decoded, batches):
        assert d.base_offset == first and d.batch.to_pylist() == expected_rows(rows)


def test_encode_batches_concatenates_and_skips_empty():
    a, b = stored(ROWS[:2]), stored(ROWS[2:], first_offset=2)
    empty = stored([])
    assert encode_batch(empty) == b""
    wire = encode_batches([a, empty, b])
    assert wire == encode_batch(a) + encode_batch(b)
    assert [d.base_offset for d in decode_batches(wire)] == [0, 2]


def test_sliced_batch_and_chunked_table_encode_only_their_rows():
    big = stored(ROWS * 4)
    part = big.slice(3, 9)
    [d] = decode_batches(encode_batch(part, compression="zstd"))
    assert d.base_offset == 3
    assert d.batch.to_pylist() == expected_rows((ROWS * 4)[3:12])
    table = pa.Table.from_batches([big.slice(0, 4), big.slice(4, 16)])
    [d] = decode_batches(encode_batch(table))
    assert d.batch.to_pylist() == expected_rows(ROWS * 4)


def test_large_batch_round_trips_with_varint_boundaries():
    # lengths around the one/two/three-byte varint limits (63/64, 8191/8192 after zigzag)
    sizes = [0, 1, 63, 64, 65, 127, 128, 8191, 8192, 8193, 70_000]
    rows = [(i * 1_000_003, b"k" * s, [("x" * s, b"y" * s)], b"v" * s) for i, s in enumerate(sizes)]
    [d] = decode_batches(encode_batch(stored(rows)))
    assert d.batch.to_pylist() == expected_rows(rows)


# --- a real client's codec: kafka-python 3.0.12 -------------------------------------------

def kafka_python_batch(codec, records, *, producer=(-1, -1, -1), transactional=False) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=CODEC_ID[codec],
                                        is_transactional=transactional, producer_id=producer[0],
                                        producer_epoch=producer[1], base_sequence=producer[2],
                                        batch_size=1 << 20)
    for i, (ts, key, headers, value) in enumerate(records):
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=headers or []) is not None
    return bytes(builder.build())


# compressible values, or kafka-python sends the batch uncompressed
CLIENT_ROWS = [(1_700_000_000_000 + i, b"key-%d" % i if i % 4 else None,
                [("h1", b"a"), ("h1", b"b")] if i % 3 == 0 else None,
                b"value %d " % i * 20 if i % 5 else None) for i in range(200)]


@pytest.mark.parametrize("codec", CODECS)
def test_decodes_kafka_python_batches(codec, kafka_codecs):
    wire = kafka_python_batch(codec, CLIENT_ROWS, producer=(4711, 3, 1000), transactional=True)
    [d] = decode_batches(wire)
    assert d.compression == codec
    assert (d.producer_id, d.producer_epoch, d.base_sequence) == (4711, 3, 1000)
    assert d.transactional and not d.control
    assert d.record_count == 200 and d.last_offset_delta == 199
    assert d.batch.to_pylist() == expected_rows(CLIENT_ROWS)


def test_decodes_kafka_python_xerial_snappy_in_many_blocks(kafka_codecs):
    rows = [(i, b"k", None, b"%06d" % i * 50) for i in range(300)]  # ~90 KB: three xerial blocks
    wire = kafka_python_batch("snappy", rows)
    assert wire[61:69] == XERIAL_MAGIC
    [d] = decode_batches(wire)
    assert d.batch.to_pylist() == expected_rows(rows)


def test_decodes_raw_snappy_as_librdkafka_sends_it():
    plain = kafka_python_batch(None, CLIENT_ROWS)
    wire = recompressed(plain, 2, bytes(cramjam.snappy.compress_raw(plain[61:])))
    [d] = decode_batches(wire)
    assert d.compression == "snappy" and d.batch.to_pylist() == expected_rows(CLIENT_ROWS)


def test_decodes_memory_records_builder_batches(kafka_codecs):
    builder = MemoryRecordsBuilder(magic=2, compression_type=CODEC_ID["gzip"], batch_size=1 << 20,
                                   offset=0, producer_id=9, producer_epoch=0, base_sequence=0)
    for ts, key, headers, value in CLIENT_ROWS[:50]:
        builder.append(ts, key, value, headers or [])
    builder.close()
    [d] = decode_batches(bytes(builder.buffer()))
    assert d.batch.to_pylist() == expected_rows(CLIENT_ROWS[:50]) and d.producer_id == 9


@pytest.mark.parametrize("codec", CODECS)
def test_kafka_python_reads_what_we_encode(codec, kafka_codecs):
    rows = CLIENT_ROWS + ROWS
    wire = encode_batches([stored(rows[:100], first_offset=500), stored(rows[100:], first_offset=600)],
                          compression=codec, log_append_time=True)
    seen = []
    records = MemoryRecords(wire)
    while records.has_next():
        batch = records.next_batch()
        assert batch.validate_crc() and batch.magic == 2 and batch.timestamp_type == 1
        seen += list(batch)
    assert [r.offset for r in seen] == list(range(500, 500 + len(rows)))
    for rec, (ts, key, headers, value) in zip(seen, rows):
        assert (rec.key, rec.value) == (key, value)
        assert rec.headers == list(headers or [])
    # LogAppendTime: a reader takes the batch's max timestamp for all its records
    assert seen[0].timestamp == max(r[0] for r in rows[:100])
    create = list(DefaultRecordBatch(bytearray(encode_batch(stored(rows), compression=codec))))
    assert [r.timestamp for r in create] == [r[0] for r in rows]


@pytest.mark.parametrize("codec", CODECS)
def test_aiokafka_both_ways(codec):
    """aiokafka 0.14's Cython RecordBatch builder and reader (its own cramjam codecs: xerial
    snappy, lz4 frames) against ours."""
    from aiokafka.record.default_records import DefaultRecordBatch as AioBatch
    from aiokafka.record.default_records import DefaultRecordBatchBuilder as AioBuilder

    builder = AioBuilder(magic=2, compression_type=CODEC_ID[codec], is_transactional=0,
                         producer_id=77, producer_epoch=1, base_sequence=5, batch_size=1 << 20)
    for i, (ts, key, headers, value) in enumerate(CLIENT_ROWS):
        assert builder.append(i, timestamp=ts, key=key, value=value, headers=headers or []) is not None
    [d] = decode_batches(bytes(builder.build()))
    assert (d.compression, d.producer_id, d.base_sequence) == (codec, 77, 5)
    assert d.batch.to_pylist() == expected_rows(CLIENT_ROWS)

    batch = AioBatch(bytearray(encode_batch(stored(CLIENT_ROWS, first_offset=9), compression=codec)))
    assert batch.validate_crc()
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch]
    assert got == [(9 + i, ts, key, value, list(headers or [])) for i, (ts, key, headers, value)
                   in enumerate(CLIENT_ROWS)]


# --- corruption ----------------------------------------------------------------------------

def recompressed(batch: bytes, codec_id: int, section: bytes, count: int | None = None) -> bytes:
    """``batch`` with its records section, codec bits and (optionally) recordCount and
    lastOffsetDelta replaced, and
    the length and CRC recomputed: a well-framed batch whose insides are what a test wants."""
    out = bytearray(batch[:61]) + section
    struct.pack_into(">i", out, 8, len(out) - 12)
    attributes = (struct.unpack_from(">h", out, 21)[0] & ~7) | codec_id
    struct.pack_into(">h", out, 21, attributes)
    if count is not None:
        struct.pack_into(">i", out, 57, count)
        struct.pack_into(">i", out, 23, max(count - 1, 0))  # lastOffsetDelta to match
    struct.pack_into(">I", out, 17, crc32c.crc32c(bytes(out[21:])))
    return bytes(out)


SMALL = encode_batch(stored([(1, b"k", [("h", b"v")], b"value"), (2, None, None, b"")]))


def test_every_truncation_raises_corrupt_record():
    for cut in range(1, len(SMALL)):
        with pytest.raises(CorruptRecordError):
            decode_batches(SMALL[:cut])
        with pytest.raises(CorruptRecordError):  # a whole batch then a torn one: nothing returned
            decode_batches(SMALL + SMALL[:cut])


def test_every_flipped_byte_under_the_crc_raises():
    # batchLength, magic, the CRC and everything it covers (baseOffset and partitionLeaderEpoch
    # are outside it by design: the broker rewrites them)
    for pos in [*range(8, 12), *range(16, len(SMALL))]:
        damaged = bytearray(SMALL)
        damaged[pos] ^= 0x40
        with pytest.raises(CorruptRecordError):
            decode_batches(bytes(damaged))


def test_crc_mismatch_is_named():
    damaged = bytearray(SMALL)
    damaged[-1] ^= 1
    with pytest.raises(CorruptRecordError, match="CRC-32C mismatch"):
        decode_batches(bytes(damaged))


@pytest.mark.parametrize("magic", [0, 1, 3])
def test_wrong_magic(magic):
    damaged = bytearray(SMALL)
    damaged[16] = magic
    with pytest.raises(CorruptRecordError, match=f"magic {magic}"):
        decode_batches(bytes(damaged))


@pytest.mark.parametrize(("section", "count", "codec", "message"), [
    (None, 3, 0, "ends before recordCount"),
    (None, 1, 0, "bytes are left after"),
    (b"\x00" * 20, None, 5, "unknown compression codec 5"),
    (b"\x00" * 20, None, 7, "unknown compression codec 7"),
    (b"not gzip at all", None, 1, "gzip decompression failed"),
    (b"not zstd at all", None, 4, "zstd decompression failed"),
    (b"garbage!garbage!", None, 3, "lz4 decompression failed"),
    (XERIAL_MAGIC + b"\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x10\x00ab", None, 2, "runs past"),
    (b"\xff\xff\xff\xff\xff\xff\x01" + b"\x00" * 10, 1, 0, "longer than its type allows"),
    (b"\x0e\x00\x00\x00\x7f" + b"\x00" * 9, 1, 0, "key length"),
    (b"\x0e\x00\x00\x01\x01\x01" + b"\x00" * 8, 1, 0, "offset deltas are not increasing"),
    (b"\x16\x00\x00\x00\x01\x01\x02\x06\xc3\x28\x2a\x01", 1, 0, "valid UTF-8"),
    (b"\x0e\x00\x00\x00\x01\x01\x00" + b"\x00" * 7, 1, 0, "fields end before"),
    (b"\x7e" + b"\x00" * 10, 1, 0, "runs past the records section"),
])
def test_named_malformations(section, count, codec, message):
    section = SMALL[61:] if section is None else section
    wire = recompressed(SMALL, codec, section, count)
    with pytest.raises(CorruptRecordError, match=message):
        decode_batches(wire)


def test_batch_length_past_the_buffer():
    damaged = bytearray(SMALL)
    struct.pack_into(">i", damaged, 8, len(SMALL))
    with pytest.raises(CorruptRecordError, match="batchLength"):
        decode_batches(bytes(damaged))


def test_random_bytes_and_random_records_sections_raise_only_corrupt_record():
    rng = np.random.default_rng(12)
    decoded = 0
    for i in range(3000):
        noise = rng.integers(0, 256, int(rng.integers(1, 200)), dtype=np.uint8).tobytes()
        with pytest.raises(CorruptRecordError):
            decode_batches(noise)
        # a valid frame and CRC around random or mutated records: the record parser itself
        if i % 2:
            section = bytearray(SMALL[61:])
            for _ in range(int(rng.integers(1, 4))):
                section[int(rng.integers(0, len(section)))] = int(rng.integers(0, 256))
            section = bytes(section)
        else:
            section = noise
        try:
            result = decode_batches(recompressed(SMALL, int(rng.integers(0, 5)) if i % 7 == 0 else 0,
                                                 section, int(rng.integers(0, 4))))
        except CorruptRecordError:
            continue
        decoded += 1
        assert result[0].batch.validate(full=True) is None
    assert decoded < 3000


# --- encoding refusals ---------------------------------------------------------------------

def test_encode_refuses_bad_batches():
    with pytest.raises(SchemaMismatchError, match="'offset'"):
        encode_batch(pa.RecordBatch.from_pydict({"value": [b"x"]}))
    with pytest.raises(InvalidRecordError, match="row 1"):
        encode_batch(stored(ROWS[:2], offsets=[5, 5]))
    with pytest.raises(InvalidRecordError, match="row 2"):
        encode_batch(stored(ROWS[:3], offsets=[5, 6, 4]))
    with pytest.raises(InvalidRecordError, match="2\\*\\*31"):
        encode_batch(stored(ROWS[:2], offsets=[0, 2**31]))
    assert decode_batches(encode_batch(stored(ROWS[:2], offsets=[0, 2**31 - 1])))[0].last_offset_delta == 2**31 - 1
    # another layout is cast: large_binary values, int32 timestamps
    other = stored(ROWS)
    other = other.set_column(4, "value", other.column(4).cast(pa.large_binary()))
    other = other.set_column(1, "timestamp_ms", pa.array([r[0] % 2**31 for r in ROWS], pa.int32()))
    [d] = decode_batches(encode_batch(other))
    assert d.batch.column("value").to_pylist() == [r[3] for r in ROWS]
    with pytest.raises(ConfigError, match="compression"):
        encode_batch(stored(ROWS), compression="brotli")
    bad_ts = stored(ROWS[:1]).set_column(1, "timestamp_ms", pa.array([None], pa.int64()))
    with pytest.raises(SchemaMismatchError, match="nulls"):
        encode_batch(bad_ts)


def test_each_kernel_compiles_once_whatever_the_buffers():
    """bytes, bytearray and memoryview input, pyarrow arrays over numpy or not, headers or none:
    one numba specialisation per kernel, so no input pays a second compile."""
    from rayka.gateway import _record_kernels as k

    wire = encode_batch(stored(ROWS))
    decode_batches(wire), decode_batches(bytearray(wire)), decode_batches(memoryview(wire))
    decode_batches(encode_batch(stored(ROWS), compression="gzip"))
    n = 10
    values = np.full(n * 4, 7, np.uint8)
    over_numpy = pa.RecordBatch.from_arrays(
        [pa.array(np.arange(n)), pa.array(np.arange(n)), pa.nulls(n, pa.binary()), pa.nulls(n, HEADERS_TYPE),
         pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(np.arange(0, 4 * n + 1, 4, dtype=np.int32)),
                                                pa.py_buffer(values)])], schema=log_schema(None))
    decode_batches(encode_batch(over_numpy))
    for name in ("parse_records", "gather_kv", "gather_headers", "record_sizes", "write_records"):
        assert len(getattr(k, name).signatures) == 1, (name, getattr(k, name).signatures)


def test_warm_up_compiles_every_kernel():
    from rayka.gateway import _record_kernels as k
    from rayka.gateway.records import warm_up

    warm_up()
    for name in ("parse_records", "gather_kv", "gather_headers", "record_sizes", "write_records"):
        assert getattr(k, name).signatures, name


@pytest.mark.parametrize("codec", CODECS)
def test_decompression_is_bounded(codec):
    """A batch that inflates past decode_batches' max_bytes is refused while inflating (a small
    request must not take gigabytes); the bound counts all batches of the call together."""
    rows = [(0, None, None, b"\x00" * 100_000) for _ in range(30)]  # 3 MB of zeros
    wire = encode_batch(stored(rows), compression=codec)
    assert len(decode_batches(wire, max_bytes=3_100_000)) == 1
    with pytest.raises(RecordTooLargeError, match="2000000-byte limit") as info:
        decode_batches(wire, max_bytes=2_000_000)
    assert info.value.max_message_bytes == 2_000_000
    with pytest.raises(RecordTooLargeError):
        decode_batches(wire + wire, max_bytes=5_000_000)
    assert len(decode_batches(wire + wire, max_bytes=7_000_000)) == 2


def test_decoded_batches_pass_the_partitions_checks():
    """What the gateway hands a partition: decode_batches' batch goes through prepare_batch (the
    check every produced batch passes) unchanged apart from the offset column."""
    from rayka.partitions.records import prepare_batch

    [d] = decode_batches(encode_batch(stored(ROWS), compression="snappy"))
    ready = prepare_batch(d.batch, log_schema(None), now_ms=5, max_message_bytes=1 << 20)
    assert ready.schema == log_schema(None)
    assert ready.drop_columns(["offset"]).to_pylist() == expected_rows(ROWS)


def random_rows(rng, n):
    def maybe_bytes(limit):
        return None if rng.random() < 0.2 else bytes(rng.integers(0, 256, int(rng.integers(0, limit)), dtype=np.uint8))
    rows = []
    for _ in range(n):
        headers = [("h%d" % int(rng.integers(0, 3)), maybe_bytes(20)) for _ in range(int(rng.integers(0, 4)))]
        rows.append((int(rng.integers(-2**40, 2**42)), maybe_bytes(40), headers or None, maybe_bytes(300)))
    return rows


def test_random_rows_agree_with_kafka_python_both_ways(kafka_codecs):
    rng = np.random.default_rng(2026)
    for trial in range(30):
        rows = random_rows(rng, int(rng.integers(1, 60)))
        codec = CODECS[trial % 5]
        ours = list(DefaultRecordBatch(bytearray(encode_batch(stored(rows, first_offset=trial), compression=codec))))
        assert [(r.offset, r.timestamp, r.key, r.value, r.headers) for r in ours] == [
            (trial + i, ts, key, value, list(h or [])) for i, (ts, key, h, value) in enumerate(rows)]
        [d] = decode_batches(kafka_python_batch(codec, rows))
        assert d.batch.to_pylist() == expected_rows(rows)
