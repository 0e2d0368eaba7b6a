"""Leader and follower roles over real partition logs, in one process and without Ray.

A leader PartitionLog with its LeaderRole serves follower fetches (serve_replica_fetch) to
follower logs driven step by step (FollowerRole.step): the high watermark, acks="all",
ISR changes proposed and committed, and truncation by leader epoch when a deposed leader
comes back as a follower.
"""

import threading

import pyarrow as pa
import pytest

from rayka.clock import ManualClock
from rayka.config import TopicConfig
from rayka.coordinator.election import PartitionState, alter_partition, elect_leader
from rayka.errors import FencedLeaderEpochError, NotEnoughReplicasError, NotLeaderError
from rayka.partitions.follower_role import FollowerRole
from rayka.partitions.leader_role import LeaderRole, serve_replica_fetch
from rayka.partitions.replicated_log import ReplicaLog

from storage_helpers import read_all


def batch(*values):
    return pa.table({"value": pa.array(list(values), pa.binary())})


def records(plog):
    """(offset, value) of every record of ``plog``."""
    offsets, values = read_all(plog)
    return list(zip(offsets, values))


class Replicas:
    """Replica 0 leads (a LeaderRole over its log), replicas 1 and 2 follow, fetching in-process."""

    def __init__(self, tmp_path, min_insync=2, lag_ms=1000):
        self.clock = ManualClock()
        self.config = TopicConfig()
        self.logs = [ReplicaLog(tmp_path / f"r{r}", config=self.config) for r in range(3)]
        self.state = PartitionState.initial([0, 1, 2])
        self.min_insync, self.lag_ms = min_insync, lag_ms
        self.lead(0)

    def lead(self, replica):
        self.logs[replica].begin_epoch(self.state.leader_epoch)
        self.leader_id = replica
        self.leader = LeaderRole(self.state, replica, self.logs[replica].log_end_offset, 0,
                                 min_insync_replicas=self.min_insync, lag_time_max_ms=self.lag_ms, clock=self.clock)
        self.followers = {r: FollowerRole(self.logs[r], self.state, r, self._fetch, max_wait_ms=0)
                          for r in self.state.replicas if r != replica}

    def _fetch(self, request):
        return serve_replica_fetch(self.logs[self.leader_id], self.leader, request)

    def append(self, *values, acks_all=False):
        if acks_all:
            self.leader.check_acks_all()
        plog = self.logs[self.leader_id]
        result = plog.append(batch(*values), leader_epoch=self.leader.leader_epoch)
        self.leader.on_append(plog.log_end_offset)
        return result

    def sync(self, *replicas, rounds=2):
        for _ in range(rounds):
            for r in replicas or self.followers:
                self.followers[r].step()

    def commit_isr_change(self):
        request = self.leader.isr_request()
        assert request is not None
        self.state = alter_partition(self.state, request)
        self.leader.isr_committed(self.state)
        return self.state

    def close(self):
        for plog in self.logs:
            plog.close()


@pytest.fixture
def replicas(tmp_path):
    r = Replicas(tmp_path)
    yield r
    r.close()


def test_high_watermark_waits_for_every_in_sync_follower(replicas):
    replicas.append(b"a", b"b")
    assert replicas.leader.high_watermark == 0
    replicas.sync(1)
    assert replicas.leader.high_watermark == 0  # replica 2 has not fetched: the HW waits for it
    replicas.sync(2)
    assert replicas.leader.high_watermark == 2
    assert replicas.followers[1].high_watermark == 2 or replicas.followers[1].high_watermark == 0
    replicas.sync()
    assert all(f.high_watermark == 2 for f in replicas.followers.values())
    assert [records(plog) for plog in replicas.logs] == [[(0, b"a"), (1, b"b")]] * 3


def test_acks_all_waits_until_followers_copy_then_answers(replicas):
    result = replicas.append(b"x")
    done = threading.Event()
    errors = []

    def wait():
        try:
            replicas.leader.wait_acked(result.last_offset, timeout_s=10)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)
        done.set()

    t = threading.Thread(target=wait)
    t.start()
    assert not done.wait(0.2)
    replicas.sync()
    assert done.wait(5) and not errors
    t.join()


def test_acks_all_times_out_with_a_retriable_error_when_followers_do_not_copy(replicas):
    result = replicas.append(b"x")
    with pytest.raises(NotEnoughReplicasError) as info:
        replicas.leader.wait_acked(result.last_offset, timeout_s=0.2)
    assert info.value.retriable


