"""Kafka habits and first-hour safety on the producer: unknown options name the rayka way,
keyless records spread evenly (KIP-794), old timestamps warn, send_table says how to make a
typed topic. Without Ray (producer_helpers)."""

import time
import warnings

import pandas as pd
import pyarrow as pa
import pytest

import rayka
from rayka.errors import ConfigError, OldTimestampWarning, SchemaMismatchError

from producer_helpers import FakeCluster

HOUR_MS = 3_600_000


@pytest.fixture
def fake(tmp_path):
    cluster = FakeCluster(tmp_path)
    yield cluster
    cluster.close()


@pytest.mark.parametrize("option,match", [
    ({"bootstrap_servers": "localhost:9092"}, r"rayka\.connect\(address=\.\.\.\)"),
    ({"compression_type": "lz4"}, "topic config in rayka.*compression.type"),
    ({"retries": 5}, "delivery_timeout_ms"),
    ({"enable_idempotence": True}, "idempotent="),
    ({"max_request_size": 10}, "max.message.bytes"),
    ({"linger.ms": 5}, "use linger_ms="),
    ({"lingerms": 5}, "did you mean 'linger_ms'"),
    ({"zzz": 1}, "the options are acks"),
])
def test_an_unknown_option_is_a_config_error_naming_the_rayka_way(option, match):
    with pytest.raises(ConfigError, match=match) as info:
        rayka.Producer(**option)
    assert repr(next(iter(option))) in str(info.value)


def test_bad_option_values_are_config_errors():
    for bad in ({"delivery_timeout_ms": "long"}, {"retry_backoff_ms": -1}, {"linger_ms": True}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            rayka.Producer(**bad)


def test_keyless_records_spread_within_20_percent_of_even(fake):
    """100k keyless records over 4 partitions, each append taking a round trip: this landed
    1688/98312/0/0 when the partitioner moved on only when a batch was handed off."""
    logs = fake.create_topic("t", partitions=4)
    for log in logs:
        log.delay_s = 0.001
    producer = rayka.Producer(cluster=fake)
    for i in range(100_000):
        producer.send("t", value=b"value-%d" % i)
    producer.close(timeout=60)
    counts = [log.log.log_end_offset for log in logs]
    assert sum(counts) == 100_000
    assert all(abs(c - 25_000) <= 5_000 for c in counts), counts


def _now_ms():
    return time.time_ns() // 1_000_000


def test_a_record_older_than_retention_warns_once_per_topic(fake):
    fake.create_topic("a", partitions=1, config={"retention.ms": HOUR_MS})
    fake.create_topic("b", partitions=1, config={"retention.ms": HOUR_MS})
    fake.create_topic("forever", partitions=1, config={"retention.ms": -1})
    fake.create_topic("appended", partitions=1, config={"retention.ms": HOUR_MS,
                                                        "message.timestamp.type": "LogAppendTime"})
    producer = rayka.Producer(cluster=fake)
    old = _now_ms() - 2 * HOUR_MS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        producer.send("a", value=b"recent", timestamp_ms=_now_ms() - 1000)
        assert caught == []
        for _ in range(3):
            producer.send("a", value=b"old", timestamp_ms=old)
        producer.send("forever", value=b"old", timestamp_ms=old)
        producer.send("appended", value=b"old", timestamp_ms=old)
        assert len(caught) == 1
        producer.send_table("b", pa.table({"value": [b"x", b"y"], "timestamp_ms": [_now_ms(), old]}))
        producer.send_table("b", pa.table({"value": [b"x"], "timestamp_ms": [old]}))
    assert [w.category for w in caught] == [OldTimestampWarning] * 2
    assert "'a'" in str(caught[0].message) and "retention.ms" in str(caught[0].message)
    assert "'b'" in str(caught[1].message)
    producer.flush(timeout=10)
    assert producer.metrics()["records_sent"] == 1 + 3 + 1 + 1 + 3  # warned, not refused
    producer.close()


def test_send_table_without_a_value_column_says_how_to_make_a_typed_topic(fake):
    fake.create_topic("untyped", partitions=1)
    df = pd.DataFrame({"sym": ["A", "B"], "px": [1.5, 2.5], "key": [b"a", b"b"]})
    producer = rayka.Producer(cluster=fake)
    with pytest.raises(SchemaMismatchError, match=r"pa\.Schema\.from_pandas") as info:
        producer.send_table("untyped", df)
    advice = str(info.value)
    assert "'untyped' has no value schema" in advice and "['sym', 'px']" in advice
    # The advice works as written.
    schema = pa.Schema.from_pandas(df[["sym", "px"]], preserve_index=False)
    assert f"schema=pa.Schema.from_pandas(df[{['sym', 'px']}], preserve_index=False)" in advice
    (log,) = fake.create_topic("typed", partitions=1, schema=schema)
    producer.send_table("typed", df).result(timeout=10)
    producer.close()
    assert [(r["sym"], r["px"], r["key"]) for r in log.records()] == [("A", 1.5, b"a"), ("B", 2.5, b"b")]
    with rayka.Producer(cluster=fake) as other, pytest.raises(SchemaMismatchError, match=r"table\.schema"):
        other.send_table("untyped", pa.table({"n": [1]}))
