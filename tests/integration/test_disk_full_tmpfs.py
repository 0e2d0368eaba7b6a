"""Fault test on a real full disk: a 16 MiB tmpfs holding the whole data dir (needs root to mount).

A producer fills the file system through a real partition actor and gets DiskFullError (as
the error of its futures, after the producer's own retries), the coordinator refuses a topic
and a commit with DiskFullError, space is freed (a ballast file is deleted), sends and commits
succeed again, and everything acknowledged reads back at its acknowledged offset, before and
after the partition actor is killed and restarts (once while the disk is still full).
Jepsen-style: unique values, offsets recorded at each acknowledgement, nothing from a failed
send visible, offsets dense.
"""

import os
import subprocess
import time
import uuid

import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.errors import DiskFullError

from rayka.testing import wait_for

from _outcomes import sort_outcomes


TMPFS_MIB = 16
VALUE_BYTES = 1024


@pytest.fixture
def tmpfs(tmp_path):
    mount = tmp_path / "fs"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MIB}m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)
        if os.path.ismount(mount):
            subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def full_cluster(ray_session, tmpfs):
    c = rayka.connect(data_dir=tmpfs / "data", cluster_name=f"t-{uuid.uuid4().hex[:10]}")
    try:
        yield c
    finally:
        c.shutdown(delete_data=True)


def _fill(path, leave_bytes):
    """Write a ballast file until only ``leave_bytes`` are free (or the disk is full)."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        try:
            while True:
                st = os.statvfs(path)
                room = st.f_bavail * st.f_frsize - leave_bytes
                if room <= 0:
                    break
                f.write(chunk[:min(len(chunk), room)])
                f.flush()
        except OSError:
            pass


def _value(n):
    return b"%08d-" % n + bytes(VALUE_BYTES)


def _read_all(topic, end, timeout_s=60.0):
    """{offset: value} of offsets 0..end-1 of partition 0, read by a fresh consumer (a partition
    actor restarting meanwhile is retried inside poll)."""
    c = rayka.Consumer()
    tp = TopicPartition(topic, 0)
    c.assign([tp])
    c.seek(tp, 0)
    out = {}
    deadline = time.monotonic() + timeout_s
    while len(out) < end and time.monotonic() < deadline:
        out.update({r.offset: r.value for r in c.poll(timeout_ms=500, max_records=10_000)})
    c.close()
    return out


def _check(topic, acked, failed, end):
    got = _read_all(topic, end)
    assert sorted(got) == list(range(end)), "offsets are not dense"
    assert {o: got[o] for o in acked} == acked, "an acknowledged record is lost or wrong"
    assert not failed & set(got.values()), "a record of a failed send is visible"
    assert len(set(got.values())) == len(got), "duplicates"


def test_a_full_disk_refuses_writes_clearly_loses_nothing_and_recovers(full_cluster, tmpfs):
    admin = rayka.Admin(full_cluster)
    admin.create_topic("full", partitions=1, config={"segment.bytes": 1 << 20})
    committer = rayka.Consumer(group_id="g")
    tp = TopicPartition("full", 0)
    committer.assign([tp])
    ballast = tmpfs / "ballast"
    _fill(ballast, leave_bytes=3 << 20)

    acked: dict[int, bytes] = {}
    failed: set[bytes] = set()
    errors = []
    n = 0
    with rayka.Producer(linger_ms=2, batch_size=64 * 1024, delivery_timeout_ms=1500,
                        retry_backoff_ms=50) as p:
        while not errors and n < 20_000:  # ~3 MiB of room: full after ~3,000 records
            futures = [(v, p.send("full", value=v)) for v in map(_value, range(n, n + 256))]
            n += 256
            p.flush()
            errors += sort_outcomes(futures, acked, failed)
    assert errors and acked, "the disk never filled"
    assert all(isinstance(e, DiskFullError) for e in errors), errors[:3]
    err = errors[0]
    assert os.path.join("topics", "full", "0") in str(err) and "free" in str(err) and err.free_bytes >= 0

    # The coordinator's files are on the same disk: a clear error, nothing half-written. (The
    # failed appends were cut back, which freed their pages: fill those too.)
    _fill(tmpfs / "ballast2", leave_bytes=0)
    with pytest.raises(DiskFullError):
        admin.create_topic("more", partitions=1)
    assert "more" not in admin.list_topics()
    assert not list((tmpfs / "data").glob("*.tmp"))
    with pytest.raises(DiskFullError):
        committer.commit({tp: 7})

    # Sends made while full are retried by the producer (same sequence) and land, once, when
    # space returns, in the same actor: where its failed writes stopped is where they go.
    with rayka.Producer(linger_ms=2, delivery_timeout_ms=60_000, retry_backoff_ms=50) as p:
        pending = [(v, p.send("full", value=v)) for v in map(_value, range(n, n + 200))]
        n += 200
        wait_for(lambda: p.metrics()["retries"] > 0, 30, 0.05, "the producer to retry on the full disk")
        ballast.unlink()  # space returns
        (tmpfs / "ballast2").unlink()
        for v, f in pending:
            acked[f.result(timeout=60).offset] = v
        more = [(v, p.send("full", value=v)) for v in map(_value, range(n, n + 500))]
        n += 500
        for v, f in more:
            acked[f.result(timeout=60).offset] = v

    end = max(acked) + 1
    assert end == len(acked), "acknowledged offsets are not dense"
    _check("full", acked, failed, end)
    admin.create_topic("more", partitions=1)  # the coordinator works again
    committer.commit({tp: 7})
    assert committer.committed(tp) == 7

    # A partition actor that restarts on a full disk opens and serves everything acknowledged;
    # one that restarts with space again takes writes.
    handles = [p.handle for p in full_cluster.topic("full")[1]]
    _fill(ballast, leave_bytes=0)
    ray.kill(handles[0], no_restart=False)
    _check("full", acked, failed, end)
    ballast.unlink()
    ray.kill(handles[0], no_restart=False)
    _check("full", acked, failed, end)
    with rayka.Producer() as p:
        assert p.send("full", value=b"after-restart").result(timeout=60).offset == end
    committer.close()