def test_a_lagging_follower_leaves_the_isr_only_once_the_change_is_committed(replicas):
    replicas.append(b"a")
    replicas.sync()
    replicas.append(b"b")
    replicas.sync(1)  # replica 2 stops fetching
    replicas.clock.advance(1500)
    replicas.sync(1)
    assert replicas.leader.high_watermark == 1  # replica 2 still holds it back: not committed yet
    state = replicas.commit_isr_change()
    assert state.isr == (0, 1)
    assert replicas.leader.high_watermark == 2
    # With min.insync.replicas=2, ISR (0, 1) still takes acks="all" appends.
    replicas.append(b"c", acks_all=True)
    # It catches up and is proposed back into the ISR.
    replicas.sync(2, rounds=3)
    replicas.sync(1)
    state = replicas.commit_isr_change()
    assert state.isr == (0, 1, 2)


def test_acks_all_refused_before_writing_when_the_isr_is_below_the_minimum(replicas):
    replicas.append(b"a")
    replicas.clock.advance(1500)
    replicas.commit_isr_change()  # both followers fell out
    assert replicas.leader.isr == (0,)
    end = replicas.logs[0].log_end_offset
    with pytest.raises(NotEnoughReplicasError):
        replicas.append(b"b", acks_all=True)
    assert replicas.logs[0].log_end_offset == end  # nothing written


def test_a_deposed_leader_truncates_its_divergent_tail_by_epoch(replicas):
    replicas.append(b"a", b"b")
    replicas.sync()
    assert replicas.leader.high_watermark == 2
    # Replica 0 writes records no follower copies, then is deposed; replica 1 is elected.
    replicas.append(b"lost-1")
    replicas.append(b"lost-2")
    old_leader = replicas.leader
    elected = elect_leader(replicas.state, alive={1, 2})
    replicas.state = elected.state
    old_leader.resign("deposed")
    with pytest.raises(NotLeaderError):
        old_leader.check_acks_all()
    replicas.lead(1)
    replicas.append(b"new-1")
    # The old leader comes back as a follower of epoch 1 and truncates to where epoch 0 ends on the new leader.
    replicas.followers[0] = FollowerRole(replicas.logs[0], replicas.state, 0, replicas._fetch, max_wait_ms=0)
    replicas.sync(rounds=3)
    expected = [(0, b"a"), (1, b"b"), (2, b"new-1")]
    assert [records(plog) for plog in replicas.logs] == [expected] * 3
    assert replicas.logs[0].latest_epoch == 1


def test_a_fetch_naming_an_older_leader_epoch_is_fenced(replicas):
    from rayka.messages import ReplicaFetchRequest

    replicas.state = elect_leader(replicas.state, alive={1, 2}).state  # replica 1 leads at epoch 1
    replicas.lead(1)
    stale = ReplicaFetchRequest(2, 0, -1, replicas.leader.leader_epoch - 1, 1 << 20, 0)
    with pytest.raises(FencedLeaderEpochError):
        serve_replica_fetch(replicas.logs[1], replicas.leader, stale)
    newer = ReplicaFetchRequest(2, 0, -1, replicas.leader.leader_epoch + 1, 1 << 20, 0)
    with pytest.raises(NotLeaderError):
        serve_replica_fetch(replicas.logs[1], replicas.leader, newer)


def test_a_follower_copies_a_batch_larger_than_its_fetch_bytes_whole_in_one_fetch(tmp_path):
    """A stored batch over the follower's max_bytes comes whole, not cut and re-encoded: one
    fetch copies it (one round trip per acks="all" append), and the copy keeps the producer id
    and sequence, so the follower, once it leads, answers the producer's retry as a duplicate."""
    clock = ManualClock()
    logs = [ReplicaLog(tmp_path / f"r{r}", config=TopicConfig()) for r in range(2)]
    state = PartitionState.initial([0, 1])
    logs[0].begin_epoch(state.leader_epoch)
    leader = LeaderRole(state, 0, 0, 0, min_insync_replicas=2, clock=clock)
    follower = FollowerRole(logs[1], state, 1, lambda req: serve_replica_fetch(logs[0], leader, req),
                            max_bytes=1024, max_wait_ms=0)
    try:
        big = pa.table({"value": pa.array([b"v" * 100] * 200, pa.binary())})  # ~20 KB stored
        logs[0].append(big, producer_id="p", sequence=0, leader_epoch=state.leader_epoch)
        leader.on_append(logs[0].log_end_offset)
        assert follower.step() == 200  # the whole batch in one fetch
        assert follower.fetches == 1
        follower.step()  # reports its log end
        assert leader.high_watermark == 200
        again = logs[1].append(big, producer_id="p", sequence=0, leader_epoch=state.leader_epoch)
        assert again.duplicate and again.base_offset == 0
        assert logs[1].log_end_offset == 200
        assert records(logs[1]) == records(logs[0])
    finally:
        for plog in logs:
            plog.close()
