"""send_table chunks under acks="all" with idempotence are pipelined: the next chunk is written
while earlier ones wait for their replicas (clients/sender.py), at most MAX_ACKING of them, with
per-partition order kept and nothing written twice when a wait or a write fails and is retried.
Without Ray (producer_helpers: the partitions are real logs; ``ack_gate`` holds the waits)."""

import pyarrow as pa
import pytest

import rayka
from rayka.clients import bulk
from rayka.clients.sender import MAX_ACKING
from rayka.errors import NotEnoughReplicasError
from rayka.testing import wait_for

from producer_helpers import FakeCluster

ROWS = 2_000


@pytest.fixture
def fake(tmp_path, monkeypatch):
    monkeypatch.setattr(bulk, "MAX_CHUNK_BYTES", 2_000)  # 2,000 rows of 13 bytes: 14 chunks
    cluster = FakeCluster(tmp_path)
    yield cluster
    cluster.close()


def table():
    return pa.table({"value": pa.array([b"v%08d" % i for i in range(ROWS)], pa.binary())})


def stored_values(partition):
    return [r["value"] for r in partition.records()]


def test_chunks_are_written_while_earlier_ones_wait_for_their_replicas(fake):
    (part,) = fake.create_topic("t", partitions=1)
    part.ack_gate.clear()  # the followers copy nothing yet
    with rayka.Producer(cluster=fake, acks="all") as p:
        fut = p.send_table("t", table())
        wait_for(lambda: part.acks_waiting == MAX_ACKING, timeout_s=10, what="chunks written ahead")
        assert part.calls == MAX_ACKING  # bounded: no more writes until one is acknowledged
        assert not fut.done()  # written is not acknowledged: acks="all" still waits
        part.ack_gate.set()
        fut.result(timeout=30)
    assert part.calls > MAX_ACKING
    assert stored_values(part) == table().column("value").to_pylist()  # in order, once


def test_a_failed_wait_is_retried_in_order_and_written_once(fake):
    (part,) = fake.create_topic("t", partitions=1)
    part.fail_acks += [NotEnoughReplicasError("not copied in time"), NotEnoughReplicasError("again")]
    with rayka.Producer(cluster=fake, acks="all", retry_backoff_ms=1) as p:
        p.send_table("t", table()).result(timeout=30)
        assert p.metrics()["retries"] >= 2
    assert stored_values(part) == table().column("value").to_pylist()


def test_a_failed_write_behind_waiting_chunks_keeps_the_order(fake):
    (part,) = fake.create_topic("t", partitions=1)
    part.ack_gate.clear()
    with rayka.Producer(cluster=fake, acks="all", retry_backoff_ms=1) as p:
        fut = p.send_table("t", table())
        wait_for(lambda: part.acks_waiting == MAX_ACKING, timeout_s=10, what="chunks written ahead")
        part.fail_next.append(NotEnoughReplicasError("the ISR shrank"))  # the next write is refused
        part.fail_acks.append(NotEnoughReplicasError("not copied in time"))  # and the oldest wait fails
        part.ack_gate.set()
        fut.result(timeout=30)
    assert stored_values(part) == table().column("value").to_pylist()


def test_acks_1_and_non_idempotent_producers_keep_one_append_in_flight(fake):
    (part,) = fake.create_topic("t", partitions=1)
    part.gate.clear()
    with rayka.Producer(cluster=fake, acks="all", idempotent=False) as p:
        fut = p.send_table("t", table())
        wait_for(lambda: p._queue.inflight, timeout_s=10, what="a chunk in flight")
        assert not p._queue.acking and part.calls == 0
        part.gate.set()
        fut.result(timeout=30)
    assert stored_values(part) == table().column("value").to_pylist()


def test_the_pipeline_is_shallower_than_what_a_partition_remembers_per_producer():
    # A retry is answered as a duplicate only if its batch is among the last KEEP_BATCHES a
    # partition remembers for the producer: the one in flight plus MAX_ACKING waiting must fit.
    from rayka.partitions.producer_state import KEEP_BATCHES

    assert MAX_ACKING + 1 <= KEEP_BATCHES
