"""One partition that cannot be reached, or that is damaged, never costs the records of the others.

A partition actor killed with no restart stands for a partition whose node is gone (the
multi-node test removes a real node: test_multinode.py); a byte flipped in a sealed
segment stands for damage on disk.
"""

import logging
import time
from pathlib import Path

import pyarrow as pa
import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.errors import CorruptRecordError, PartitionUnavailableError

from rayka.testing import consume_all, wait_for

PER_PARTITION = 300


def _topic_with_a_dead_partition(admin, cluster, name, dead=1):
    admin.create_topic(name, partitions=3)
    with rayka.Producer() as p:
        for i in range(3 * PER_PARTITION):
            p.send(name, value=b"%d" % i, partition=i % 3)
    handles = [p.handle for p in cluster.topic(name)[1]]
    ray.kill(handles[dead], no_restart=True)  # gone for good, like its node
    wait_for(lambda: _is_dead(handles[dead]), what="the killed partition actor to be dead")
    return TopicPartition(name, dead)


def _is_dead(handle):
    try:
        ray.get(handle.ping.remote(), timeout=5)
    except Exception:  # noqa: BLE001 - any failure means it is gone
        return True
    return False


def _expected(partitions):
    return sorted(i for i in range(3 * PER_PARTITION) if i % 3 in partitions)


def test_new_consumer_reads_the_healthy_partitions_and_reports_the_dead_one(cluster, admin, caplog):
    dead = _topic_with_a_dead_partition(admin, cluster, "halfdead")
    heard = []
    with caplog.at_level(logging.WARNING, logger="rayka.clients.consumer"):
        c = rayka.Consumer("halfdead", auto_offset_reset="earliest", on_partitions_unavailable=heard.append)
        records = consume_all(c, 2 * PER_PARTITION, timeout_s=20)
    assert sorted(int(r.value) for r in records) == _expected({0, 2}), "healthy partitions not read whole"
    assert {r.partition for r in records} == {0, 2}
    assert c.unavailable() == {dead}
    assert heard == [{dead}], "the callback hears of the dead partition once"
    assert "halfdead-1 is unavailable" in caplog.text
    assert c.metrics()["unavailable"] == 1
    with pytest.raises(PartitionUnavailableError, match="halfdead-1"):
        c.position(dead)
    with pytest.raises(PartitionUnavailableError, match="halfdead-1"):
        c.end_offsets([TopicPartition("halfdead", p) for p in range(3)])
    c.close()


def test_group_consumer_reads_the_healthy_partitions_and_its_listener_hears_of_the_dead_one(cluster, admin):
    dead = _topic_with_a_dead_partition(admin, cluster, "groupdead")

    class Listener(rayka.ConsumerRebalanceListener):
        unavailable = []

        def on_partitions_unavailable(self, partitions):
            self.unavailable.append(partitions)

    listener = Listener()
    c = rayka.Consumer("groupdead", group_id="gd", auto_offset_reset="earliest", listener=listener,
                       enable_auto_commit=False)
    records = consume_all(c, 2 * PER_PARTITION, timeout_s=20)
    assert sorted(int(r.value) for r in records) == _expected({0, 2})
    assert c.unavailable() == {dead} and listener.unavailable == [{dead}]
    c.commit()
    group = admin.describe_group("gd")  # answers, the dead partition's lag unknown
    rows = {(p.topic, p.partition): p for p in group.partitions}
    assert rows[("groupdead", 0)].committed == PER_PARTITION and rows[("groupdead", 0)].lag == 0
    assert rows[("groupdead", 1)].end_offset is None and rows[("groupdead", 1)].lag is None
    c.close()
    started = time.monotonic()
    with pytest.raises(PartitionUnavailableError, match="groupdead-1.*nothing was reset"):
        admin.reset_offsets("gd", to="earliest")
    assert time.monotonic() - started < 30, "refused at once, not after the coordinator-retry minute"
    rows = {(p.topic, p.partition): p for p in admin.describe_group("gd").partitions}
    assert rows[("groupdead", 0)].committed == PER_PARTITION


def test_admin_describes_a_dead_partition_as_unavailable_instead_of_failing(cluster, admin):
    _topic_with_a_dead_partition(admin, cluster, "admindead")
    desc = admin.describe_topic("admindead")
    assert [p.available for p in desc.partitions] == [True, False, True]
    dead = desc.partitions[1]
    assert dead.error and "unavailable" in dead.error and dead.log_end_offset == -1
    assert desc.unavailable == [1]
    assert desc.messages == 2 * PER_PARTITION
    assert desc.partitions[0].log_end_offset == PER_PARTITION
    offsets = admin.list_offsets("admindead")
    assert offsets == {0: (0, PER_PARTITION), 1: None, 2: (0, PER_PARTITION)}


