"""The leader's ISR and high-watermark rules: committed-before-counted ISR changes, acks="all"."""

import random

import pytest

from rayka.coordinator.clock import ManualClock
from rayka.coordinator.election import AlterPartitionRequest, PartitionState, alter_partition
from rayka.errors import (
    FencedLeaderEpochError,
    InvalidUpdateVersionError,
    NotEnoughReplicasError,
    NotLeaderError,
    OffsetOutOfRangeError,
)
from rayka.partitions.replica_set import PendingAcks, ReplicaSet, check_leader_epoch, follower_high_watermark

LAG = 100


def make(isr=(0, 1, 2), replicas=(0, 1, 2), log_end=0, hw=0, epoch_start=0, min_isr=1, clock=None):
    state = PartitionState(replicas=replicas, leader=0, leader_epoch=2, isr=isr, partition_epoch=5)
    clock = clock or ManualClock(0)
    rs = ReplicaSet(state, 0, log_end, hw, epoch_start, min_insync_replicas=min_isr, lag_time_max_ms=LAG,
                    clock=clock)
    return rs, clock


def commit(rs, request):
    rs_state = PartitionState(replicas=rs.replicas, leader=0, leader_epoch=rs.leader_epoch, isr=rs.isr,
                              partition_epoch=rs.partition_epoch)
    new = alter_partition(rs_state, request)
    return rs.on_isr_committed(new.isr, new.partition_epoch)


def test_hw_is_the_minimum_leo_over_the_isr_and_waits_for_unknown_followers():
    rs, _ = make()
    assert not rs.on_append(10) and rs.high_watermark == 0  # followers not seen yet
    assert not rs.on_follower_fetch(1, 6)
    assert rs.on_follower_fetch(2, 4) and rs.high_watermark == 4
    assert rs.on_follower_fetch(2, 10) and rs.high_watermark == 6
    assert rs.on_follower_fetch(1, 10) and rs.high_watermark == 10


def test_leader_alone_commits_at_once_and_hw_never_goes_back():
    rs, _ = make(isr=(0,))
    assert rs.on_append(5) and rs.high_watermark == 5
    rs2, _ = make(isr=(0, 1), log_end=8, hw=6)
    rs2.on_follower_fetch(1, 3)  # a follower that lost an unflushed tail reports less
    assert rs2.high_watermark == 6
    with pytest.raises(ValueError):
        rs.on_append(4)


def test_caught_up_time_follows_kafka():
    rs, clock = make(isr=(0,), replicas=(0, 1), log_end=10)
    rs.on_follower_fetch(1, 5)  # behind the leader's 10: not caught up
    assert rs.follower(1).last_caught_up_ms is None
    rs.on_append(20)
    clock.advance(50)
    rs.on_follower_fetch(1, 10)  # reached the leader's end as of its previous fetch (t=0)
    assert rs.follower(1).last_caught_up_ms == 0
    clock.advance(50)
    rs.on_follower_fetch(1, 20)
    assert rs.follower(1).last_caught_up_ms == 100


def test_lagging_follower_leaves_only_once_the_shrink_is_committed():
    rs, clock = make(log_end=0)
    rs.on_follower_fetch(1, 0)
    rs.on_follower_fetch(2, 0)
    rs.on_append(10)
    rs.on_follower_fetch(1, 10)
    rs.on_follower_fetch(2, 3)
    assert rs.high_watermark == 3
    clock.advance(LAG)
    assert rs.out_of_sync() == []  # exactly lag_time_max_ms: still in sync
    clock.advance(1)
    rs.on_follower_fetch(1, 10)
    assert rs.out_of_sync() == [2]
    request = rs.next_isr_change()
    assert request == AlterPartitionRequest(leader=0, leader_epoch=2, partition_epoch=5, isr=(0, 1))
    assert rs.next_isr_change() is None  # one change in flight
    assert rs.maximal_isr == (0, 1, 2) and rs.high_watermark == 3  # replica 2 still holds the HW
    rs.on_append(12)
    rs.on_follower_fetch(1, 12)
    assert rs.high_watermark == 3
    assert commit(rs, request)
    assert rs.isr == (0, 1) and rs.partition_epoch == 6 and rs.pending is None
    assert rs.high_watermark == 12


