"""The Spark source's pure parts: its options, streaming offsets and filters turned into
pyarrow expressions (no JVM, no Ray)."""

import datetime as dt

import pyarrow as pa
import pytest
from pyspark.sql import datasource as sds

from rayka.clients import spark_options as o
from rayka.errors import ConfigError

TABLE = pa.table({"amount": pa.array([1, 5, None, 9], pa.int64()),
                  "item": pa.array(["apple", "banana", "cherry", None], pa.string())})


def _kept(f):
    expr = o.checked_expression(f, TABLE.schema)
    assert expr is not None, f"{f} was not pushed"
    return TABLE.filter(expr).column("amount").to_pylist()


def test_offsets_options_in_kafka_forms():
    assert o.parse_offsets(None, "t", "startingOffsets") is None
    assert o.parse_offsets(" Earliest ", "t", "startingOffsets") == "earliest"
    assert o.parse_offsets('{"0": 10, "1": -2}', "t", "startingOffsets") == {0: 10, 1: o.EARLIEST}
    assert o.parse_offsets('{"t": {"2": -1}}', "t", "endingOffsets") == {2: o.LATEST}
    for bad in ("soon", "[1]", '{"x": 1}', '{"0": -5}', '{"0": "3"}', '{"-1": 3}'):
        with pytest.raises(ConfigError, match="Offsets"):
            o.parse_offsets(bad, "t", "startingOffsets")


def test_timestamps_in_ms_or_iso_are_utc():
    utc = dt.timezone.utc
    assert o.parse_timestamp("1764583200000", "startingTimestamp") == dt.datetime(2025, 12, 1, 10, tzinfo=utc)
    assert o.parse_timestamp("2025-12-01T10:00:00", "x") == dt.datetime(2025, 12, 1, 10, tzinfo=utc)
    assert o.parse_timestamp("2025-12-01T11:00:00+01:00", "x") == dt.datetime(2025, 12, 1, 10, tzinfo=utc)
    with pytest.raises(ConfigError, match="endingTimestamp"):
        o.parse_timestamp("yesterday", "endingTimestamp")


def test_counts_and_columns_are_checked():
    assert o.parse_positive_int("100", "maxRecordsPerPartition") == 100
    for bad in ("0", "-3", "many"):
        with pytest.raises(ConfigError, match="maxRecordsPerPartition"):
            o.parse_positive_int(bad, "maxRecordsPerPartition")
    assert o.parse_columns("offset, amount", ["offset", "amount", "key"]) == ["offset", "amount"]
    with pytest.raises(ConfigError, match="'nope'"):
        o.parse_columns("offset,nope", ["offset"])


def test_streaming_offsets_round_trip_as_json_keys():
    assert o.offsets_to_json({1: 5, 0: 7}) == {"0": 7, "1": 5}
    assert o.offsets_from_json({"0": 7, "1": 5}) == {0: 7, 1: 5}
    with pytest.raises(ConfigError, match="checkpoint"):
        o.offsets_from_json({"topic": {"0": 1}})


def test_max_offsets_per_trigger_is_shared_by_lag_and_never_exceeded():
    start, latest = {0: 0, 1: 100, 2: 50}, {0: 300, 1: 200, 2: 50}
    assert o.cap_offsets(start, latest, None) == latest
    assert o.cap_offsets(start, latest, 1000) == latest
    capped = o.cap_offsets(start, latest, 40)
    assert sum(capped[p] - start[p] for p in start) == 40
    assert capped == {0: 30, 1: 110, 2: 50}
    # a tiny budget still moves some lagging partition each trigger
    one = o.cap_offsets(start, latest, 1)
    assert sum(one[p] - start[p] for p in start) == 1
    # a partition new since the last batch starts from 0
    assert o.cap_offsets({0: 5}, {0: 5, 1: 4}, None) == {0: 5, 1: 4}


def test_comparisons_and_sets_keep_sparks_null_semantics():
    assert _kept(sds.GreaterThan(("amount",), 4)) == [5, 9]
    assert _kept(sds.LessThanOrEqual(("amount",), 5)) == [1, 5]
    assert _kept(sds.EqualTo(("amount",), 5)) == [5]
    assert _kept(sds.Not(sds.EqualTo(("amount",), 5))) == [1, 9]  # the null row is not kept
    assert _kept(sds.In(("amount",), (1, 9))) == [1, 9]
    assert _kept(sds.Not(sds.In(("amount",), (1, 9)))) == [5]  # NOT IN drops nulls as Spark does
    assert _kept(sds.IsNull(("amount",))) == [None]
    assert _kept(sds.IsNotNull(("item",))) == [1, 5, None]
    assert _kept(sds.EqualNullSafe(("amount",), 9)) == [9]
    assert _kept(sds.Not(sds.EqualNullSafe(("amount",), 9))) == [1, 5, None]


def test_string_filters():
    assert _kept(sds.StringStartsWith(("item",), "b")) == [5]
    assert _kept(sds.StringEndsWith(("item",), "rry")) == [None]
    assert _kept(sds.StringContains(("item",), "an")) == [5]


def test_filters_rayka_cannot_apply_are_left_to_spark():
    schema = TABLE.schema
    assert o.checked_expression(sds.EqualTo(("nested", "field"), 1), schema) is None
    assert o.checked_expression(sds.EqualTo(("missing",), 1), schema) is None
    assert o.checked_expression(sds.EqualTo(("amount",), "five"), schema) is None  # wrong literal type
    assert o.checked_expression(sds.In(("amount",), (None,)), schema) is None
    assert o.checked_expression(sds.EqualTo(("amount",), None), schema) is None
    # NOT (x IN (1, NULL)) keeps nothing in Spark (the IN is null where x != 1): not pushed.
    assert o.checked_expression(sds.Not(sds.In(("amount",), (1, None))), schema) is None
    # Spark ranks NaN above every number (and NaN = NaN); Arrow's comparisons do not: not pushed.
    floats = pa.schema([("score", pa.float64())])
    assert o.checked_expression(sds.GreaterThan(("score",), 1.0), floats) is None
    assert o.checked_expression(sds.EqualTo(("score",), float("nan")), floats) is None


def test_types_spark_lacks_are_widened_so_every_value_fits():
    schema = pa.schema([("a", pa.uint8()), ("b", pa.uint32()), ("c", pa.uint64()), ("d", pa.float16()),
                        ("e", pa.string())])
    wide = o.spark_ready(schema)
    assert wide.types == [pa.int16(), pa.int64(), pa.decimal128(20, 0), pa.float32(), pa.string()]
    big = pa.array([2**64 - 1, 0], pa.uint64())
    assert big.cast(wide.field("c").type).to_pylist()[0] == 2**64 - 1
