"""A partition whose log cannot open: a clear LogOpenError for every caller within a bounded
time, no restart loop of its actor, the healthy partition unaffected, and the partition back by
itself once its files are fixed."""

import os
import time
from pathlib import Path

import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.partitions.log_opener import REOPEN_INTERVAL_S
from rayka.errors import LogOpenError, PartitionUnavailableError

from rayka.testing import consume_all, wait_for


def _pid(handle):
    return ray.get(handle.__ray_call__.remote(lambda actor: os.getpid()), timeout=30)


def _raises_within(seconds, fn):
    start = time.monotonic()
    with pytest.raises(LogOpenError) as info:
        fn()
    assert time.monotonic() - start < seconds
    return info.value


def test_a_log_that_cannot_open_gives_a_clear_error_and_the_actor_does_not_restart_loop(cluster, admin):
    admin.create_topic("broken", partitions=2)
    with rayka.Producer(linger_ms=0) as p:
        for i in range(10):
            p.send("broken", value=b"v%d" % i, partition=i % 2).result(timeout=30)
    handles = [p.handle for p in cluster.topic("broken")[1]]
    segment = sorted(Path(cluster.data_dir, "topics", "broken", "0").glob("*.arrows"))[-1]
    good = segment.read_bytes()
    segment.write_bytes(os.urandom(len(good)))  # nothing of this log's left in it
    ray.kill(handles[0], no_restart=False)  # it restarts and must open the damaged files

    err = _first_log_open_error(lambda: _raise_partition_error(admin, "broken", 0), timeout_s=60)
    assert str(segment.parent) in str(err) and segment.name in str(err) and "move" in str(err).lower()
    desc = admin.describe_topic("broken")  # the other partition is described as usual
    assert desc.partitions[1].available and desc.partitions[1].log_end_offset == 5
    pid = _pid(handles[0])

    c = rayka.Consumer(cluster=cluster, auto_offset_reset="earliest")
    c.assign([TopicPartition("broken", 0)])
    _raises_within(20, lambda: [c.poll(timeout_ms=500) for _ in range(40)])
    assert c.poll(timeout_ms=200) == [] and c.unavailable() == {TopicPartition("broken", 0)}  # said once
    c.close()
    c = rayka.Consumer("broken", cluster=cluster, auto_offset_reset="earliest")  # both partitions
    _raises_within(20, lambda: [c.poll(timeout_ms=500) for _ in range(40)])
    assert sorted(r.value for r in consume_all(c, 5, timeout_s=30)) == sorted(b"v%d" % i for i in range(1, 10, 2))
    c.close()
    with rayka.Producer(cluster=cluster) as p:
        fut = p.send("broken", value=b"x", partition=0)
        _raises_within(20, lambda: fut.result(timeout=15))
        assert p.send("broken", value=b"ok", partition=1).result(timeout=30).offset == 5  # the other one writes
    _raises_within(10, lambda: _raise_partition_error(admin, "broken", 0))
    assert _pid(handles[0]) == pid  # one process all along: failed, not restart-looping

    segment.write_bytes(good)  # the files fixed: the partition opens on a call after REOPEN_INTERVAL_S
    # ... which its opener is told has passed (its next try moved to now) instead of waiting it out.
    ray.get(handles[0].__ray_call__.remote(lambda actor: setattr(actor._opener, "_next_try_ms", 0)), timeout=30)
    desc = wait_for(lambda: _describe_or_none(admin), timeout_s=REOPEN_INTERVAL_S + 30, what="reopen")
    assert desc.partitions[0].log_end_offset == 5
    c = rayka.Consumer(cluster=cluster, auto_offset_reset="earliest")
    c.assign([TopicPartition("broken", 0)])
    assert [r.value for r in consume_all(c, 5, timeout_s=60)] == [b"v%d" % i for i in range(0, 10, 2)]
    c.close()


def _first_log_open_error(fn, timeout_s):
    """The LogOpenError ``fn`` raises once the killed actor is back (until then, calls may find
    it restarting)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            fn()
        except LogOpenError as exc:
            return exc
        except PartitionUnavailableError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no LogOpenError within {timeout_s}s")


def _raise_partition_error(admin, topic, partition):
    """describe_topic shows a partition that cannot open as unavailable, with its LogOpenError."""
    p = admin.describe_topic(topic).partitions[partition]
    if not p.available:
        raise (LogOpenError if "cannot be opened" in p.error else PartitionUnavailableError)(p.error)


def _describe_or_none(admin):
    desc = admin.describe_topic("broken")
    return desc if desc.partitions[0].available else None


def test_a_topic_whose_partition_cannot_open_can_still_be_deleted(cluster, admin):
    admin.create_topic("doomed", partitions=1)
    with rayka.Producer(linger_ms=0) as p:
        p.send("doomed", value=b"x", partition=0).result(timeout=30)
    handles = [p.handle for p in cluster.topic("doomed")[1]]
    partition_dir = Path(cluster.data_dir, "topics", "doomed", "0")
    segment = sorted(partition_dir.glob("*.arrows"))[-1]
    segment.write_bytes(os.urandom(segment.stat().st_size))
    ray.kill(handles[0], no_restart=False)
    _first_log_open_error(lambda: _raise_partition_error(admin, "doomed", 0), timeout_s=60)
    admin.delete_topic("doomed")
    assert "doomed" not in admin.list_topics() and not partition_dir.exists()
