"""Producer futures and flush: callbacks have all run when flush() returns; kafka-python's
add_callback / add_errback / get(timeout); metrics(). Without Ray (producer_helpers)."""

import threading
import time

import pyarrow as pa
import pytest

import rayka
from rayka.errors import InvalidCallError, KafkaTimeoutError, PartitionUnavailableError, RecordTooLargeError

from producer_helpers import FakeCluster


@pytest.fixture
def fake(tmp_path):
    cluster = FakeCluster(tmp_path)
    yield cluster
    cluster.close()


def test_every_done_callback_has_run_when_flush_returns(fake):
    fake.create_topic("t", partitions=3)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    seen = {}

    def slow_callback(future):
        time.sleep(0.002)  # a callback that takes a while: flush must wait for it, not just the ack
        seen[future.result().offset, future.result().partition] = True

    for round_ in range(3):
        for i in range(100):
            producer.send("t", value=b"v", partition=i % 3).add_done_callback(slow_callback)
        producer.flush(timeout=60)
        assert len(seen) == 100 * (round_ + 1)
    producer.close()


def test_close_waits_for_callbacks_too(fake):
    fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    seen = []
    for i in range(50):
        producer.send("t", value=b"%d" % i).add_callback(lambda md: (time.sleep(0.002), seen.append(md.offset)))
    producer.close(timeout=60)
    assert sorted(seen) == list(range(50))


def test_add_callback_and_errback_follow_kafka_python(fake):
    (log,) = fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    got = []
    fut = producer.send("t", value=b"a")
    assert fut.add_callback(got.append, ) is fut  # chainable
    fut.add_callback(lambda tag, md, extra=None: got.append((tag, md.offset, extra)), "tag", extra=1)
    fut.add_errback(lambda exc: got.append(("errback", exc)))
    md = fut.get(timeout=10)
    producer.flush(timeout=10)
    assert got == [md, ("tag", 0, 1)] and fut.succeeded() and not fut.failed() and fut.is_done
    # Added after completion: they run at once, in the caller's thread.
    fut.add_callback(lambda md: got.append(("late", md.offset)))
    assert got[-1] == ("late", 0)

    log.fail_next.append(RecordTooLargeError("refused by the partition"))
    bad = producer.send("t", value=b"b")
    errors = []
    bad.add_errback(errors.append).add_callback(lambda md: errors.append("callback must not run"))
    producer.flush(timeout=10)
    assert len(errors) == 1 and isinstance(errors[0], RecordTooLargeError) and bad.failed()
    with pytest.raises(RecordTooLargeError):
        bad.get(timeout=1)
    late = []
    bad.add_errback(late.append)
    assert late == [errors[0]]
    producer.close()


def test_a_raising_callback_does_not_stop_the_others_or_flush(fake):
    fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    ran = []
    fut = producer.send("t", value=b"a")
    fut.add_callback(lambda md: 1 / 0)
    fut.add_callback(lambda md: ran.append(md.offset))
    producer.flush(timeout=10)
    assert ran == [0]
    producer.close()


def test_get_with_a_timeout_raises_kafka_timeout_while_the_append_is_held(fake):
    (log,) = fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    log.gate.clear()
    fut = producer.send("t", value=b"a")
    with pytest.raises(KafkaTimeoutError):
        fut.get(timeout=0.2)
    with pytest.raises(KafkaTimeoutError):
        producer.flush(timeout=0.2)
    log.gate.set()
    assert fut.get(timeout=10).offset == 0
    producer.close()


def test_table_future_callbacks(fake):
    fake.create_topic("t", partitions=2)
    producer = rayka.Producer(cluster=fake)
    got = []
    tf = producer.send_table("t", pa.table({"value": [b"x"] * 10}))
    tf.add_callback(got.append).add_errback(lambda e: got.append(("error", e)))
    assert tf.get(timeout=10) == [(0, 0, 5), (1, 0, 5)]
    producer.flush(timeout=10)
    assert got == [[(0, 0, 5), (1, 0, 5)]]
    producer.close()


def test_metrics_count_records_bytes_batches_retries_and_errors(fake):
    a = fake.create_topic("a", partitions=2)
    fake.create_topic("b", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1, retry_backoff_ms=1)
    for i in range(10):
        producer.send("a", value=b"12345", partition=i % 2)
    producer.flush(timeout=10)
    producer.send_table("b", pa.table({"value": [b"x"] * 7})).result(timeout=10)
    a[0].fail_next.append(PartitionUnavailableError("restarting"))  # retried, then written
    producer.send("a", value=b"r", partition=0).get(timeout=10)
    a[1].fail_next.append(RecordTooLargeError("refused"))  # fails for good: its records are errors
    with pytest.raises(RecordTooLargeError):
        producer.send("a", value=b"e", partition=1).get(timeout=10)
    producer.flush(timeout=10)
    m = producer.metrics()
    assert m["records_sent"] == 10 + 7 + 1 and m["retries"] == 1 and m["errors"] == 1
    assert m["topics"]["a"]["records_sent"] == 11 and m["topics"]["b"]["records_sent"] == 7
    assert m["topics"]["b"]["batches_sent"] == 1 and m["batches_sent"] >= 4
    assert m["bytes_sent"] == m["topics"]["a"]["bytes_sent"] + m["topics"]["b"]["bytes_sent"] > 11 * 5
    assert m["buffered_bytes"] == 0 and m["batches_in_flight"] == 0
    producer.close()


def test_callbacks_may_send_from_inside_a_callback(fake):
    """A callback runs outside the producer's lock: it may send (and flush waits for those too
    once they are queued)."""
    (log,) = fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    follow = []
    done = threading.Event()
    producer.send("t", value=b"first").add_callback(
        lambda md: (follow.append(producer.send("t", value=b"second")), done.set()))
    producer.flush(timeout=10)
    assert done.is_set()
    producer.flush(timeout=10)
    assert follow[0].get(timeout=1).offset == 1
    producer.close()
    assert [r["value"] for r in log.records()] == [b"first", b"second"]


def test_flush_waits_for_a_callback_still_running_on_an_acknowledged_record(fake):
    """The record is acknowledged (its future done) while its callback still runs: a flush
    started now must wait for the callback, though the batch is no longer in flight."""
    fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    started, release = threading.Event(), threading.Event()
    fut = producer.send("t", value=b"a")
    fut.add_callback(lambda md: (started.set(), release.wait(30)))
    assert started.wait(10) and fut.done()
    flusher = threading.Thread(target=producer.flush, kwargs={"timeout": 30})
    flusher.start()
    flusher.join(0.3)
    assert flusher.is_alive()  # still waiting for the callback
    release.set()
    flusher.join(10)
    assert not flusher.is_alive()
    producer.close()


def test_flush_inside_a_callback_is_refused_not_a_deadlock(fake):
    fake.create_topic("t", partitions=1)
    producer = rayka.Producer(cluster=fake, linger_ms=1)
    errors = []

    def flush_inside(md):
        try:
            producer.flush(timeout=5)
        except InvalidCallError as exc:
            errors.append(exc)

    producer.send("t", value=b"a").add_callback(flush_inside)
    producer.flush(timeout=10)
    assert len(errors) == 1 and "inside a producer callback" in str(errors[0])
    producer.close()
