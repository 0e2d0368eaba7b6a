"""Typed inputs and serializers end to end, on the shared Ray: every input kind and every
built-in serializer round-trips through a partition; a bad value leaves the log untouched."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pyarrow as pa
import pytest

import rayka
from rayka import TopicPartition
from rayka.errors import DeserializationError, SchemaMismatchError
from rayka.testing import consume_all
from typed_rows import AT, SCHEMA, Model, Row  # shared with the unit input tests


def _row(i):
    return {"name": f"r{i}", "n": i, "score": i / 2, "ok": i % 2 == 0, "at": AT}


def _end(topic):
    with rayka.Consumer() as c:
        return c.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]


def test_every_typed_input_round_trips_and_a_bad_one_appends_nothing(cluster, admin):
    admin.create_topic("typed_in", partitions=1, schema=SCHEMA)
    rows = [_row(i) for i in range(40)]
    table = pa.Table.from_pylist(rows[:5], schema=SCHEMA)
    with rayka.Producer(linger_ms=50) as p:
        p.send("typed_in", value=rows[0])
        p.send("typed_in", value=Row(**rows[1]))
        p.send("typed_in", value=Model(**rows[2]))
        with pytest.raises(SchemaMismatchError, match="column 'n' .* int64; str 'x'"):
            p.send("typed_in", value={**rows[3], "n": "x"})
        p.send("typed_in", value=rows[3])
        p.flush()
        inputs = [pa.Table.from_pylist(rows[4:9], schema=SCHEMA), table.to_batches()[0].slice(0, 0),
                  pa.Table.from_pylist(rows[9:14], schema=SCHEMA).to_batches()[0],
                  pa.Table.from_pylist(rows[14:19], schema=SCHEMA).to_pandas(),
                  pl.from_arrow(pa.Table.from_pylist(rows[19:24], schema=SCHEMA)),
                  rows[24:29], [Row(**r) for r in rows[29:34]], [Model(**r) for r in rows[34:40]]]
        for data in inputs:
            p.send_table("typed_in", data).result(timeout=30)
        before = _end("typed_in")
        bad = [Row(**r) for r in rows[:3]]
        bad[1].score = "high"
        with pytest.raises(SchemaMismatchError, match="row 1: column 'score'"):
            p.send_table("typed_in", bad)
        with pytest.raises(SchemaMismatchError, match="'n'.*row 0: str 'a'"):
            p.send_table("typed_in", pa.table({**pa.Table.from_pylist(rows[:2], schema=SCHEMA).to_pydict(),
                                               "n": ["a", "b"]}))
        p.flush()
        assert _end("typed_in") == before == 40
    c = rayka.Consumer("typed_in", auto_offset_reset="earliest")
    got = consume_all(c, 40)
    c.close()
    assert [r.value for r in got] == rows  # each exactly once, in order


def _sq(x):
    return x * x


@pytest.mark.parametrize("fmt,values", [
    ("str", ["a", "é", ""]),
    ("json", [{"a": [1, 2.5, None]}, "s", 3]),
    ("msgpack", [{"a": b"\x00", "b": [1, 2]}, 7]),
    ("pickle", [Row(**_row(1)), np.arange(4), _sq]),
])
def test_serializers_round_trip(cluster, admin, fmt, values):
    topic = f"ser_{fmt}"
    admin.create_topic(topic, partitions=1)
    with rayka.Producer(key_serializer="str", value_serializer=fmt) as p:
        for i, v in enumerate(values):
            p.send(topic, key=f"k{i}", value=v)
    c = rayka.Consumer(topic, auto_offset_reset="earliest", key_deserializer="str", value_deserializer=fmt,
                       allow_pickle=fmt == "pickle")
    got = consume_all(c, len(values))
    c.close()
    assert [r.key for r in got] == [f"k{i}" for i in range(len(values))]
    for r, v in zip(got, values):
        if fmt == "pickle" and callable(v):
            assert r.value(3) == 9
        elif isinstance(v, np.ndarray):
            assert (r.value == v).all()
        else:
            assert r.value == v


def test_an_undecodable_record_is_reported_and_nothing_is_lost(cluster, admin):
    admin.create_topic("ser_bad", partitions=1)
    with rayka.Producer() as p:
        for v in (b'{"a":1}', b"[2]", b"oops", b"4"):
            p.send("ser_bad", value=v)
    tp = TopicPartition("ser_bad", 0)
    c = rayka.Consumer(auto_offset_reset="earliest", value_deserializer="json")
    c.assign([tp])
    seen = []
    deadline = time.monotonic() + 30
    error = None
    while time.monotonic() < deadline and error is None:
        try:
            seen += c.poll(timeout_ms=500)
        except DeserializationError as exc:
            error = exc
    assert [r.value for r in seen] == [{"a": 1}, [2]]
    assert (error.topic, error.partition, error.offset, error.deserializer) == ("ser_bad", 0, 2, "'json'")
    assert c.position(tp) == 2
    c.seek(tp, error.next_offset)
    assert [r.value for r in consume_all(c, 1)] == [4]
    c.close()


def test_cli_key_and_value_formats(ray_session, tmp_path):
    import json as _json
    import os
    import sys
    import uuid

    sys.path.insert(0, os.path.dirname(__file__))
    from _cli_batch import run_batch

    name = f"cs-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, RAYKA_CLUSTER=name, RAYKA_DATA_DIR=str(tmp_path / "data"))
    env.pop("RAY_ADDRESS", None)
    cluster = rayka.connect(cluster_name=name, data_dir=tmp_path / "data")
    try:
        rayka.Admin(cluster).create_topic("cli_ser", partitions=1)
        base = ["--address", ray_session]
        consume = base + ["consume", "cli_ser", "--from-beginning", "--max", "2", "--timeout-ms", "20000",
                          "--print-key"]
        outs = run_batch([
            (base + ["produce", "cli_ser", "--key-sep", "|", "--key-format", "str", "--value-format", "msgpack"],
             b'k1|{"a": [1, 2]}\nk2|"text"\n'),
            (base + ["produce", "cli_ser", "--value-format", "json"], b"not json\n"),
            (consume + ["--value-format", "msgpack"], b""),
            (consume + ["--value-format", "pickle"], b""),
            (consume, b""),
        ], env)
        assert outs[0].returncode == 0, outs[0].stderr.decode()
        assert outs[1].returncode != 0 and b"read as JSON" in outs[1].stderr
        lines = outs[2].stdout.decode().splitlines()
        assert [line.split("\t") for line in lines] == [["k1", '{"a":[1,2]}'], ["k2", "text"]]
        assert outs[3].returncode != 0 and b"--allow-pickle" in outs[3].stderr
        raw = outs[4].stdout.split(b"\n")[0].split(b"\t")[1]
        assert msgpack_unpack(raw) == {"a": [1, 2]}
        assert _json  # the printed values above are JSON text
    finally:
        cluster.shutdown(delete_data=True)


def msgpack_unpack(data):
    import msgpack

    return msgpack.unpackb(data)
