"""Damaged batches with replication, without Ray: a leader whose read meets damage answers
retriably while another in-sync replica holds it and the controller hands the leadership over
(the CorruptRecordError itself otherwise); a follower with damage, found when its log opened or
by a read, copies the damaged range again from the leader instead of keeping a hole."""

import pyarrow as pa
import pytest

from rayka.clock import ManualClock
from rayka.config import TopicConfig
from rayka.coordinator.election import PartitionState
from rayka.errors import CorruptRecordError, NotLeaderError
from rayka.partitions.follower_role import FollowerRole
from rayka.partitions.leader_role import DAMAGE_HANDOVER_MS, LeaderRole, serve_replica_fetch
from rayka.partitions.replicated_log import ReplicaLog

from storage_helpers import crash, flip_byte, read_all, spans


def _damage():
    return CorruptRecordError("offsets 7..7 failed their checksum; seek to 8", first_offset=7, next_offset=8)


def _leader(isr, clock, log_end=40):
    state = PartitionState.initial([0, 1, 2]).replace(isr=tuple(isr))
    return LeaderRole(state, 0, log_end, log_end, min_insync_replicas=1, clock=clock)


def test_with_another_in_sync_replica_the_read_is_retriable_until_the_handover_time_passes():
    clock = ManualClock()
    leader = _leader((0, 1, 2), clock)
    first = leader.damaged_read(_damage())
    assert isinstance(first, NotLeaderError) and first.retriable
    assert "[1, 2]" in str(first) and "7..7" in str(first)
    clock.advance(DAMAGE_HANDOVER_MS)
    assert isinstance(leader.damaged_read(_damage()), NotLeaderError)  # counted from the first damaged read
    clock.advance(1)
    late = _damage()
    assert leader.damaged_read(late) is late  # no undamaged replica took over: the damage is reported


def test_a_leader_alone_in_the_isr_reports_the_damage_at_once():
    leader = _leader((0,), ManualClock())
    damage = _damage()
    assert leader.damaged_read(damage) is damage


def _records(plog):
    offsets, values = read_all(plog)
    return list(zip(offsets, values))


@pytest.mark.parametrize("sealed", [False, True], ids=["found-on-open", "found-on-read"])
def test_a_followers_damaged_range_is_copied_again_from_the_leader(tmp_path, sealed):
    # Small segments: damage in a sealed one is only found by a read (not checked at open).
    config = TopicConfig(segment_bytes=8192 if sealed else 1 << 20)
    state = PartitionState.initial([0, 1])
    leader_log = ReplicaLog(tmp_path / "r0", config=config)
    leader_log.begin_epoch(0)
    for i in range(20):
        leader_log.append(pa.table({"value": pa.array([b"v%02d" % i + b"-" * 100], pa.binary())}))
    leader = LeaderRole(state, 0, leader_log.log_end_offset, 0, clock=ManualClock())
    follower_log = ReplicaLog(tmp_path / "r1", config=config)

    def fetch(request):
        return serve_replica_fetch(leader_log, leader, request)

    follower = FollowerRole(follower_log, state, 1, fetch, max_wait_ms=0)
    while follower_log.log_end_offset < 20:
        follower.step()
    expected = _records(leader_log)
    crash(follower_log)  # killed; then a byte of the batch at offset 5 goes bad on its disk
    segment = next(p for p in sorted((tmp_path / "r1").glob("*.arrows"))
                   if any(base == 5 for _, _, base, _ in spans(p)))
    position, size, _, _ = next(s for s in spans(segment) if s[2] == 5)
    assert position + size < segment.stat().st_size, "the damaged batch has whole batches after it"
    flip_byte(segment, position + size - 20)

    follower_log = ReplicaLog(tmp_path / "r1", config=config)
    if sealed:
        assert follower_log.damaged_offsets == []  # not checked at open
        with pytest.raises(CorruptRecordError):
            read_all(follower_log)  # a read meets it (a consumer reading from this follower)
    assert follower_log.damaged_offsets == [(5, 5)]
    follower = FollowerRole(follower_log, state, 1, fetch, max_wait_ms=0)
    assert isinstance(follower.damaged_read(_damage()), NotLeaderError)
    for _ in range(5):
        follower.step()
    assert follower_log.damaged_offsets == []
    assert _records(follower_log) == expected  # no hole: offset 5 is back, as the leader has it
    leader_log.close()
    follower_log.close()
