"""Bad arguments to send()/send_table() are refused by the call, and never poison a batch.

Runs the real Producer against partition logs without Ray (producer_helpers.FakeCluster).
"""

import array
import threading
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import rayka
from rayka.errors import (
    InvalidRecordError,
    OldTimestampWarning,
    ProducerClosedError,
    RecordTooLargeError,
    SchemaMismatchError,
    UnknownPartitionError,
)

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
    # Sizes are the partition's own: bytes, not items or characters.
    (dict(value=memoryview(array.array("d", [0.0] * 200))), RecordTooLargeError, "1601 bytes"),  # with the 1-byte key
    (dict(value=b"v" * 300, headers=[("\u00e9" * 400, b"")]), RecordTooLargeError, "1101 bytes"),
    (dict(value=b"v", headers=[("\udc80", b"x")]), InvalidRecordError, "header name"),
    (dict(value=b"v", headers={"ok": b"x", "\ud800z": None}), InvalidRecordError, "UTF-8"),
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


TYPED = pa.schema([("i32", pa.int32()), ("s", pa.string()), ("l", pa.list_(pa.int64()))])
BAD_TYPED = [
    ({"s": "\u00e9" * 600}, RecordTooLargeError, "1200 bytes"),  # 600 characters, 1200 UTF-8 bytes
    ({"l": list(range(1000))}, RecordTooLargeError, "8000 bytes"),  # the partition charged the batch average
    ({"i32": 2**70}, SchemaMismatchError, "'i32'"),
    ({"i32": 1.5}, SchemaMismatchError, "fraction"),
    ({"l": [1, 2.5]}, SchemaMismatchError, "fraction"),
    ({1: 2, "zz": 3}, SchemaMismatchError, "columns"),
    ({"s": "\udc80"}, SchemaMismatchError, "'s'"),
]


@pytest.mark.parametrize("bad,error,match", BAD_TYPED, ids=[repr(b)[:40] for b, _, _ in BAD_TYPED])
def test_a_bad_typed_value_is_refused_in_send_and_its_batch_is_delivered(fake, bad, error, match):
    (log,) = fake.create_topic("ty", partitions=1, schema=TYPED, config={"max.message.bytes": 1000})
    producer = rayka.Producer(cluster=fake, linger_ms=60_000)
    # Rows of 800 bytes of list each: legal, and they make the batch's average row large.
    good = [producer.send("ty", value={"i32": i, "s": "ok", "l": list(range(99))}) for i in range(5)]
    with pytest.raises(error, match=match):
        producer.send("ty", value=bad)
    good += [producer.send("ty", value={"i32": i, "s": "\u00e9" * 100, "l": [i]}) for i in range(5, 10)]
    producer.flush(timeout=30)
    assert [f.result(timeout=0).offset for f in good] == list(range(10))
    assert [r["i32"] for r in log.records()] == list(range(10))
    producer.close()


def test_a_float_with_no_fraction_goes_into_an_int_column_as_send_table_takes_it(fake):
    (log,) = fake.create_topic("ty", partitions=1, schema=TYPED)
    with rayka.Producer(cluster=fake) as producer:
        producer.send("ty", value={"i32": 2.0, "l": [3.0]}).get(10)
        producer.send_table("ty", pa.table({"i32": [4.0]})).get(10)
        with pytest.raises(pa.ArrowInvalid):  # what send_table does with 1.5 (the rule send() follows)
            pa.array([1.5]).cast(pa.int32())
    assert [(r["i32"], r["l"]) for r in log.records()] == [(2, [3]), (4, None)]


def test_a_lowered_max_message_bytes_splits_the_batch_and_resends_the_records_that_fit(fake):
    (part,) = fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=60_000)
    producer.send("t", value=b"before")
    producer.flush(timeout=10)
    # What alter_topic_config does to the partition; the producer's metadata still says 1 MiB.
    part.log.config = part.log.config.replace(max_message_bytes=1000)
    good = [producer.send("t", value=b"g%d" % i) for i in range(20)]
    bad = producer.send("t", value=b"x" * 2000)
    good += [producer.send("t", value=b"g%d" % i) for i in range(20, 40)]
    producer.flush(timeout=30)
    assert isinstance(bad.exception(0), RecordTooLargeError) and "1000" in str(bad.exception(0))
    assert bad.failed() and not any(f.failed() for f in good)
    assert [f.get(0).offset for f in good] == list(range(1, 41))
    # The producer now checks the partition's limit in send() itself.
    with pytest.raises(RecordTooLargeError, match="1000"):
        producer.send("t", value=b"y" * 1500)
    producer.send("t", value=b"after")
    producer.close()
    values = [r["value"] for r in part.records()]
    assert values == [b"before"] + [b"g%d" % i for i in range(40)] + [b"after"]  # once each, in order
    assert producer.metrics()["errors"] == 1


