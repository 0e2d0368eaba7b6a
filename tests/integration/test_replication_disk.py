"""Disk faults with replication, on one machine (colocated replicas, each in its own directory).

- A follower whose disk fills (a small tmpfs mounted at its replica directory) leaves the
  ISR while the leader goes on acknowledging acks="all" sends (min.insync.replicas=2 still
  met); once space returns it catches up and rejoins the ISR, holding the leader's records.
- A follower with corrupt batches in the middle of its segments copies them again from the
  leader instead of keeping a hole: one found when it recovers after a crash, one in a sealed
  segment found by a follower read (which gets a retriable NotLeaderError meanwhile).
- A leader whose segment has a corrupt batch in its middle, found when Ray restarts it in
  place, comes back as a follower (elected away) and copies the damaged range again.
- A leader that finds a corrupt batch of a sealed segment on a consumer's read answers it
  retriably, the controller hands the leadership to an undamaged in-sync replica, and the
  consumer reads everything there, seeing no CorruptRecordError; the old leader re-copies.
- A leader whose disk fills gives the producer DiskFullError (retriable), keeps everything
  acknowledged, and takes writes again once space returns.

Jepsen-style: unique values, the offset of every acknowledgement recorded, everything read
back (offsets dense, order kept, no duplicates), the replicas' files compared with plain pyarrow.
"""

import os
import subprocess
import time
from pathlib import Path

import pyarrow as pa
import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.errors import DiskFullError, NotLeaderError
from rayka.testing import consume_all, wait_for

from _outcomes import sort_outcomes

LAG_MS = 2000
REPLICATED = {"replica.placement": "colocate", "min.insync.replicas": 2, "replica.lag.time.max.ms": LAG_MS}
TMPFS_MIB = 8


@pytest.fixture
def mounts():
    """``mount(path)``: a TMPFS_MIB tmpfs at ``path`` (created), unmounted after the test
    (lazily if a replica still holds files there); skips the test where mounting is refused."""
    done = []

    def mount(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_MIB}m", "tmpfs", str(path)],
                             capture_output=True, text=True)
        if out.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
        done.append(path)
        return path

    yield mount
    for path in reversed(done):
        subprocess.run(["umount", str(path)], capture_output=True)
        if os.path.ismount(path):
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def _replica_dir(cluster, topic, replica):
    return Path(cluster.data_dir) / "topics" / topic / ("0" if replica == 0 else f"0.r{replica}")


def _fill(path: Path) -> None:
    """Write a ballast file until its file system is full."""
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError:
            pass


def _replica(cluster, topic, replica):
    meta, _ = cluster.topic(topic, refresh=True)
    name = f"rayka:{cluster.cluster_name}:p:{meta.topic_id}:0" + (f".r{replica}" if replica else "")
    return ray.get_actor(name, namespace=cluster.namespace)


def _status(cluster, topic, replica):
    """The replica's status, or None while it does not answer (dead, restarting)."""
    try:
        return ray.get(_replica(cluster, topic, replica).status.remote(), timeout=5)
    except Exception:  # noqa: BLE001 - not answering now
        return None