def test_refused_shrink_keeps_the_isr_and_the_hw():
    rs, clock = make(isr=(0, 1), replicas=(0, 1), log_end=0)
    rs.on_follower_fetch(1, 0)
    rs.on_append(10)
    clock.advance(LAG + 1)
    request = rs.next_isr_change()
    assert request.isr == (0,)
    rs.on_isr_rejected()
    assert rs.isr == (0, 1) and rs.pending is None and rs.high_watermark == 0
    assert rs.next_isr_change() == request  # proposed again
    # a stale answer (an older partition epoch, or the epoch it has) is ignored
    assert not rs.on_isr_committed((0,), 4) and not rs.on_isr_committed((0,), 5) and rs.isr == (0, 1)


def test_follower_rejoins_after_reaching_hw_and_epoch_start():
    rs, clock = make(isr=(0, 1), log_end=20, hw=20, epoch_start=15)
    rs.on_follower_fetch(1, 20)
    rs.on_follower_fetch(2, 12)
    assert rs.caught_up() == [] and rs.next_isr_change() is None
    rs.on_follower_fetch(2, 20)
    assert rs.caught_up() == [2]
    request = rs.next_isr_change()
    assert request.isr == (0, 1, 2) and rs.maximal_isr == (0, 1, 2)
    rs.on_append(30)
    rs.on_follower_fetch(1, 30)
    assert rs.high_watermark == 20  # the joining replica counts while its join is pending
    rs.on_follower_fetch(2, 30)
    assert rs.high_watermark == 30
    clock.advance(LAG * 5)
    commit(rs, request)
    assert rs.isr == (0, 1, 2) and rs.out_of_sync() == []


def test_follower_below_the_epoch_start_does_not_rejoin():
    rs, _ = make(isr=(0,), replicas=(0, 1), log_end=20, hw=10, epoch_start=18)
    rs.on_follower_fetch(1, 12)  # past the HW but before this leader's epoch began
    assert rs.caught_up() == []


def test_acks_all_refused_below_min_isr_before_the_append():
    rs, _ = make(isr=(0, 1), replicas=(0, 1, 2), min_isr=3)
    with pytest.raises(NotEnoughReplicasError) as info:
        rs.check_acks_all()
    assert info.value.retriable and "min.insync.replicas=3" in str(info.value) and "not appended" in str(info.value)
    rs2, _ = make(min_isr=2)
    rs2.check_acks_all()


def test_acks_all_done_when_the_hw_passes_and_refused_if_isr_shrank_below_min():
    rs, clock = make(isr=(0, 1), replicas=(0, 1), min_isr=2)
    rs.on_follower_fetch(1, 0)
    rs.check_acks_all()
    rs.on_append(5)  # offsets 0..4
    assert not rs.acked(4)
    rs.on_follower_fetch(1, 5)
    assert rs.acked(4)
    rs.on_append(9)
    clock.advance(LAG + 1)
    commit(rs, rs.next_isr_change())
    assert rs.high_watermark == 9
    with pytest.raises(NotEnoughReplicasError) as info:
        rs.acked(8)
    assert "was appended and is visible" in str(info.value)


def test_pending_acks_release_in_order_and_expire():
    rs, _ = make(isr=(0, 1), replicas=(0, 1))
    rs.on_follower_fetch(1, 0)
    acks = PendingAcks(max_pending=3)
    rs.on_append(3)
    acks.add(2, 1000, "a")
    rs.on_append(6)
    acks.add(5, 50, "b")
    assert acks.release(rs) == []
    rs.on_follower_fetch(1, 4)
    assert acks.release(rs) == [("a", None)]
    assert acks.expire(49) == [] and acks.expire(50) == ["b"] and len(acks) == 0
    for i in range(3):
        acks.add(10 + i, 0, i)
    assert acks.full
    with pytest.raises(ValueError):
        acks.add(20, 0, "x")
    ordered = PendingAcks()
    ordered.add(5, 0, "x")
    with pytest.raises(ValueError):
        ordered.add(4, 0, "y")


