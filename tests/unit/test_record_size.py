"""send() and the partition count a record's size by one rule (rayka.partitions.record_size)."""

import random

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from rayka.clients.accumulator import ProduceBatch
from rayka.clients.record_checks import check_headers
from rayka.clients.serde import check_row
from rayka.partitions.record_size import bytes_record_size, column_bits, record_sizes
from rayka.partitions.records import log_schema, prepare_batch

SCHEMA = pa.schema([
    ("i", pa.int32()), ("flag", pa.bool_()), ("s", pa.string()), ("b", pa.binary()),
    ("l", pa.list_(pa.int64())), ("ls", pa.list_(pa.string())),
    ("st", pa.struct([("x", pa.float64()), ("t", pa.string())])), ("m", pa.map_(pa.string(), pa.int16())),
    ("ts", pa.timestamp("ms")),
])


def _text(rng):
    return "".join(rng.choice("aé€😀") for _ in range(rng.randrange(0, 12)))


def _record(rng):
    value = {}
    for name, make in (("i", lambda: rng.randrange(-1000, 1000)), ("flag", lambda: rng.random() < 0.5),
                       ("s", lambda: _text(rng)), ("b", lambda: bytes(rng.randrange(30))),
                       ("l", lambda: [rng.randrange(9) for _ in range(rng.randrange(20))]),
                       ("ls", lambda: [_text(rng) for _ in range(rng.randrange(4))]),
                       ("st", lambda: {"x": rng.random(), "t": _text(rng)} if rng.random() < 0.8 else {"x": None}),
                       ("m", lambda: [(_text(rng), rng.randrange(9)) for _ in range(rng.randrange(3))]),
                       ("ts", lambda: rng.randrange(2**40))):
        if rng.random() < 0.8:
            value[name] = make()
    key = bytes(rng.randrange(10)) if rng.random() < 0.5 else None
    headers = [(_text(rng), bytes(rng.randrange(5)) if rng.random() < 0.8 else None)
               for _ in range(rng.randrange(3))] if rng.random() < 0.5 else None
    return key, value, headers


def test_send_and_the_partition_count_every_record_alike():
    rng = random.Random(7)
    batch = ProduceBatch("t", 0, SCHEMA)
    expected = []
    for _ in range(300):
        key, value, headers = _record(rng)
        header_bytes = check_headers(headers)[1] if headers is not None else 0
        size = bytes_record_size(key, check_row(value, SCHEMA, "t"), header_bytes)
        batch.add(key, value, 0, headers, size)
        expected.append(size)
    stored = prepare_batch(ipc.open_stream(batch.build()).read_all(), log_schema(SCHEMA), now_ms=0,
                           max_message_bytes=1 << 40)
    got = record_sizes(stored.column(2), stored.column(3), [stored.column(n) for n in SCHEMA.names])
    assert got.tolist() == expected
    # ... also on any slice of the batch (a slice's list offsets point into the whole child).
    part = stored.slice(100, 50)
    got = record_sizes(part.column(2), part.column(3), [part.column(n) for n in SCHEMA.names])
    assert got.tolist() == expected[100:150]


def test_a_row_counts_what_it_holds_not_the_batch_average():
    lists = pa.array([[1] * 1000, [1], None], pa.list_(pa.int64()))
    assert column_bits(lists).tolist() == [64_000, 64, 0]
    text = pa.array(["é" * 600, "", None])
    assert (column_bits(text) // 8).tolist() == [1200, 0, 0]
    # Bools are bits, rounded up once per record.
    sizes = record_sizes(pa.nulls(3, pa.binary()), pa.nulls(3, pa.map_(pa.string(), pa.binary())),
                         [pa.array([True, False, None]), pa.array([True, None, None])])
    assert np.asarray(sizes).tolist() == [1, 1, 0]