def _gone(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


def _kill(cluster, topic, replica, *, no_restart):
    """Kill a replica's actor and wait until its process is gone (ray.kill only asks)."""
    pid = _status(cluster, topic, replica).pid
    ray.kill(_replica(cluster, topic, replica), no_restart=no_restart)
    wait_for(lambda: _gone(pid), 30, what=f"replica {replica}'s process {pid} to end")


def _records(cluster, topic, replica):
    """(offset, value) of every record in one replica's files, read with plain pyarrow."""
    rows = []
    for seg in sorted(_replica_dir(cluster, topic, replica).glob("*.arrows")):
        with pa.memory_map(str(seg)) as f:
            table = pa.ipc.open_stream(f).read_all()
        rows += list(zip(table.column("offset").to_pylist(), table.column("value").to_pylist()))
    return rows


def _partition(admin, topic):
    return admin.describe_topic(topic).partitions[0]


def _value(n, size=100):
    return b"v%06d-" % n + b"-" * size


def _produce(cluster, topic, values, acked, **options):
    """Send ``values`` (acks="all") and record the offset of each acknowledgement in ``acked``."""
    options = {"acks": "all", "delivery_timeout_ms": 60_000, "retry_backoff_ms": 50, **options}
    with rayka.Producer(cluster=cluster, **options) as producer:
        futures = [(v, producer.send(topic, value=v, partition=0)) for v in values]
        for v, f in futures:
            acked[f.get(timeout=90).offset] = v


def _produce_one_batch_each(cluster, topic, values, acked):
    """One batch per record (each send waits for its acknowledgement), so a batch can be corrupted alone."""
    with rayka.Producer(cluster=cluster, acks="all", linger_ms=0, delivery_timeout_ms=60_000,
                        retry_backoff_ms=50) as producer:
        for v in values:
            acked[producer.send(topic, value=v, partition=0).get(timeout=60).offset] = v


def _check_everything(cluster, topic, acked, replicas=(0, 1, 2)):
    """A consumer reads every acknowledged record at its offset (dense, in order, once), and every
    replica's files hold exactly those records."""
    end = max(acked) + 1
    assert sorted(acked) == list(range(end)), "acknowledged offsets are not dense"
    consumer = rayka.Consumer(cluster=cluster, auto_offset_reset="earliest")
    consumer.assign([TopicPartition(topic, 0)])
    got = consume_all(consumer, end, timeout_s=30)  # a CorruptRecordError would raise here
    consumer.close()
    assert [r.offset for r in got] == list(range(end)), "offsets read are not dense and in order"
    assert [r.value for r in got] == [acked[o] for o in range(end)], "an acknowledged record is lost or wrong"
    expected = sorted(acked.items())
    for r in replicas:
        assert _records(cluster, topic, r) == expected, f"replica {r}'s files differ from what was acknowledged"


def _corrupt_batch(path: Path, value: bytes) -> None:
    """Flip one byte in the body of the batch holding ``value`` (in place, as a failing disk would)."""
    segments = sorted(path.glob("*.arrows"))
    for seg in segments:
        data = seg.read_bytes()
        at = data.find(value)
        if at >= 0:
            assert at + len(value) < len(data) - 1000, "the batch to corrupt must not be the segment's tail"
            with open(seg, "r+b") as f:
                f.seek(at + len(value) // 2)
                byte = f.read(1)
                f.seek(at + len(value) // 2)
                f.write(bytes([byte[0] ^ 0xFF]))
            return
    raise AssertionError(f"no segment of {path} holds {value[:8]!r}")


def _in_sync(admin, topic, isr=(0, 1, 2)):
    return wait_for(lambda: _partition(admin, topic).isr == isr, 30, what=f"ISR {isr} of {topic}")


def test_a_follower_out_of_disk_leaves_the_isr_and_rejoins_once_space_returns(mounts, cluster, admin):
    topic = "follower-full"
    fs = mounts(_replica_dir(cluster, topic, 2))
    admin.create_topic(topic, partitions=1, replication_factor=3, config={**REPLICATED, "segment.bytes": 1 << 20})
    _in_sync(admin, topic)
    acked: dict[int, bytes] = {}
    _produce(cluster, topic, [_value(i) for i in range(200)], acked)
    _fill(fs / "ballast")

    # The follower cannot write what it copies: it falls out of the ISR, and the leader goes on
    # acknowledging with two in-sync replicas (its sends wait at most replica.lag.time.max.ms).
    started = time.monotonic()
    _produce(cluster, topic, [_value(i, 1000) for i in range(200, 1200)], acked)  # ~1 MB: more than was free
    part = _partition(admin, topic)
    assert part.isr == (0, 1) and part.leader_replica == 0, part
    assert time.monotonic() - started < 20
    stuck = _status(cluster, topic, 2)
    assert stuck.role == "follower" and stuck.log_end_offset < max(acked) + 1, stuck

    (fs / "ballast").unlink()  # space returns: the follower catches up and rejoins
    _in_sync(admin, topic)
    _produce(cluster, topic, [_value(i) for i in range(1200, 1300)], acked)
    wait_for(lambda: _status(cluster, topic, 2).log_end_offset == max(acked) + 1, 30, what="replica 2 caught up")
    _check_everything(cluster, topic, acked)


def _replica_read(cluster, topic, replica, offset, end):
    """Read ``[offset, end)`` from one replica as an in-sync follower serves a consumer (KIP-392);
    the next offset."""
    handle = _replica(cluster, topic, replica)
    while offset < end:
        answer = ray.get(handle.fetch.remote(offset, 10_000, 1 << 20, 0, False, -1, True), timeout=10)
        assert answer.next_offset > offset, answer
        offset = answer.next_offset
    return offset


def test_a_followers_corrupt_batches_found_on_recovery_or_read_are_copied_again_from_the_leader(cluster, admin):
    topic = "follower-scar"
    # A long lag time keeps the killed follower in the ISR, so it serves follower reads when back.
    config = {**REPLICATED, "replica.lag.time.max.ms": 30_000, "segment.bytes": 16 * 1024}
    admin.create_topic(topic, partitions=1, replication_factor=3, config=config)
    _in_sync(admin, topic)
    acked: dict[int, bytes] = {}
    _produce_one_batch_each(cluster, topic, [_value(i) for i in range(60)], acked)
    wait_for(lambda: _status(cluster, topic, 2).log_end_offset == 60, 30, what="replica 2 has every record")

    _kill(cluster, topic, 2, no_restart=True)  # the controller creates it again in place
    # Its disk damages a batch of a sealed segment (checked only when read) and one in the middle
    # of the active segment (checked when it recovers).
    _corrupt_batch(_replica_dir(cluster, topic, 2), _value(7))
    _corrupt_batch(_replica_dir(cluster, topic, 2), _value(54))
    wait_for(lambda: (s := _status(cluster, topic, 2)) is not None and s.role == "follower"
             and s.log_end_offset == 60 and not s.damaged, 30, what="replica 2 back, undamaged")
    _in_sync(admin, topic)  # back in the ISR (leaving it while it lacks records below the HW: test_replica_set.py)
    rows = _records(cluster, topic, 2)
    assert rows[54] == (54, _value(54)), "the damage found on recovery was copied again"
    assert rows[7] != (7, _value(7)), "the damage in the sealed segment is not found yet"

    # A read from the follower meets it: a retriable error, and the follower copies it again.
    with pytest.raises(NotLeaderError, match="copy is damaged"):
        _replica_read(cluster, topic, 2, 0, 60)
    wait_for(lambda: (s := _status(cluster, topic, 2)) is not None and s.log_end_offset == 60 and not s.damaged
             and _records(cluster, topic, 2) == sorted(acked.items()), 30, what="replica 2 copied offset 7 again")
    assert _replica_read(cluster, topic, 2, 0, 60) == 60
    _produce(cluster, topic, [_value(i) for i in range(60, 80)], acked)
    wait_for(lambda: _status(cluster, topic, 2).log_end_offset == 80, 30, what="replica 2 copies new records")
    _check_everything(cluster, topic, acked)


def test_a_leaders_corrupt_batch_found_on_recovery_moves_the_leadership_and_is_copied_again(cluster, admin):
    topic = "leader-scar"
    admin.create_topic(topic, partitions=1, replication_factor=3, config=REPLICATED)
    _in_sync(admin, topic)
    before = _partition(admin, topic)
    assert before.leader_replica == 0
    acked: dict[int, bytes] = {}
    _produce_one_batch_each(cluster, topic, [_value(i) for i in range(40)], acked)
    wait_for(lambda: all(_status(cluster, topic, r).log_end_offset == 40 for r in (1, 2)), 30,
             what="the followers have every record")

    # Damaged under the running leader (its disk went bad), found when Ray restarts it in place.
    _corrupt_batch(_replica_dir(cluster, topic, 0), _value(15))
    _kill(cluster, topic, 0, no_restart=False)

    def settled():
        part = _partition(admin, topic)
        old = _status(cluster, topic, 0)
        return (part.leader_replica in (1, 2) and part.isr == (0, 1, 2) and old is not None
                and old.role == "follower" and not old.damaged and old.log_end_offset == 40 and part)

    part = wait_for(settled, 30, what="another replica leads and replica 0 copied the damaged range again")
    assert part.leader_epoch > before.leader_epoch
    _produce(cluster, topic, [_value(i) for i in range(40, 60)], acked)
    wait_for(lambda: _status(cluster, topic, 0).log_end_offset == 60, 30, what="replica 0 copies new records")
    _check_everything(cluster, topic, acked)


def test_a_leader_out_of_disk_refuses_clearly_keeps_everything_and_takes_writes_again(mounts, cluster, admin):
    topic = "leader-full"
    fs = mounts(_replica_dir(cluster, topic, 0))
    admin.create_topic(topic, partitions=1, replication_factor=3, config={**REPLICATED, "segment.bytes": 1 << 20})
    _in_sync(admin, topic)
    acked: dict[int, bytes] = {}
    _produce(cluster, topic, [_value(i) for i in range(200)], acked)
    _fill(fs / "ballast")

    failed = set()
    with rayka.Producer(cluster=cluster, acks="all", delivery_timeout_ms=1500, retry_backoff_ms=50) as producer:
        futures = [(v, producer.send(topic, value=v, partition=0)) for v in (_value(i, 1000) for i in range(200, 300))]
        producer.flush()
        errors = sort_outcomes(futures, acked, failed)
    assert errors, "the leader's disk never filled"
    assert all(isinstance(e, DiskFullError) and e.retriable for e in errors), errors[:3]
    assert str(_replica_dir(cluster, topic, 0)) in str(errors[0])
    assert _partition(admin, topic).leader_replica == 0

    (fs / "ballast").unlink()  # space returns: the same leader takes writes again
    _produce(cluster, topic, [_value(i) for i in range(300, 400)], acked)
    wait_for(lambda: all(_status(cluster, topic, r).log_end_offset == max(acked) + 1 for r in (1, 2)), 30,
             what="the followers have every record")
    _check_everything(cluster, topic, acked)
    assert not failed & set(acked.values())


def test_a_leaders_corrupt_batch_found_on_read_is_served_by_an_undamaged_replica(cluster, admin):
    """Damage in a sealed segment is not checked when the log opens, only on its first read: the
    leader that finds it there answers retriably, the controller moves the leadership to an
    undamaged in-sync replica, and the consumer reads on there, seeing no CorruptRecordError."""
    topic = "leader-read-scar"
    admin.create_topic(topic, partitions=1, replication_factor=3, config={**REPLICATED, "segment.bytes": 16 * 1024})
    _in_sync(admin, topic)
    acked: dict[int, bytes] = {}
    _produce_one_batch_each(cluster, topic, [_value(i) for i in range(60)], acked)
    assert len(list(_replica_dir(cluster, topic, 0).glob("*.arrows"))) >= 3
    wait_for(lambda: all(_status(cluster, topic, r).log_end_offset == 60 for r in (1, 2)), 30,
             what="the followers have every record")
    _kill(cluster, topic, 0, no_restart=True)
    _corrupt_batch(_replica_dir(cluster, topic, 0), _value(7))  # in the middle of the first, sealed segment
    # Replica 0 comes back as a follower, its damage not found yet (a sealed segment's batches
    # are checked on their first read); the preferred leader election makes it lead again.
    wait_for(lambda: (s := _status(cluster, topic, 0)) is not None and s.role == "follower" and not s.damaged
             and _partition(admin, topic).isr == (0, 1, 2), 30, what="replica 0 back in the ISR")
    wait_for(lambda: admin.elect_leaders(topic) == [0] or _partition(admin, topic).leader_replica == 0, 30,
             what="replica 0 leads again")
    wait_for(lambda: (s := _status(cluster, topic, 0)) is not None and s.role == "leader", 30, what="replica 0 leads")
    before = _partition(admin, topic)
    _check_everything(cluster, topic, acked, replicas=(1, 2))  # the consumer reads through the damage
    after = _partition(admin, topic)
    assert after.leader_replica in (1, 2) and after.leader_epoch > before.leader_epoch, after
    wait_for(lambda: (s := _status(cluster, topic, 0)) is not None and s.role == "follower" and not s.damaged
             and s.log_end_offset == 60, 30, what="replica 0 copied the damaged range again")
    _produce(cluster, topic, [_value(i) for i in range(60, 80)], acked)
    wait_for(lambda: _status(cluster, topic, 0).log_end_offset == 80, 30, what="replica 0 copies new records")
    _check_everything(cluster, topic, acked)
