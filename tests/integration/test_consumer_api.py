"""Kafka habits of the Consumer: OffsetAndMetadata commits, poll_by_partition, topics(), metrics()."""

import time

import pytest

import rayka
from rayka import OffsetAndMetadata, TopicPartition
from rayka.errors import ConfigError

from rayka.testing import consume_all


def _produce(topic, n, partitions):
    with rayka.Producer() as p:
        for i in range(n):
            p.send(topic, value=b"%d" % i, partition=i % partitions)


def test_commit_with_metadata_is_returned_by_committed(cluster, admin):
    admin.create_topic("meta", partitions=2)
    _produce("meta", 20, 2)
    c = rayka.Consumer("meta", group_id="gm", auto_offset_reset="earliest", enable_auto_commit=False)
    assert len(consume_all(c, 20)) == 20
    tp0, tp1 = TopicPartition("meta", 0), TopicPartition("meta", 1)
    c.commit({tp0: OffsetAndMetadata(7, "checkpoint-7"), tp1: 9})
    assert c.committed(tp0) == 7 and c.committed(tp1) == 9
    assert c.committed(tp0, metadata=True) == OffsetAndMetadata(7, "checkpoint-7")
    assert c.committed(tp1, metadata=True) == OffsetAndMetadata(9, "")
    with pytest.raises(ConfigError, match="meta-0"):
        c.commit({tp0: OffsetAndMetadata(8, b"not a str")})
    assert c.committed(tp0, metadata=True) == OffsetAndMetadata(7, "checkpoint-7")
    done = []
    ref = c.commit_async({tp1: OffsetAndMetadata(10, "async")}, callback=lambda offs, err: done.append(err))
    assert ref is not None
    deadline = time.monotonic() + 10
    while not done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert done == [None] and c.committed(tp1, metadata=True) == OffsetAndMetadata(10, "async")
    c.close(autocommit=False)
    again = rayka.Consumer("meta", group_id="gm", enable_auto_commit=False)
    assert again.committed(tp0, metadata=True) == OffsetAndMetadata(7, "checkpoint-7")
    again.close()


def test_poll_by_partition_groups_records_as_kafka_python_does(cluster, admin):
    admin.create_topic("bypart", partitions=3)
    _produce("bypart", 300, 3)
    c = rayka.Consumer("bypart", auto_offset_reset="earliest")
    got: dict = {}
    deadline = time.monotonic() + 30
    while sum(len(v) for v in got.values()) < 300 and time.monotonic() < deadline:
        for tp, records in c.poll_by_partition(timeout_ms=500, max_records=70).items():
            assert records and all(r.partition == tp.partition and r.topic == tp.topic for r in records)
            got.setdefault(tp, []).extend(records)
    assert set(got) == {TopicPartition("bypart", p) for p in range(3)}
    for tp, records in got.items():
        assert [r.offset for r in records] == list(range(100))
        assert [int(r.value) for r in records] == list(range(tp.partition, 300, 3))
    assert c.poll_by_partition(timeout_ms=50) == {}
    c.close()


def test_topics_and_metrics(cluster, admin):
    admin.create_topic("m1", partitions=2)
    admin.create_topic("m2", partitions=1)
    c = rayka.Consumer("m1", auto_offset_reset="earliest", max_poll_records=100)
    assert c.topics() == {"m1", "m2"}
    assert c.partitions_for_topic("m1") == {0, 1}
    empty = c.metrics()
    assert empty["records_received"] == 0 and empty["records_lag_max"] is None
    _produce("m1", 1000, 2)
    got = []
    deadline = time.monotonic() + 30
    while (len(got) < 300 or {r.partition for r in got} != {0, 1}) and time.monotonic() < deadline:
        got += c.poll(timeout_ms=500, max_records=100)  # both partitions fetched: both lags known
    m = c.metrics()
    assert m["records_received"] == len(got) >= 300 and len(got) < 1000
    assert m["records_fetched"] >= len(got) and m["fetches"] >= 2 and m["batches_fetched"] >= 1
    assert m["bytes_fetched"] > 1000 * 3  # every fetched value travelled
    positions = {tp: c.position(tp) for tp in c.assignment()}
    assert m["records_lag"] == {tp: 500 - positions[tp] for tp in positions}, "lag = end - position"
    assert m["records_lag_max"] == max(m["records_lag"].values())
    assert m["polls"] >= 1 and m["unavailable"] == 0 and m["fetch_errors"] == 0
    rest = consume_all(c, 1000 - len(got))
    assert len(got) + len(rest) == 1000 and c.metrics()["records_lag_max"] == 0
    c.close()