def test_fetch_checks():
    rs, _ = make(log_end=5)
    with pytest.raises(NotLeaderError):
        rs.on_follower_fetch(7, 0)
    with pytest.raises(OffsetOutOfRangeError):
        rs.on_follower_fetch(1, 6)
    with pytest.raises(FencedLeaderEpochError):
        rs.on_isr_committed((1, 2), 9)  # the coordinator's ISR without this leader
    state = PartitionState(replicas=(0, 1), leader=1, leader_epoch=0, isr=(0, 1), partition_epoch=0)
    with pytest.raises(NotLeaderError):
        ReplicaSet(state, 0, 0, 0, 0)


def test_check_leader_epoch():
    check_leader_epoch(4, 4)
    check_leader_epoch(4, -1)
    with pytest.raises(FencedLeaderEpochError) as stale:
        check_leader_epoch(4, 3, what="append")
    assert stale.value.retriable and "append refused" in str(stale.value)
    with pytest.raises(NotLeaderError) as newer:
        check_leader_epoch(4, 5)
    assert newer.value.retriable and "another replica leads" in str(newer.value)
    with pytest.raises(NotLeaderError):
        check_leader_epoch(4, 4, serving=False)
    with pytest.raises(FencedLeaderEpochError):
        check_leader_epoch(4, 3, serving=False)


def test_follower_high_watermark():
    assert follower_high_watermark(10, 7) == 7 and follower_high_watermark(10, 12) == 10


@pytest.mark.parametrize("seed", range(30))
def test_random_replication_never_lets_the_hw_pass_a_missing_record(seed):
    rng = random.Random(seed)
    n = rng.randint(2, 4)
    replicas = tuple(range(n))
    min_isr = rng.randint(1, n)
    clock = ManualClock(0)
    coordinator = PartitionState(replicas=replicas, leader=0, leader_epoch=1, isr=replicas, partition_epoch=0)
    rs = ReplicaSet(coordinator, 0, 0, 0, 0, min_insync_replicas=min_isr, lag_time_max_ms=LAG, clock=clock)
    have = [0] * n  # records each replica holds (the leader's is its log end)
    stalled = set()
    applied = set()  # ISR changes the coordinator made (whatever the leader heard)
    acks = PendingAcks()
    acked_offsets = []
    hw_seen = 0

    def check():
        nonlocal hw_seen
        assert rs.high_watermark >= hw_seen
        hw_seen = rs.high_watermark
        # every replica the coordinator could elect holds every record below the HW
        for r in set(coordinator.isr) | set(rs.maximal_isr):
            assert have[r] >= rs.high_watermark, (r, have, rs.high_watermark, coordinator.isr)
        for token, error in acks.release(rs):
            if error is None:
                assert sum(h > token for h in have) >= min_isr
                acked_offsets.append(token)
        for offset in acked_offsets:
            assert all(have[r] > offset for r in coordinator.isr)

    for _ in range(400):
        op = rng.random()
        if op < 0.25:
            try:
                rs.check_acks_all()
            except NotEnoughReplicasError:
                continue
            have[0] += rng.randint(1, 3)
            rs.on_append(have[0])
            acks.add(have[0] - 1, 10**9, have[0] - 1)
        elif op < 0.6:
            r = rng.randrange(1, n)
            if r not in stalled:
                rs.on_follower_fetch(r, have[r])
                have[r] = min(have[0], have[r] + rng.randint(0, 4))
        elif op < 0.7:
            clock.advance(rng.randint(1, LAG))
        elif op < 0.8:
            r = rng.randrange(1, n)
            stalled.symmetric_difference_update({r})
        elif op < 0.85:
            rs.next_isr_change()
        elif op < 0.88 and len(coordinator.isr) > 1:
            # the controller shrinks the ISR by itself (a replica shutting down): the leader's
            # next request is then refused as stale and it adopts the coordinator's state
            coordinator = coordinator.replace(isr=coordinator.isr[:-1], partition_epoch=coordinator.partition_epoch + 1)
        elif op < 0.9:  # the controller tells the leader its current state (stale or not)
            rs.on_isr_committed(coordinator.isr, coordinator.partition_epoch)
        elif rs.pending is not None:  # the leader (re-)sends its pending change
            request, fate = rs.pending, rng.random()
            try:
                if fate < 0.1 and request not in applied:  # the coordinator could not persist it
                    rs.on_isr_rejected()
                    continue
                coordinator = alter_partition(coordinator, request)
                applied.add(request)
                if fate < 0.7:
                    rs.on_isr_committed(coordinator.isr, coordinator.partition_epoch)
                # else the answer is lost: the leader keeps the change pending and re-sends it
            except InvalidUpdateVersionError:
                rs.on_isr_committed(coordinator.isr, coordinator.partition_epoch)
        check()

    # heal: every follower catches up; the ISR fills and the HW reaches the log end
    stalled.clear()
    rs.on_isr_committed(coordinator.isr, coordinator.partition_epoch)
    for _ in range(20):
        for r in range(1, n):
            rs.on_follower_fetch(r, have[r])
            have[r] = have[0]
            rs.on_follower_fetch(r, have[r])
        request = rs.pending or rs.next_isr_change()
        if request is not None:
            try:
                coordinator = alter_partition(coordinator, request)
            except InvalidUpdateVersionError:
                pass
            rs.on_isr_committed(coordinator.isr, coordinator.partition_epoch)
        check()
    assert rs.isr == replicas == coordinator.isr and rs.high_watermark == have[0]


