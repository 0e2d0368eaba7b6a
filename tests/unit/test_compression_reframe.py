"""A producer's compressed batch stored with its compressed buffers (partitions/reframe.py), without Ray."""

import json

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from rayka.config import TopicConfig
from rayka.errors import CorruptRecordError, InvalidRecordError, RecordTooLargeError, SchemaMismatchError
from rayka.partitions import codec, reframe
from rayka.partitions.log import PartitionLog
from rayka.partitions.records import log_schema, prepare_batch, stamp_offsets

from storage_helpers import batch, read_all

TYPED = pa.schema([("user_id", pa.int64()), ("price", pa.float64()), ("note", pa.string()),
                   ("tags", pa.list_(pa.string())), ("when", pa.timestamp("ms"))])


@pytest.fixture(autouse=True)
def reuse_every_size(monkeypatch):
    """The logs here store small batches: let them take the reusing path too (its size floor is
    pinned by its own test)."""
    monkeypatch.setattr(reframe, "REUSE_MIN_BYTES", 0)


def _events(n, start=0):
    return [json.dumps({"user_id": 1000 + i % 37, "url": f"https://shop.example.com/item/{i % 91}",
                        "ts": 1732480000000 + i}).encode() for i in range(start, start + n)]


def _wire(table, kind, level=None):
    """What a producer ships: the table as an IPC stream compressed with ``kind``."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema, options=codec.write_options(kind, level)) as writer:
        writer.write(table)
    return sink.getvalue()


def _segment_bytes(path):
    return b"".join(p.read_bytes() for p in sorted(path.glob("*.arrows")))


def _stored_messages(path, schema):
    data = pa.py_buffer(b"".join(p.read_bytes() for p in sorted(path.glob("*.arrows"))))
    return data, list(codec.iter_messages(data, len(codec.schema_message(schema))))


def _encode_both(table, schema, kind, value_schema=None):
    produced = reframe.read_produced(_wire(table, kind))
    assert isinstance(produced, reframe.ProducedBatch)
    stamped = stamp_offsets(prepare_batch(produced.batch, schema, now_ms=7, max_message_bytes=1 << 20), 40)
    options = codec.write_options(kind)
    size = len(codec.schema_message(schema))
    reused = reframe.encode_reusing(stamped, produced, schema_size=size, max_timestamp_ms=9, append_ms=7,
                                    producer_id="p-1", sequence=3, leader_epoch=2, options=options, compression=kind)
    plain = codec.encode_batch(stamped, schema_size=size, max_timestamp_ms=9, append_ms=7, producer_id="p-1",
                               sequence=3, leader_epoch=2, options=options)
    return stamped, reused, plain


def _typed_rows(n):
    return pa.table({
        "user_id": pa.array(range(n), pa.int32()),  # cast to the topic's int64 by the partition
        "price": pa.array([i / 4 if i % 5 else None for i in range(n)], pa.float64()),
        "note": pa.array([f"note {i % 7}" for i in range(n)]),
        "tags": pa.array([[f"t{i % 3}"] * (i % 3) if i % 4 else None for i in range(n)], pa.list_(pa.string())),
        "when": pa.array(range(1_700_000_000_000, 1_700_000_000_000 + n), pa.timestamp("ms")),
        "timestamp_ms": pa.array([1_700_000_000_000 + i if i % 9 else None for i in range(n)], pa.int64()),
        "key": pa.array([b"k%d" % (i % 11) for i in range(n)]),
        "headers": pa.array([[("h", b"v%d" % i)] if i % 2 else None for i in range(n)],
                            pa.map_(pa.string(), pa.binary())),
    })


CASES = {
    "value only": (lambda: batch(_events(700)), None),
    "keys, timestamps and headers sent": (lambda: batch(_events(700), start_ts=5, keys=[b"k"] * 700,
                                                        headers=[[("a", b"1")]] * 700), None),
    "typed, a column cast and nulls": (lambda: _typed_rows(700), TYPED),
}


@pytest.mark.parametrize("kind", ["lz4", "zstd"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_reused_message_reads_back_as_the_batch_it_stores(kind, case):
    make, value_schema = CASES[case]
    schema = log_schema(value_schema)
    stamped, reused, plain = _encode_both(make(), schema, kind)
    assert reused is not None
    # Plain pyarrow reads it, as the stream a segment file is.
    table = ipc.open_stream(pa.py_buffer(codec.schema_message(schema) + reused.message.to_pybytes())).read_all()
    assert table.schema == schema and table.equals(pa.Table.from_batches([stamped]))
    # rayka's read path: header, CRC, decode.
    message = codec.read_message_at(pa.py_buffer(reused.message.to_pybytes()), 0)
    message.verify()
    assert message.header == reused.header
    assert (message.header.base_offset, message.header.count, message.header.producer_id,
            message.header.sequence, message.header.leader_epoch) == (40, 700, "p-1", 3, 2)
    assert codec.is_compressed(message)
    assert codec.decode(message, schema).equals(stamped)
    # The same message pyarrow writes when it compresses the batch itself.
    assert reused.message.to_pybytes() == plain.message.to_pybytes()


def test_the_producers_compressed_bytes_are_stored_as_they_came(tmp_path, clock):
    """A producer that compressed with zstd level 9 (the topic's is the default, 1): the stored
    value buffer is the producer's, not one the partition compressed again."""
    values = _events(2000)
    wire = _wire(batch(values), "zstd", level=9)
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), clock=clock)
    log.append(reframe.read_produced(wire))
    produced = reframe.read_produced(wire)
    offset, length = produced.buffers()[-1]  # the value column's data buffer
    value_bytes = produced.body.slice(offset, length).to_pybytes()
    segment = b"".join(p.read_bytes() for p in tmp_path.glob("*.arrows"))
    assert value_bytes in segment
    again = codec.encode_batch(stamp_offsets(prepare_batch(produced.batch, log.schema, now_ms=0,
                                                           max_message_bytes=1 << 20), 0),
                               schema_size=0 + len(codec.schema_message(log.schema)), max_timestamp_ms=0,
                               append_ms=0, options=codec.write_options("zstd"))
    assert value_bytes not in again.message.to_pybytes()  # level 1 compresses it otherwise
    assert read_all(log) == (list(range(2000)), values)