def test_a_batch_whose_records_all_exceed_a_lowered_limit_fails_each_and_the_next_is_written(fake):
    (part,) = fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=60_000)
    part.log.config = part.log.config.replace(max_message_bytes=100)
    bad = [producer.send("t", value=b"x" * 200) for _ in range(3)]
    errors = []
    bad[0].add_errback(errors.append)
    producer.flush(timeout=30)
    assert all(isinstance(f.exception(0), RecordTooLargeError) for f in bad) and len(errors) == 1
    ok = producer.send("t", value=b"ok")
    producer.close()
    assert ok.get(0).offset == 0 and [r["value"] for r in part.records()] == [b"ok"]


def test_a_send_racing_close_is_refused_not_left_pending(fake):
    (part,) = fake.create_topic("t", partitions=1)
    started, closed = threading.Event(), threading.Event()

    def slow(value):  # holds send() past its first "closed?" check until close() has returned
        started.set()
        closed.wait(10)
        return value

    producer = rayka.Producer(cluster=fake, value_serializer=slow)
    out = {}

    def send():
        try:
            out["future"] = producer.send("t", value=b"late")
        except ProducerClosedError as exc:
            out["error"] = exc

    thread = threading.Thread(target=send)
    thread.start()
    assert started.wait(10)
    producer.close()
    closed.set()
    thread.join(10)
    # The sender has stopped: a future now could never complete.
    assert "error" in out and "future" not in out and part.log.log_end_offset == 0


@pytest.mark.parametrize("option,value", [
    ("batch_size", float("nan")), ("batch_size", 1.5), ("buffer_memory", 2.5), ("linger_ms", float("inf")),
    ("linger_ms", float("nan")), ("max_block_ms", -1), ("delivery_timeout_ms", True), ("idempotent", "no"),
    ("idempotent", 0), ("key_serializer", "yaml"), ("value_serializer", 5),
])
def test_a_bad_producer_option_is_a_config_error_naming_it(fake, option, value):
    with pytest.raises(rayka.errors.ConfigError, match=option):
        rayka.Producer(cluster=fake, **{option: value})


def test_send_table_partition_given_as_a_numpy_int_answers_with_ints(fake):
    fake.create_topic("t", partitions=2)
    with rayka.Producer(cluster=fake) as producer:
        result = producer.send_table("t", pa.table({"value": [b"a"]}), partition=np.int64(1)).get(10)
    assert result == [(1, 0, 1)] and type(result[0][0]) is int


def test_send_table_refuses_an_offset_column(fake):
    logs = fake.create_topic("t", partitions=1)
    with rayka.Producer(cluster=fake) as producer:
        with pytest.raises(InvalidRecordError, match="'offset'.*assigned by the partition"):
            producer.send_table("t", pa.table({"value": [b"a"], "offset": [5]}))
    assert logs[0].log.log_end_offset == 0


def test_send_in_a_callback_with_the_buffer_full_raises_at_once(fake):
    first_part, held_part = fake.create_topic("t", partitions=2)
    first_part.gate.clear()
    held_part.gate.clear()  # holds 3000 bytes of the buffer until the end
    producer = rayka.Producer(cluster=fake, buffer_memory=10_000, max_block_ms=20_000, linger_ms=0)
    errors = []

    def callback(_):
        try:
            producer.send("t", value=b"y" * 9000, partition=0)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    first = producer.send("t", value=b"x" * 3000, partition=0)
    held = producer.send("t", value=b"x" * 3000, partition=1)
    first.add_callback(callback)
    started = time.monotonic()
    first_part.gate.set()
    deadline = time.monotonic() + 15
    while not errors and time.monotonic() < deadline:
        time.sleep(0.01)
    # Blocking would have waited max_block_ms (20 s): the completing thread frees no room while it waits.
    assert time.monotonic() - started < 10
    assert [type(e) for e in errors] == [rayka.errors.BufferFullError] and "callback" in str(errors[0])
    held_part.gate.set()
    producer.flush(timeout=30)
    assert first.get(0).offset == 0 and held.get(0).offset == 0
    producer.close()


def test_close_with_a_timeout_takes_about_that_long_fails_the_unsent_and_returns(fake):
    (part,) = fake.create_topic("t", partitions=1)
    part.gate.clear()  # the first batch is held in flight; the next waits behind it, unsent
    producer = rayka.Producer(cluster=fake, linger_ms=0)
    held = producer.send("t", value=b"a", partition=0)
    deadline = time.monotonic() + 10
    while producer._queue.inflight.get(("t", 0)) is not held._batch or held._batch.sequence < 0:
        assert time.monotonic() < deadline, "the first batch was never sent"
        time.sleep(0.005)
    unsent = producer.send("t", value=b"b", partition=0)
    started = time.monotonic()
    producer.close(timeout=0.5)
    took = time.monotonic() - started
    assert 0.4 < took < 0.9
    assert isinstance(unsent.exception(0), ProducerClosedError) and "closed with timeout" in str(
        unsent.exception(0))
    part.gate.set()
    assert held.get(10).offset == 0  # in flight when close gave up: it still completes
    with pytest.raises(ProducerClosedError):
        producer.send("t", value=b"c")
