"""Kafka producers' idempotence through a real partition actor, and producer ids from the real
coordinator (issue 12 part 5): what the gateway's Produce and InitProducerId will call."""

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.errors import InvalidProducerEpochError, OutOfOrderSequenceError
from rayka.partitions.producer_state import kafka_producer_id
from rayka.testing import consume_all, wait_for


def ipc_bytes(values):
    """A producer batch as the gateway will send it: an Arrow IPC stream buffer."""
    table = pa.table({"value": pa.array(values, pa.binary())})
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_a_resent_kafka_batch_is_written_once_and_a_gap_refused(cluster, admin):
    admin.create_topic("kidem", partitions=1)
    _, (part,) = cluster.coordinator.topic("kidem")
    pid, epoch = cluster.coordinator.init_producer_id()
    assert pid >= 0 and epoch == 0
    producer_id = kafka_producer_id(pid, epoch)
    first = part.append(ipc_bytes([b"a", b"b", b"c"]), producer_id, 0).result()
    again = part.append(ipc_bytes([b"a", b"b", b"c"]), producer_id, 0).result()
    assert not first.duplicate and again.duplicate
    assert (again.base_offset, again.count) == (first.base_offset, first.count) == (0, 3)
    with pytest.raises(OutOfOrderSequenceError):
        part.append(ipc_bytes([b"gap"]), producer_id, 4).result()  # 3 expected
    assert part.append(ipc_bytes([b"d"]), producer_id, 3).result().base_offset == 3
    # the same producer id at a newer epoch fences the old one
    part.append(ipc_bytes([b"e"]), kafka_producer_id(pid, 1), 0).result()
    with pytest.raises(InvalidProducerEpochError):
        part.append(ipc_bytes([b"zombie"]), producer_id, 4).result()
    c = rayka.Consumer(auto_offset_reset="earliest")
    c.assign([TopicPartition("kidem", 0)])
    got = consume_all(c, 5, timeout_s=30)
    c.close()
    assert [(r.offset, r.value) for r in got] == [(0, b"a"), (1, b"b"), (2, b"c"), (3, b"d"), (4, b"e")]


def test_producer_ids_never_repeat_across_a_coordinator_restart(cluster):
    before = [cluster.coordinator.init_producer_id()[0] for _ in range(3)]
    assert len(set(before)) == 3
    incarnation = cluster.coordinator.instance_id()
    ray.kill(cluster.coordinator.handle, no_restart=False)  # Ray restarts it on the same data dir
    wait_for(lambda: cluster.coordinator.instance_id() != incarnation, timeout_s=60,
             what="the coordinator to restart")
    after = [cluster.coordinator.init_producer_id()[0] for _ in range(3)]
    assert len(set(after)) == 3 and min(after) > max(before)
