"""Built-in serializers ("str", "json", "pickle", "msgpack") and their refusals, without Ray."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow as pa
import pytest

from rayka.clients.consumer_options import consumer_configs
from rayka.clients.producer_options import producer_config
from rayka.clients.record_views import to_records
from rayka.clients.serializers import FORMATS, deserializer, serializer
from rayka.clients.types import TopicPartition
from rayka.errors import ConfigError, DeserializationError, InvalidRecordError
from rayka.partitions.records import log_schema


@dataclasses.dataclass
class Point:
    x: int
    y: float


def _sq(v):
    return v * v


VALUES = {
    "str": ["", "héllo", "a" * 1000],
    "json": [{"a": 1, "b": [1, 2.5, None, True], "c": "é"}, [], "x", 3, None],
    "msgpack": [{"a": 1, "b": [1, 2.5, None, True], "c": "é", 1: b"\x00"}, [], b"raw", 2**63],
    "pickle": [Point(1, 2.0), {"set": {1, 2}}, (1, "t")],
}


@pytest.mark.parametrize("name", FORMATS)
def test_round_trip(name):
    ser, de = serializer("value_serializer", name), deserializer("value_deserializer", name, allow_pickle=True)
    for v in VALUES[name]:
        data = ser(v)
        assert isinstance(data, bytes)
        assert de(data) == v


def test_pickle_carries_functions_and_arrays():
    ser, de = serializer("v", "pickle"), deserializer("v", "pickle", allow_pickle=True)
    assert de(ser(lambda x: x + 1))(2) == 3
    assert de(ser(_sq))(3) == 9
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    back = de(ser(arr))
    assert back.dtype == arr.dtype and (back == arr).all()


def test_json_is_compact_and_same_as_stdlib_for_common_values():
    ser = serializer("v", "json")
    for v in VALUES["json"]:
        assert ser(v) == json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def test_unencodable_value_names_the_serializer():
    with pytest.raises(InvalidRecordError, match="value_serializer='json'"):
        serializer("value_serializer", "json")(object())
    with pytest.raises(InvalidRecordError, match="'str'"):
        serializer("value_serializer", "str")(b"bytes")
    with pytest.raises(InvalidRecordError, match="msgpack"):
        serializer("value_serializer", "msgpack")(object())


def test_unknown_name_lists_the_formats():
    with pytest.raises(ConfigError, match="'str', 'json', 'pickle', 'msgpack'"):
        producer_config({"value_serializer": "yaml"})
    with pytest.raises(ConfigError, match="msgpack"):
        consumer_configs({"key_deserializer": "avro"})


def test_options_take_names_and_callables():
    config = producer_config({"key_serializer": "str", "value_serializer": str.encode})
    assert config.key_serializer("k") == b"k" and config.value_serializer is str.encode
    config, _ = consumer_configs({"value_deserializer": "JSON"})
    assert config.value_deserializer(b'{"a":1}') == {"a": 1}


def test_consumer_refuses_pickle_without_opt_in():
    with pytest.raises(ConfigError, match="allow_pickle=True.*runs"):
        consumer_configs({"value_deserializer": "pickle"})
    with pytest.raises(ConfigError, match="allow_pickle"):
        consumer_configs({"value_deserializer": "pickle", "allow_pickle": "yes"})
    config, _ = consumer_configs({"value_deserializer": "pickle", "allow_pickle": True})
    assert config.value_deserializer(serializer("v", "pickle")(Point(1, 2.0))) == Point(1, 2.0)


def _batch(values):
    n = len(values)
    schema = log_schema()
    arrays = [pa.array(range(10, 10 + n), pa.int64()), pa.array([0] * n, pa.int64()),
              pa.nulls(n, pa.binary()), pa.nulls(n, schema.field("headers").type), pa.array(values, pa.binary())]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def test_undecodable_value_names_record_and_keeps_those_before():
    tp = TopicPartition("t", 3)
    batch = _batch([b'{"a":1}', b"[2]", b"not json", b"3"])
    with pytest.raises(DeserializationError) as info:
        to_records(tp, batch, None, None, deserializer("value_deserializer", "json"))
    err = info.value
    assert (err.topic, err.partition, err.offset, err.next_offset) == ("t", 3, 12, 13)
    assert "t-3 at offset 12" in str(err) and "'json'" in str(err)
    assert [r.value for r in err.records] == [{"a": 1}, [2]]
    assert [r.offset for r in err.records] == [10, 11]


def test_undecodable_by_a_callable_names_it():
    with pytest.raises(DeserializationError, match="value_deserializer bytes.decode"):
        to_records(TopicPartition("t", 0), _batch([b"ok", b"\xff"]), None, None, bytes.decode)


def test_stdlib_json_fallback_gives_orjson_bytes_for_common_values(monkeypatch):
    import sys

    from rayka.clients import serializers

    orjson_dumps, orjson_loads = serializers._json_codec()
    monkeypatch.setitem(sys.modules, "orjson", None)  # as if not installed
    assert serializers.json_backend() == "json"
    std_dumps, std_loads = serializers._json_codec()
    assert std_dumps is not orjson_dumps
    for v in VALUES["json"] + [{"k": [1.5, -0.25, 10**18]}, {"é": "\u2028"}]:
        assert std_dumps(v) == orjson_dumps(v), v
    # The documented difference: an exponent's spelling (1e-07 vs 1e-7); both read back equal.
    assert (std_dumps(1e-7), orjson_dumps(1e-7)) == (b"1e-07", b"1e-7")
    assert std_loads(std_dumps(1e-7)) == orjson_loads(orjson_dumps(1e-7)) == 1e-7
    with pytest.raises(ValueError):
        std_dumps(float("nan"))  # refused by both, so neither writes what the other cannot read


class _FakeConsumer:
    """What Consumer._decoded hands decode_drained: _to_records and seek."""

    def __init__(self, fail_at):
        self.fail_at, self.seeks = fail_at, {}

    def _to_records(self, tp, batch):
        return to_records(tp, batch, None, None, deserializer("value_deserializer", "json")
                          if tp == self.fail_at else None)

    def seek(self, tp, offset):
        self.seeks[tp] = offset


class _State:
    def __init__(self, tp):
        self.tp = tp


def test_poll_returns_records_before_a_bad_one_then_raises_moving_the_others_back():
    from rayka.clients.record_views import decode_drained

    bad, other = TopicPartition("t", 0), TopicPartition("t", 1)
    fake = _FakeConsumer(bad)
    drained = [(_State(bad), [_batch([b"1", b"oops"])]), (_State(other), [_batch([b"x", b"y"])])]
    out = decode_drained(drained, fake._to_records, fake.seek)
    assert [(tp.partition, [r.offset for r in recs]) for tp, recs in out] == [(0, [10]), (1, [10, 11])]
    assert fake.seeks == {bad: 11}
    # The next poll starts at the bad record: nothing of its partition before it, so it raises, and
    # the other partition drained with it goes back to its first record (none is skipped unseen).
    fake = _FakeConsumer(bad)
    with pytest.raises(DeserializationError) as info:
        decode_drained([(_State(bad), [_batch([b"oops", b"2"])]), (_State(other), [_batch([b"z"])])],
                       fake._to_records, fake.seek)
    assert info.value.offset == 10 and fake.seeks == {bad: 10, other: 10}