def _damaged_log(cluster, admin, name, batches=30, per=1000, hole=25):
    """``batches`` batches of ``per`` records in sealed segments, one byte of batch ``hole``
    flipped on disk, the partition actor restarted (so it reopens the files)."""
    admin.create_topic(name, partitions=1, config={"segment.bytes": 200_000})
    with rayka.Producer() as p:
        for b in range(batches):
            values = [b"v%08d" % i for i in range(b * per, (b + 1) * per)]
            p.send_table(name, pa.table({"value": pa.array(values, pa.binary())})).result(timeout=30)
    handles = [p.handle for p in cluster.topic(name)[1]]
    ray.get(handles[0].roll.remote())
    target = b"v%08d" % (hole * per + per // 2)
    for segment in sorted(Path(cluster.data_dir, "topics", name, "0").glob("*.arrows")):
        data = segment.read_bytes()
        at = data.find(target)
        if at >= 0:
            with open(segment, "r+b") as f:  # in place: the running actor maps this file
                f.seek(at + 3)
                f.write(bytes([data[at + 3] ^ 0xFF]))
            break
    else:
        raise AssertionError("value to damage not found")
    ray.kill(handles[0], no_restart=False)  # restarts and reopens: the damage is not known yet
    wait_for(lambda: not _is_dead(handles[0]), what="the partition to restart")
    return TopicPartition(name, 0)


def test_damage_is_raised_only_when_the_position_reaches_it(cluster, admin):
    tp = _damaged_log(cluster, admin, "holey")
    c = rayka.Consumer(auto_offset_reset="earliest", max_poll_records=500)
    c.assign([tp])
    got = c.poll(timeout_ms=5000)
    assert got, "the records before the damage must come"
    # The read-ahead fetch met the hole: describe_topic lists it now, long before the
    # consumer's position reaches it.
    wait_for(lambda: (25_000, 25_999) in rayka.Admin(cluster).describe_topic("holey").partitions[0].damaged_offsets,
             timeout_s=10, what="the hole in damaged_offsets")
    deadline = time.monotonic() + 60
    with pytest.raises(CorruptRecordError, match=r"25000\.\.25999.*seek to 26000") as info:
        while time.monotonic() < deadline:
            got += c.poll(timeout_ms=500)
    assert [r.offset for r in got] == list(range(25_000)), "every record before the hole, once, in order"
    assert [r.value for r in got[-2:]] == [b"v00024998", b"v00024999"]
    assert c.position(tp) == 25_000 and info.value.next_offset == 26_000
    with pytest.raises(CorruptRecordError):
        c.poll(timeout_ms=100)  # again, until the user seeks past it
    c.seek(tp, info.value.next_offset)
    rest = consume_all(c, 4000)
    assert [r.offset for r in rest] == list(range(26_000, 30_000))
    c.close()


def test_running_consumer_goes_on_with_the_others_when_a_partition_dies(cluster, admin):
    admin.create_topic("dying", partitions=3)
    with rayka.Producer() as p:
        for i in range(300):
            p.send("dying", value=b"%d" % i, partition=i % 3)
    heard = []
    c = rayka.Consumer("dying", auto_offset_reset="earliest", on_partitions_unavailable=heard.append)
    first = consume_all(c, 300)
    assert len(first) == 300 and c.unavailable() == set()
    handles = [p.handle for p in cluster.topic("dying")[1]]
    ray.kill(handles[2], no_restart=True)
    wait_for(lambda: _is_dead(handles[2]), what="the killed partition actor to be dead")
    with rayka.Producer() as p:
        for i in range(300, 600):
            if i % 3 != 2:
                p.send("dying", value=b"%d" % i, partition=i % 3)
    later = consume_all(c, 200, timeout_s=20)
    assert sorted(int(r.value) for r in later) == [i for i in range(300, 600) if i % 3 != 2]
    wait_for(lambda: c.poll(timeout_ms=100) == [] and c.unavailable() == {TopicPartition("dying", 2)},
             timeout_s=20, what="the dead partition reported")
    assert heard == [{TopicPartition("dying", 2)}]
    c.close()


def test_polls_keep_their_timeout_with_a_dead_partition_and_an_unreachable_coordinator(cluster, admin):
    _topic_with_a_dead_partition(admin, cluster, "nocoord")
    c = rayka.Consumer("nocoord", auto_offset_reset="earliest")
    assert len(consume_all(c, 2 * PER_PARTITION, timeout_s=20)) == 2 * PER_PARTITION
    handles = [p.handle for p in cluster.topic("nocoord")[1]]
    ray.kill(cluster.coordinator.handle, no_restart=True)  # the dead partition's handle cannot be refreshed now
    try:
        with rayka.Producer(cluster=cluster) as p:
            p.send("nocoord", value=b"late", partition=0).result(timeout=30)
        late, slowest = [], 0.0
        deadline = time.monotonic() + 20
        while not late and time.monotonic() < deadline:
            started = time.monotonic()
            late = [r for r in c.poll(timeout_ms=500) if r.value == b"late"]
            slowest = max(slowest, time.monotonic() - started)
        assert late, "the healthy partition's new record was not read"
        assert slowest < 3.0, f"a poll(timeout_ms=500) took {slowest:.1f} s"
        c.close()
    finally:  # no coordinator is left to close them
        for h in handles:
            ray.kill(h, no_restart=True)
