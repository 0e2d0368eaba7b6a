"""Bad arguments to send()/send_table() are refused by the call, and never poison a batch.

Runs the real Producer against partition logs without Ray (producer_helpers.FakeCluster).
"""

import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import rayka
from rayka.errors import InvalidRecordError, OldTimestampWarning, RecordTooLargeError, UnknownPartitionError

from producer_helpers import FakeCluster


@pytest.fixture
def fake(tmp_path):
    cluster = FakeCluster(tmp_path)
    yield cluster
    cluster.close()


BAD_SENDS = [
    (dict(timestamp_ms="x"), InvalidRecordError, "timestamp_ms"),
    (dict(timestamp_ms=2**70), InvalidRecordError, "timestamp_ms"),
    (dict(timestamp_ms=-1), InvalidRecordError, "timestamp_ms"),
    (dict(timestamp_ms=True), InvalidRecordError, "timestamp_ms"),
    (dict(timestamp_ms=1.5e12), InvalidRecordError, "timestamp_ms"),
    (dict(headers="notalist"), InvalidRecordError, "headers"),
    (dict(headers=[("a", b"x", b"y")]), InvalidRecordError, "pairs"),
    (dict(headers=[("a",)]), InvalidRecordError, "pairs"),
    (dict(headers=[(1, b"x")]), InvalidRecordError, "header names"),
    (dict(headers={"a": "text"}), InvalidRecordError, "header 'a'"),
    (dict(headers=5), InvalidRecordError, "headers"),
    (dict(partition=True), InvalidRecordError, "partition"),
    (dict(partition="0"), InvalidRecordError, "partition"),
    (dict(partition=1.0), InvalidRecordError, "partition"),
    (dict(partition=7), UnknownPartitionError, "no partition 7"),
    (dict(partition=-1), UnknownPartitionError, "no partition -1"),
    (dict(key=42), InvalidRecordError, "key_serializer"),
    (dict(value="text"), InvalidRecordError, "value_serializer"),
    (dict(value=b"x" * 2000), RecordTooLargeError, "max.message.bytes"),
]


@pytest.mark.parametrize("bad,error,match", BAD_SENDS, ids=[repr(b) for b, _, _ in BAD_SENDS])
def test_a_bad_argument_is_refused_in_send_and_its_batch_is_delivered(fake, bad, error, match):
    (log,) = fake.create_topic("t", partitions=1, config={"max.message.bytes": 1000})
    # A long linger keeps all good records in one open batch with the refused one's place.
    producer = rayka.Producer(cluster=fake, linger_ms=60_000)
    good = [producer.send("t", value=b"good-%d" % i, key=b"k") for i in range(50)]
    args = dict(value=b"bad", key=b"k", partition=0)
    args.update(bad)
    with pytest.raises(error, match=match):
        producer.send("t", **args)
    good += [producer.send("t", value=b"good-%d" % i, key=b"k") for i in range(50, 100)]
    producer.flush(timeout=30)
    assert [f.result(timeout=0).offset for f in good] == list(range(100))
    assert [r["value"] for r in log.records()] == [b"good-%d" % i for i in range(100)]
    producer.close()


def test_bad_input_errors_are_type_and_value_errors_and_a_wrong_topic_is_named(fake):
    fake.create_topic("t", partitions=2)
    producer = rayka.Producer(cluster=fake)
    with pytest.raises(TypeError):
        producer.send("t", value=b"v", timestamp_ms="x")
    with pytest.raises(ValueError):
        producer.send("t", value=b"v", timestamp_ms=-5)
    for topic in (b"t", ["t"], None, ""):
        with pytest.raises(InvalidRecordError, match="topic"):
            producer.send(topic, value=b"v")
    with pytest.raises(InvalidRecordError, match="topic"):
        producer.send_table(None, pa.table({"value": [b"v"]}))
    producer.close()


