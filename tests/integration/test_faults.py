"""Fault tests: kill partition and coordinator actors, tear files, restart on the same data dir.

Invariants checked each time: nothing acknowledged is lost, offsets stay dense
and ordered per partition, and the idempotent producer writes no duplicate.
"""

import threading
import time
import uuid
from pathlib import Path

import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.errors import CorruptRecordError

from rayka.testing import consume_all, wait_for


def _values(records):
    return [int(r.value) for r in records]


def test_partition_actor_killed_mid_production_loses_and_duplicates_nothing(cluster, admin):
    admin.create_topic("crashy", partitions=2)
    handles = [p.handle for p in cluster.topic("crashy")[1]]
    total = 30_000
    sent_half = threading.Event()
    acked = []

    def produce():
        with rayka.Producer(linger_ms=1, batch_size=4096, retry_backoff_ms=50) as p:
            futures = []
            for i in range(total):
                futures.append(p.send("crashy", value=b"%d" % i, key=b"%d" % (i % 11)))
                if i == total // 2:
                    sent_half.set()
            acked.extend(f.result(timeout=120) for f in futures)

    t = threading.Thread(target=produce)
    t.start()
    assert sent_half.wait(60)
    for h in handles:
        ray.kill(h, no_restart=False)  # the actors restart and recover from their files
    t.join(180)
    assert not t.is_alive() and len(acked) == total
    c = rayka.Consumer("crashy", auto_offset_reset="earliest")
    records = consume_all(c, total, timeout_s=120)
    assert sorted(_values(records)) == list(range(total)), "lost or duplicated records"
    for part in (0, 1):
        mine = [r for r in records if r.partition == part]
        assert [r.offset for r in mine] == list(range(len(mine)))
        assert _values(mine) == sorted(_values(mine)), "per-partition order broken"
    by_offset = {(m.partition, m.offset) for m in acked}
    assert len(by_offset) == total, "two acknowledged records share an offset"


def test_coordinator_killed_restarts_and_still_knows_every_topic(cluster, admin):
    admin.create_topic("meta1", partitions=2)
    admin.create_topic("meta2", partitions=1)
    ray.kill(cluster.coordinator.handle, no_restart=False)
    assert wait_for(lambda: sorted(admin.list_topics()) == ["meta1", "meta2"], what="coordinator restart")
    with rayka.Producer() as p:
        p.send("meta1", value=b"after restart", partition=1).result(timeout=30)
    assert admin.describe_topic("meta1").partitions[1].log_end_offset == 1


def _crash(cluster):
    """Kill every actor of the cluster without letting it close its files."""
    for name in ray.get(cluster.coordinator.handle.list_topics.remote()):
        handles = [p.handle for p in cluster.topic(name, refresh=True)[1]]
        for h in handles:
            ray.kill(h, no_restart=True)
    ray.kill(cluster.coordinator.handle, no_restart=True)


def test_new_session_on_the_same_data_dir_finds_every_topic_and_message(cluster, admin):
    admin.create_topic("keep", partitions=3)
    with rayka.Producer() as p:
        for i in range(5000):
            p.send("keep", value=b"%d" % i)
    _crash(cluster)
    again = rayka.connect(data_dir=cluster.data_dir, cluster_name=f"t-{uuid.uuid4().hex[:10]}")
    try:
        assert rayka.Admin(again).list_topics() == ["keep"]
        assert rayka.Admin(again).describe_topic("keep").messages == 5000
        c = rayka.Consumer("keep", auto_offset_reset="earliest", cluster=again)
        assert sorted(_values(consume_all(c, 5000))) == list(range(5000))
        with rayka.Producer(cluster=again) as p:
            assert p.send("keep", value=b"more", partition=0).result(timeout=10).offset > 0
    finally:
        again.shutdown(delete_data=True)


