"""Kafka's client-assigned group protocol through the real coordinator actor: join, sync,
commit, fetch and describe (with lag), as the gateway will drive it."""

import time

import pytest
import ray

import rayka
from rayka.errors import FencedInstanceIdError, GroupNotEmptyError, IllegalGenerationError
from rayka.messages import JoinStatus
from rayka.testing import wait_for

PROTOS = [("range", b"sub-range"), ("roundrobin", b"sub-rr")]


def poll(call, what, timeout_s=30):
    """Call until the answer is not PENDING, as the gateway polls (bounded by a deadline)."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = call()
        if answer.status is not JoinStatus.PENDING:
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} still pending after {timeout_s}s")
        time.sleep(0.02)  # the gateway's poll interval, not a synchronisation


def test_kafka_group_join_sync_commit_fetch_and_describe(cluster, admin):
    admin.create_topic("kt", partitions=2)
    with rayka.Producer() as p:
        for i in range(10):
            p.send("kt", value=b"%d" % i, partition=i % 2)
    coord = cluster.coordinator

    def join(member_id, instance_id):
        return coord.kafka_join_group("kg", member_id, instance_id, "consumer", PROTOS, 30_000, 10_000,
                                      "rdkafka", "/127.0.0.1")

    first = join(None, "i-a")
    assert first.ok and first.generation == 1 and first.leader == first.member_id
    a = first.member_id
    second = join(None, None)  # a second member: the group rebalances
    b = second.member_id
    assert second.status is JoinStatus.PENDING
    assert coord.kafka_heartbeat("kg", a, 1, "i-a") == "rebalance"
    ja = poll(lambda: join(a, "i-a"), "the leader's join")
    jb = poll(lambda: join(b, None), "the follower's join")
    assert ja.generation == jb.generation == 2 and ja.leader == jb.leader == a
    assert {m for m, _, _ in ja.members} == {a, b} and jb.members == ()
    assert coord.kafka_sync_group("kg", b, 2, None, {}).status is JoinStatus.PENDING
    leader_sync = coord.kafka_sync_group("kg", a, 2, "i-a", {a: b"asg-a", b: b"asg-b"},
                                         {a: [("kt", 0)], b: [("kt", 1)]})
    assert leader_sync.assignment == b"asg-a" and leader_sync.protocol_name == "range"
    assert poll(lambda: coord.kafka_sync_group("kg", b, 2, None, {}), "the follower's sync").assignment == b"asg-b"

    coord.kafka_commit_offsets("kg", a, 2, "i-a", [("kt", 0, 5, None)])
    coord.kafka_commit_offsets("kg", b, 2, None, [("kt", 1, 2, "m")])
    with pytest.raises(IllegalGenerationError):
        coord.kafka_commit_offsets("kg", b, 1, None, [("kt", 1, 3, None)])
    assert coord.fetch_offsets("kg", [("kt", 0), ("kt", 1)], True) == [(5, ""), (2, "m")]
    assert coord.fetch_all_offsets("kg") == ((("kt", 0), 5, ""), (("kt", 1), 2, "m"))

    info = coord.describe_group("kg")
    assert (info.state, info.protocol_type, info.protocol, info.generation) == ("Stable", "consumer", "range", 2)
    assert {m.member_id: m.assignment_bytes for m in info.members} == {a: b"asg-a", b: b"asg-b"}
    described = admin.describe_group("kg")  # what `rayka groups describe` shows: owners and lag
    assert [(p.partition, p.committed, p.end_offset, p.member) for p in described.partitions] == [
        (0, 5, 5, a), (1, 2, 5, b)]
    with pytest.raises(GroupNotEmptyError):
        admin.reset_offsets("kg", "earliest")

    back = join(None, "i-a")  # a static member restarted: its place, no rebalance; the old id fenced
    assert back.ok and back.generation == 2 and back.member_id != a
    with pytest.raises(FencedInstanceIdError):
        coord.kafka_heartbeat("kg", a, 2, "i-a")
    coord.kafka_leave_group("kg", None, "i-a")
    coord.kafka_leave_group("kg", b, None)
    assert admin.reset_offsets("kg", "latest") == {rayka.TopicPartition("kt", 0): 5, rayka.TopicPartition("kt", 1): 5}
    assert [(g.group_id, g.protocol_type) for g in coord.list_groups()] == [("kg", "consumer")]


def test_a_kafka_group_rides_through_a_coordinator_restart(cluster, admin):
    admin.create_topic("kr", partitions=2)
    coord = cluster.coordinator
    a = coord.kafka_join_group("kr-g", None, "i-a", "consumer", PROTOS, 30_000, 10_000, "kafka-python", "/h")
    assert a.ok
    coord.kafka_sync_group("kr-g", a.member_id, 1, "i-a", {a.member_id: b"asg"}, {a.member_id: [("kr", 0), ("kr", 1)]})
    coord.kafka_commit_offsets("kr-g", a.member_id, 1, "i-a", [("kr", 0, 0, "before")])
    before = coord.instance_id()
    ray.kill(coord.handle, no_restart=False)  # Ray restarts it; the new one restores the group
    wait_for(lambda: coord.instance_id() != before, timeout_s=60, what="the coordinator to restart")
    assert coord.kafka_heartbeat("kr-g", a.member_id, 1, "i-a") == "ok"  # same member, same generation
    assert coord.kafka_sync_group("kr-g", a.member_id, 1, "i-a", {}).assignment == b"asg"
    info = coord.describe_group("kr-g")
    assert (info.state, info.protocol_type, info.protocol) == ("Stable", "consumer", "range")
    assert info.members[0].assignment == (("kr", 0), ("kr", 1)) and info.members[0].client_id == "kafka-python"
    assert coord.fetch_offsets("kr-g", [("kr", 0)], True) == [(0, "before")]