def test_adopt_a_replaced_replica():
    from rayka.coordinator.election import replace_replica
    rs, _ = make(isr=(0, 1, 2), log_end=10, hw=10)
    rs.on_follower_fetch(1, 10)
    coordinator = PartitionState(replicas=(0, 1, 2), leader=0, leader_epoch=2, isr=(0, 1, 2), partition_epoch=5)
    healed = replace_replica(coordinator, lost=2, new=3)
    assert rs.adopt(healed) is False  # the HW was 10 already
    assert rs.replicas == (0, 1, 3) and rs.isr == (0, 1) and rs.partition_epoch == 6
    assert rs.follower(3).leo == -1 and rs.follower(1).leo == 10
    with pytest.raises(NotLeaderError):
        rs.on_follower_fetch(2, 0)
    rs.on_follower_fetch(3, 10)
    assert rs.caught_up() == [3] and rs.next_isr_change().isr == (0, 1, 3)
    assert not rs.adopt(healed)  # not newer: ignored
    with pytest.raises(FencedLeaderEpochError):
        rs.adopt(healed.replace(leader=1, leader_epoch=3, partition_epoch=9))


def test_a_follower_whose_log_end_falls_below_the_hw_leaves_the_isr_at_once():
    # It truncated records every ISR member must hold (a damaged range it copies again): until it
    # holds them again it must not be electable, whatever its last caught-up time says.
    rs, clock = make(log_end=0)
    rs.on_append(10)
    rs.on_follower_fetch(1, 10)
    rs.on_follower_fetch(2, 10)
    assert rs.high_watermark == 10 and rs.out_of_sync() == []
    rs.on_follower_fetch(2, 7)
    assert rs.high_watermark == 10 and rs.out_of_sync() == [2]
    assert commit(rs, rs.next_isr_change()) is False and rs.isr == (0, 1)
    rs.on_follower_fetch(2, 10)  # copied again: back in sync
    assert rs.caught_up() == [2]