def test_a_segment_mixing_reused_codecs_reads_back_and_each_batch_passes_its_crc(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    values = _events(1500)
    # (topic codec, producer codec): reused lz4, reused zstd, none, and a producer whose codec is
    # stale (lz4 into a zstd topic: compressed again, with zstd).
    steps = [("lz4", "lz4"), ("zstd", "zstd"), ("none", "none"), ("zstd", "lz4"), ("lz4", "lz4")]
    for i, (topic_codec, producer_codec) in enumerate(steps):
        log.config = log.config.replace(compression_type=topic_codec)
        log.append(reframe.read_produced(_wire(batch(values[i * 300:(i + 1) * 300]), producer_codec)))
    assert len(list(tmp_path.glob("*.arrows"))) == 1
    segment = next(tmp_path.glob("*.arrows"))
    assert ipc.open_stream(pa.memory_map(str(segment))).read_all().column("value").to_pylist() == values
    assert read_all(log) == (list(range(1500)), values)
    _, messages = _stored_messages(tmp_path, log.schema)
    assert [m.header.base_offset for m in messages] == [0, 300, 600, 900, 1200]
    for m in messages:
        m.verify()
    assert [reframe._frame(m.metadata).codec for m in messages] == ["lz4", "zstd", None, "zstd", "lz4"]


@pytest.mark.parametrize("where", ["metadata", "value buffer", "offset buffer"])
def test_a_damaged_byte_of_a_reused_message_fails_its_crc(tmp_path, clock, where):
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), clock=clock)
    log.append(reframe.read_produced(_wire(batch(_events(500)), "zstd")))
    data, [message] = _stored_messages(tmp_path, log.schema)
    raw = bytearray(data.to_pybytes())
    body_at = message.position + message.size - message.message.body.size
    buffers = reframe._structs(message.metadata, reframe._frame(message.metadata).buffers_at,
                               reframe._frame(message.metadata).buffer_count)
    at = {"metadata": message.position + 8 + 20,
          "value buffer": body_at + buffers[-1][0] + buffers[-1][1] - 3,
          "offset buffer": body_at + buffers[1][0] + 12}[where]
    raw[at] ^= 0x40
    with pytest.raises(CorruptRecordError):
        codec.read_message_at(pa.py_buffer(bytes(raw)), message.position).verify()


def test_a_reused_batch_is_still_validated(tmp_path, clock):
    log = PartitionLog(tmp_path, value_schema=TYPED, config=TopicConfig(compression_type="zstd",
                                                                       max_message_bytes=10_000), clock=clock)
    bad_type = pa.table({"user_id": pa.array(["x"] * 10)})
    with pytest.raises(SchemaMismatchError):
        log.append(reframe.read_produced(_wire(bad_type, "zstd")))
    too_big = pa.table({"note": pa.array(["a" * 20_000])})
    with pytest.raises(RecordTooLargeError):
        log.append(reframe.read_produced(_wire(too_big, "zstd")))
    assert log.log_end_offset == 0


