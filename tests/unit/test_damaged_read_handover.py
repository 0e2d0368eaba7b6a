"""A leader whose read meets damaged offsets: retriable while another in-sync replica holds them
and the controller hands the leadership over; the CorruptRecordError itself otherwise."""

from rayka.clock import ManualClock
from rayka.coordinator.election import PartitionState
from rayka.errors import CorruptRecordError, NotLeaderError
from rayka.partitions.leader_role import DAMAGE_HANDOVER_MS, LeaderRole


def _damage():
    return CorruptRecordError("offsets 7..7 failed their checksum; seek to 8", first_offset=7, next_offset=8)


def _leader(isr, clock):
    state = PartitionState.initial([0, 1, 2]).replace(isr=tuple(isr))
    return LeaderRole(state, 0, 40, 40, min_insync_replicas=1, clock=clock)


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