def test_torn_segment_tail_is_truncated_to_whole_batches_on_restart(cluster, admin):
    admin.create_topic("torn", partitions=1)
    with rayka.Producer(linger_ms=0) as p:
        for i in range(20):  # one batch per record: linger 0 and a wait per send
            p.send("torn", value=b"%02d" % i + b"-" * 100).result(timeout=10)
    _crash(cluster)
    segment = sorted(Path(cluster.data_dir, "topics", "torn", "0").glob("*.arrows"))[-1]
    size = segment.stat().st_size
    with open(segment, "r+b") as f:
        f.truncate(size - 37)  # tear the last batch
    again = rayka.connect(data_dir=cluster.data_dir, cluster_name=f"t-{uuid.uuid4().hex[:10]}")
    try:
        desc = rayka.Admin(again).describe_topic("torn")
        assert desc.partitions[0].log_end_offset == 19
        c = rayka.Consumer(cluster=again, auto_offset_reset="earliest")
        c.assign([TopicPartition("torn", 0)])
        records = consume_all(c, 19)
        assert [r.value[:2] for r in records] == [b"%02d" % i for i in range(19)]
        with rayka.Producer(cluster=again) as p:
            assert p.send("torn", value=b"next", partition=0).result(timeout=10).offset == 19
    finally:
        again.shutdown(delete_data=True)


def test_damaged_batch_mid_segment_becomes_a_hole_with_a_clear_error(cluster, admin):
    """A corrupt batch with whole ones after it: recovery keeps the later batches, the
    consumer gets CorruptRecordError naming the hole and where to seek, and no offset of the
    hole is ever given to a new record."""
    admin.create_topic("scarred", partitions=1)
    with rayka.Producer(linger_ms=0) as p:
        for i in range(20):  # one batch per record
            p.send("scarred", value=b"%02d" % i + b"-" * 100).result(timeout=10)
    _crash(cluster)
    segment = sorted(Path(cluster.data_dir, "topics", "scarred", "0").glob("*.arrows"))[-1]
    data = bytearray(segment.read_bytes())
    at = data.index(b"07" + b"-" * 100) + 50
    data[at] ^= 0xFF  # one flipped byte in the body of the batch holding offset 7
    segment.write_bytes(bytes(data))
    again = rayka.connect(data_dir=cluster.data_dir, cluster_name=f"t-{uuid.uuid4().hex[:10]}")
    try:
        part = rayka.Admin(again).describe_topic("scarred").partitions[0]
        assert part.log_end_offset == 20 and part.damaged_offsets == ((7, 7),)
        c = rayka.Consumer(cluster=again, auto_offset_reset="earliest")
        tp = TopicPartition("scarred", 0)
        c.assign([tp])
        assert [r.value[:2] for r in consume_all(c, 7)] == [b"%02d" % i for i in range(7)]
        with pytest.raises(CorruptRecordError, match=r"7\.\.7.*seek to 8"):
            for _ in range(20):
                c.poll(timeout_ms=500)
        c.seek(tp, 8)
        assert [r.value[:2] for r in consume_all(c, 12)] == [b"%02d" % i for i in range(8, 20)]
        with rayka.Producer(cluster=again) as p:
            assert p.send("scarred", value=b"next", partition=0).result(timeout=10).offset == 20
        c.close()
    finally:
        again.shutdown(delete_data=True)


def test_consumer_keeps_reading_across_a_partition_restart(cluster, admin):
    admin.create_topic("reader", partitions=1)
    with rayka.Producer() as p:
        for i in range(1000):
            p.send("reader", value=b"%d" % i)
    c = rayka.Consumer("reader", auto_offset_reset="earliest")
    first = consume_all(c, 400)[:400]
    c.seek(TopicPartition("reader", 0), 400)
    handles = [p.handle for p in cluster.topic("reader")[1]]
    ray.kill(handles[0], no_restart=False)
    rest = []
    deadline = time.monotonic() + 60
    while len(rest) < 600 and time.monotonic() < deadline:
        rest += c.poll(timeout_ms=500, max_records=1000)  # a restart is retried inside poll
    assert _values(first + rest) == list(range(1000))