def test_a_producers_damaged_compressed_buffer_is_refused_with_nothing_written(tmp_path, clock):
    wire = bytearray(_wire(batch(_events(500)), "zstd").to_pybytes())
    produced = reframe.read_produced(pa.py_buffer(bytes(wire)))
    offset, length = produced.buffers()[-1]
    body_at = len(wire) - 8 - produced.body.size  # the stream ends with its 8-byte end marker
    wire[body_at + offset + length // 2] ^= 0xFF
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), clock=clock)
    with pytest.raises(InvalidRecordError, match="not a readable Arrow IPC stream.*nothing of it was appended"):
        log.append(reframe.read_produced(pa.py_buffer(bytes(wire))))
    assert log.log_end_offset == 0


def test_streams_it_does_not_take_apart_are_read_whole():
    two_batches = pa.concat_tables([batch(_events(10)), batch(_events(10, 10))])
    assert isinstance(reframe.read_produced(_wire(two_batches, "zstd")), pa.Table)
    dictionary = pa.table({"value": pa.array(["a", "b", "a"]).dictionary_encode()})
    assert isinstance(reframe.read_produced(_wire(dictionary, "zstd")), pa.Table)
    empty = batch([])
    assert reframe.read_produced(_wire(empty, "zstd")).num_rows == 0


def test_a_two_batch_stream_appends_the_ordinary_way(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="lz4"), clock=clock)
    values = _events(20)
    log.append(reframe.read_produced(_wire(pa.concat_tables([batch(values[:10]), batch(values[10:])]), "lz4")))
    assert read_all(log) == (list(range(20)), values)


@pytest.mark.parametrize("case, shared", [
    ("value only", ["value"]),
    ("keys, timestamps and headers sent", ["timestamp_ms", "key", "headers", "value"]),
    ("typed, a column cast and nulls", ["key", "headers", "price", "note", "tags", "when"]),
])
def test_only_the_columns_the_partition_made_are_encoded_again(case, shared):
    """``offset`` always, and a column cast (user_id int32 -> int64) or filled in (timestamps that
    have nulls, missing keys and headers): the others are the producer's arrays and keep its compressed bytes."""
    make, value_schema = CASES[case]
    schema = log_schema(value_schema)
    produced = reframe.read_produced(_wire(make(), "zstd"))
    stamped = stamp_offsets(prepare_batch(produced.batch, schema, now_ms=7, max_message_bytes=1 << 20), 0)
    source = reframe._shared_columns(stamped, produced.batch)
    assert [schema.names[i] for i, j in enumerate(source) if j is not None] == shared


def test_a_batch_under_the_size_floor_is_compressed_again(tmp_path, clock, monkeypatch):
    """Reusing costs two small IPC writes: under REUSE_MIN_BYTES compressing again is cheaper."""
    monkeypatch.setattr(reframe, "REUSE_MIN_BYTES", 256 * 1024)
    values = _events(2000)
    small = batch(values[:100])
    assert small.nbytes < reframe.REUSE_MIN_BYTES
    wire = _wire(small, "zstd", level=9)
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), clock=clock)
    log.append(reframe.read_produced(wire))
    produced = reframe.read_produced(wire)
    offset, length = produced.buffers()[-1]
    assert produced.body.slice(offset, length).to_pybytes() not in _segment_bytes(tmp_path)
    big = pa.concat_tables([batch(values)] * 3).combine_chunks()
    assert big.nbytes >= reframe.REUSE_MIN_BYTES
    wire = _wire(big, "zstd", level=9)
    log.append(reframe.read_produced(wire))
    produced = reframe.read_produced(wire)
    offset, length = produced.buffers()[-1]
    assert produced.body.slice(offset, length).to_pybytes() in _segment_bytes(tmp_path)
    assert read_all(log)[1] == values[:100] + values * 3


@pytest.mark.parametrize("kind", ["lz4", "zstd"])
def test_what_the_producer_ships_takes_the_reusing_path(kind):
    """The producer's own wire format (accumulator.to_ipc, used by send_table and the batched
    send path) is one batch the partition can take apart, with the topic's codec."""
    from rayka.clients.accumulator import to_ipc

    table = batch(_events(3000), start_ts=1, keys=[b"k"] * 3000)
    produced = reframe.read_produced(to_ipc(table, codec.write_options(kind)))
    assert isinstance(produced, reframe.ProducedBatch) and produced.codec == kind
    assert produced.batch.equals(table.to_batches()[0])