def test_numpy_ints_and_good_headers_are_taken(fake):
    logs = fake.create_topic("t", partitions=2)
    producer = rayka.Producer(cluster=fake)
    now_ms = time.time_ns() // 1_000_000
    a = producer.send("t", value=b"a", partition=np.int64(1), timestamp_ms=np.int64(now_ms),
                      headers=[("h", b"1"), ("h", bytearray(b"2")), ("n", None)])
    with pytest.warns(OldTimestampWarning):  # 0 is a valid timestamp, if an old one
        b = producer.send("t", value=b"b", partition=0, timestamp_ms=0, headers={"x": memoryview(b"y")})
    assert (a.result(timeout=10).partition, a.result().timestamp_ms) == (1, now_ms)
    assert b.result(timeout=10).timestamp_ms == 0
    producer.close()
    assert logs[1].records()[0]["headers"] == [("h", b"1"), ("h", b"2"), ("n", None)]
    assert logs[0].records()[0]["headers"] == [("x", b"y")]


BAD_TABLES = [
    ({"timestamp_ms": pa.array(["1", "2", "3"])}, InvalidRecordError, "timestamp_ms"),
    ({"timestamp_ms": pa.array([1.0, 2.0, 3.0])}, InvalidRecordError, "timestamp_ms"),
    ({"timestamp_ms": pa.array([1, -1, 3], pa.int64())}, InvalidRecordError, "timestamp_ms"),
    ({"timestamp_ms": pa.array([1, 2**64 - 1, 3], pa.uint64())}, InvalidRecordError, "timestamp_ms"),
    ({"partition": pa.array([True, False, True])}, InvalidRecordError, "partition"),
    ({"partition": pa.array([0, None, 1], pa.int64())}, InvalidRecordError, "partition"),
    ({"partition": pa.array([0.0, 1.0, 1.0])}, InvalidRecordError, "partition"),
    ({"partition": pa.array([0, 1, 9], pa.int32())}, UnknownPartitionError, "partition"),
    ({"headers": pa.array([{"a": b"x"}] * 3)}, InvalidRecordError, "headers"),
    ({"headers": pa.array(["a", "b", "c"])}, InvalidRecordError, "headers"),
    ({"key": pa.array([1, 2, 3])}, InvalidRecordError, "key"),
    ({"key": pa.array(["a", "b", "c"])}, InvalidRecordError, "encode"),
]


@pytest.mark.parametrize("columns,error,match", BAD_TABLES, ids=[str(list(c.values())[0].type) + "-" + list(c)[0]
                                                                  for c, _, _ in BAD_TABLES])
def test_a_bad_send_table_column_is_refused_before_anything_is_sent(fake, columns, error, match):
    logs = fake.create_topic("t", partitions=2)
    producer = rayka.Producer(cluster=fake)
    table = pa.table({"value": [b"a", b"b", b"c"], **columns})
    with pytest.raises(error, match=match):
        producer.send_table("t", table)
    producer.flush(timeout=10)
    assert [h.log.log_end_offset for h in logs] == [0, 0] and sum(h.calls for h in logs) == 0
    producer.send_table("t", pa.table({"value": [b"a", b"b", b"c"]})).result(timeout=10)
    producer.close()
    assert sum(h.log.log_end_offset for h in logs) == 3


def test_send_table_takes_a_datetime_timestamp_column_as_milliseconds(fake):
    (log,) = fake.create_topic("t", partitions=1)
    now = pd.Timestamp.now(tz="UTC").floor("ms")
    df = pd.DataFrame({"value": [b"a", b"b"], "timestamp_ms": [now, now + pd.Timedelta(microseconds=1500)]})
    with rayka.Producer(cluster=fake) as producer:
        producer.send_table("t", df).result(timeout=10)
    ms = int(now.value // 1_000_000)
    assert [r["timestamp_ms"] for r in log.records()] == [ms, ms + 1]


def test_send_table_partition_argument_and_castable_headers(fake):
    logs = fake.create_topic("t", partitions=2)
    producer = rayka.Producer(cluster=fake)
    with pytest.raises(InvalidRecordError, match="partition"):
        producer.send_table("t", pa.table({"value": [b"a"]}), partition=True)
    with pytest.raises(UnknownPartitionError):
        producer.send_table("t", pa.table({"value": [b"a"]}), partition=2)
    headers = pa.array([[("k", b"v")]], pa.map_(pa.string(), pa.binary()))
    producer.send_table("t", pa.table({"value": [b"a"], "headers": headers}), partition=1).result(timeout=10)
    producer.close()
    assert logs[1].records()[0]["headers"] == [("k", b"v")] and logs[0].log.log_end_offset == 0
