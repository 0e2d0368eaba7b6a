"""GroupService: the coordinator actor's group calls as plain logic, with fake partitions."""

import pickle
import threading

import pytest

from rayka.messages import GroupInfo, GroupListing, GroupMemberInfo, GroupPartitionInfo, JoinStatus, OffsetReset

from rayka.coordinator.clock import ManualClock
from rayka.coordinator.group_coordinator import GroupCoordinator
from rayka.coordinator.group_service import GroupService
from rayka.coordinator.offset_store import OffsetStore
from rayka.errors import PartitionUnavailableError, UnknownGroupError


class _Partitions:
    """Fixed (log_start, log_end) per partition; topics in ``down`` cannot answer."""

    def __init__(self, bounds):
        self.bounds_by_tp, self.down, self.asked = bounds, set(), []

    def bounds(self, tps):
        return {tp: self.bounds_by_tp[tp] for tp in tps if tp in self.bounds_by_tp and tp[0] not in self.down}

    def topic_bounds(self, topic):
        self.asked.append(("bounds", topic))
        if topic in self.down:
            raise PartitionUnavailableError(f"reset_offsets: partition(s) {topic}-0 cannot be reached")
        return [b for (t, _), b in sorted(self.bounds_by_tp.items()) if t == topic]

    def topic_times(self, topic, timestamp_ms):
        self.asked.append(("times", topic, timestamp_ms))
        return [(start + 1, timestamp_ms) for (t, _), (start, _) in sorted(self.bounds_by_tp.items()) if t == topic]


@pytest.fixture
def service():
    partitions = _Partitions({("t", 0): (0, 10), ("t", 1): (5, 20)})
    groups = GroupCoordinator(OffsetStore(None), ManualClock(), lambda: {"t": 2})
    return GroupService(groups, partitions), partitions


def test_the_group_calls_answer_as_the_group_coordinator_does(service):
    svc, _ = service
    a = svc.join_group("g", None, None, ["t"], 1000, 5000, (), "range")
    assert a.status is JoinStatus.OK and a.generation == 1 and len(a.assignment) == 2
    assert svc.heartbeat("g", a.member_id, 1) == "ok"
    svc.commit_offsets("g", a.member_id, 1, [("t", 0, 4, "m")])
    assert svc.fetch_offsets("g", [("t", 0), ("t", 1)], True) == [(4, "m"), None]
    assert svc.list_groups() == (GroupListing("g", "Stable", 1),)
    assert [g.to_dict() for g in svc.list_groups()] == [{"group_id": "g", "state": "Stable", "members": 1}]
    svc.leave_group("g", a.member_id)
    svc.tick()
    svc.delete_group("g")
    assert svc.list_groups() == ()


def test_describe_group_shows_lag_and_leaves_unanswered_partitions_unknown(service):
    svc, partitions = service
    a = svc.join_group("g", None, None, ["t"], 1000, 5000, (), "range")
    svc.commit_offsets("g", a.member_id, 1, [("t", 0, 4)])
    info = svc.describe_group("g")
    assert isinstance(info, GroupInfo) and info.state == "Stable"
    assert [(r.partition, r.committed, r.end_offset) for r in info.partitions] == [(0, 4, 10), (1, None, 20)]
    partitions.down.add("t")
    assert all(r.end_offset is None for r in svc.describe_group("g").partitions)


def test_reset_offsets_moves_every_partition_or_none(service):
    svc, partitions = service
    with pytest.raises(UnknownGroupError, match="name the topics"):
        svc.reset_offsets("g", "earliest")
    assert svc.reset_offsets("g", "earliest", ["t"]) == OffsetReset(((("t", 0), 0), (("t", 1), 5)))
    assert svc.reset_offsets("g", "latest").as_dict() == {("t", 0): 10, ("t", 1): 20}  # the topics it has offsets in
    assert svc.reset_offsets("g", {"timestamp_ms": 77}).as_dict() == {("t", 0): 1, ("t", 1): 6}
    assert ("times", "t", 77) in partitions.asked
    partitions.down.add("t")
    with pytest.raises(PartitionUnavailableError):
        svc.reset_offsets("g", "earliest")
    assert svc.fetch_offsets("g", [("t", 0), ("t", 1)]) == [1, 6]  # nothing was reset


def test_calls_from_many_threads_are_serialised(service):
    svc, _ = service
    errors = []

    def member():
        try:
            answer = svc.join_group("g", None, None, ["t"], 60_000, 60_000, (), "range")
            for _ in range(50):
                answer = svc.join_group("g", answer.member_id, None, ["t"], 60_000, 60_000,
                                        answer.assignment, "range")
                svc.tick()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=member) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert svc.list_groups()[0].members == 4


def test_describe_group_is_one_frozen_hashable_value(service):
    svc, _ = service
    a = svc.join_group("g", None, "static-1", ["t"], 1000, 5000, (), "roundrobin")
    svc.commit_offsets("g", a.member_id, 1, [("t", 1, 7)])
    info = svc.describe_group("g")
    assert info == GroupInfo(
        "g", "Stable", "roundrobin", 1, a.member_id,
        (GroupMemberInfo(a.member_id, "static-1", ("t",), (("t", 0), ("t", 1))),),
        (GroupPartitionInfo("t", 0, None, 0, 10, a.member_id), GroupPartitionInfo("t", 1, 7, 5, 20, a.member_id)))
    assert hash(info) == hash(svc.describe_group("g"))  # nested tuples all the way down
    with pytest.raises(AttributeError):
        info.state = "Empty"
    assert pickle.loads(pickle.dumps(info)) == info  # what Ray does to it between the actor and the client


def test_describe_group_of_a_group_with_only_commits_has_no_members(service):
    svc, _ = service
    svc.commit_offsets("g", None, -1, [("t", 0, 3)])
    info = svc.describe_group("g")
    assert (info.state, info.protocol, info.members) == ("Empty", None, ())
    assert info.partitions == (GroupPartitionInfo("t", 0, 3, 0, 10, None),)
    assert svc.list_groups() == (GroupListing("g", "Empty", 0),)
