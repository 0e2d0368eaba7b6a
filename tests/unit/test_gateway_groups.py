"""The gateway's group handlers over the in-memory backend: JoinGroup/SyncGroup held until the
rebalance completes, Heartbeat and LeaveGroup errors, committed offsets, ListGroups, DescribeGroups."""

from __future__ import annotations

import asyncio

import pytest
from gateway_client import call
from gateway_fakes import FakeBackend
from kafka.protocol.admin import DescribeGroupsRequest, ListGroupsRequest
from kafka.protocol.consumer import (ConsumerProtocolAssignment, HeartbeatRequest, JoinGroupRequest,
                                     LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest, SyncGroupRequest)

from rayka.gateway import apis
from rayka.gateway.errors import Code
from rayka.gateway.handlers.groups import decode_assignment
from rayka.gateway.session import Connection, GatewayOptions

JP = JoinGroupRequest.JoinGroupRequestProtocol
SA = SyncGroupRequest.SyncGroupRequestAssignment


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def conns(n=2):
    backend = FakeBackend()
    asyncio.run(backend.create_topic("t", 4, 1, {}))
    return backend, [Connection(backend, broker_id=0, options=GatewayOptions(group_poll_ms=5)) for _ in range(n)]


def join(version, member="", instance=None, rebalance_ms=5000):
    return JoinGroupRequest[version](group_id="g", session_timeout_ms=10000, rebalance_timeout_ms=rebalance_ms,
                                     member_id=member, group_instance_id=instance, protocol_type="consumer",
                                     protocols=[JP(name="range", metadata=b"meta")])


def assignment(parts):
    A = ConsumerProtocolAssignment
    return bytes(A(version=0, assigned_partitions=[A.TopicPartition(topic="t", partitions=parts)],
                   user_data=None).encode(version=0))


async def form_group(c1, c2, version=5, sync_version=3):
    """Two members join (the second while the first is held), the leader assigns, both sync."""
    j1 = await call(c1, join(version, instance="i1" if version >= 5 else None))
    assert j1.error_code == 0 and j1.leader == j1.member_id  # alone: the rebalance completes at once
    # c1 rejoins (a new member triggers a rebalance in real groups; here: c2 joins, c1 rejoins)
    t2 = asyncio.ensure_future(call(c2, join(version, instance="i2" if version >= 5 else None)))
    await asyncio.sleep(0.02)
    assert not t2.done()  # held: c1 has not rejoined yet
    r1 = await call(c1, join(version, member=j1.member_id, instance="i1" if version >= 5 else None))
    r2 = await t2
    leader, follower = (r1, r2) if r1.leader == r1.member_id else (r2, r1)
    assert leader.generation_id == follower.generation_id == 2
    assert sorted(m.member_id for m in leader.members) == sorted([r1.member_id, r2.member_id])
    assert follower.members == []
    lc, fc = (c1, c2) if leader is r1 else (c2, c1)
    plan = {leader.member_id: assignment([0, 1]), follower.member_id: assignment([2, 3])}
    ft = asyncio.ensure_future(call(fc, SyncGroupRequest[sync_version](
        group_id="g", generation_id=2, member_id=follower.member_id, group_instance_id=None, assignments=[])))
    await asyncio.sleep(0.02)
    assert not ft.done()  # held until the leader sends the assignment
    ls = await call(lc, SyncGroupRequest[sync_version](
        group_id="g", generation_id=2, member_id=leader.member_id, group_instance_id=None,
        assignments=[SA(member_id=m, assignment=a) for m, a in plan.items()]))
    fs = await ft
    assert (ls.error_code, fs.error_code) == (0, 0)
    assert ls.assignment == plan[leader.member_id] and fs.assignment == plan[follower.member_id]
    return leader, follower


@pytest.mark.parametrize("version, sync_version", sorted({(0, 0), (1, 1), (3, 2), (5, 3),
                                                          (apis.VERSIONS[11][1], apis.VERSIONS[14][1])}))
def test_join_and_sync_two_members(version, sync_version):
    backend, (c1, c2) = conns()
    leader, follower = run(form_group(c1, c2, version, sync_version))
    [sync_call] = [c for c in backend.calls if c[0] == "sync_group" and c[4]]
    assert sync_call[5] == {leader.member_id: [("t", 0), ("t", 1)], follower.member_id: [("t", 2), ("t", 3)]}
    if version >= 5:
        assert ("join_group", "g", None, "i1") in backend.calls


@pytest.mark.parametrize("hb_version", sorted({0, 3, apis.VERSIONS[12][1]}))
def test_heartbeat_and_its_errors(hb_version):
    backend, (c1, c2) = conns()

    async def go():
        leader, follower = await form_group(c1, c2)

        async def hb(member, generation):
            return (await call(c1, HeartbeatRequest[hb_version](group_id="g", generation_id=generation, member_id=member,
                                                       group_instance_id=None))).error_code

        ok = await hb(leader.member_id, 2)
        stale = await hb(leader.member_id, 1)
        unknown = await hb("nobody", 2)
        await call(c2, LeaveGroupRequest[3](group_id="g", members=[
            LeaveGroupRequest.MemberIdentity(member_id=follower.member_id, group_instance_id=None)]))
        rebalancing = await hb(leader.member_id, 2)
        return ok, stale, unknown, rebalancing

    assert run(go()) == (0, Code.ILLEGAL_GENERATION, Code.UNKNOWN_MEMBER_ID, Code.REBALANCE_IN_PROGRESS)


@pytest.mark.parametrize("batched", sorted({3, apis.VERSIONS[13][1]}))
def test_leave_group_v0_and_v3_batched(batched):
    backend, (c1, c2) = conns()

    async def go():
        leader, follower = await form_group(c1, c2)
        r0 = await call(c1, LeaveGroupRequest[0](group_id="g", member_id="nobody"))
        M = LeaveGroupRequest.MemberIdentity
        r3 = await call(c1, LeaveGroupRequest[batched](group_id="g", members=[
            M(member_id=leader.member_id, group_instance_id=None), M(member_id="ghost", group_instance_id=None),
            M(member_id=follower.member_id, group_instance_id=None)]))
        return r0, r3

    r0, r3 = run(go())
    assert r0.error_code == Code.UNKNOWN_MEMBER_ID
    assert [m.error_code for m in r3.members] == [0, Code.UNKNOWN_MEMBER_ID, 0]
    assert backend.groups["g"].state == "Empty"


def test_join_held_past_the_rebalance_timeout_answers_rebalance_in_progress():
    backend, (c1, c2) = conns()

    async def go():
        j1 = await call(c1, join(5))
        await call(c1, SyncGroupRequest[3](group_id="g", generation_id=1, member_id=j1.member_id,
                                           group_instance_id=None, assignments=[]))
        backend.clock = lambda: 0.0  # the fake's own rebalance timeout never passes
        return await call(c2, join(5, rebalance_ms=100))  # c1 never rejoins

    r = run(go())
    assert r.error_code == Code.REBALANCE_IN_PROGRESS and r.member_id


def test_join_group_errors():
    backend, (c1, _) = conns()
    r = run(call(c1, join(5, member="unknown-member")))
    assert r.error_code == Code.UNKNOWN_MEMBER_ID
    bad = JoinGroupRequest[5](group_id="", session_timeout_ms=1, rebalance_timeout_ms=1, member_id="",
                              group_instance_id=None, protocol_type="consumer", protocols=[])
    assert run(call(c1, bad)).error_code == 24  # INVALID_GROUP_ID


def test_sync_group_errors():
    backend, (c1, c2) = conns()

    async def go():
        leader, _ = await form_group(c1, c2)
        stale = await call(c1, SyncGroupRequest[3](group_id="g", generation_id=1, member_id=leader.member_id,
                                                   group_instance_id=None, assignments=[]))
        unknown = await call(c1, SyncGroupRequest[3](group_id="nope", generation_id=1, member_id="x",
                                                     group_instance_id=None, assignments=[]))
        return stale.error_code, unknown.error_code

    assert run(go()) == (Code.ILLEGAL_GENERATION, Code.GROUP_ID_NOT_FOUND)


def test_decode_assignment():
    assert decode_assignment(assignment([3, 1])) == [("t", 3), ("t", 1)]
    assert decode_assignment(b"") == []
    assert decode_assignment(b"\x00\x00\xff\xff\xff\x7f") is None  # not a ConsumerProtocolAssignment


@pytest.mark.parametrize("version", sorted({2, 5, 7, apis.VERSIONS[8][1]}))
def test_offset_commit_and_fetch(version):
    backend, (c1, c2) = conns()
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    P = T.OffsetCommitRequestPartition

    async def go():
        leader, _ = await form_group(c1, c2)
        commit = await call(c1, OffsetCommitRequest[version](
            group_id="g", generation_id_or_member_epoch=2, member_id=leader.member_id, group_instance_id=None,
            retention_time_ms=-1, topics=[
                T(name="t", partitions=[P(partition_index=0, committed_offset=5, committed_leader_epoch=-1,
                                          committed_metadata="m"),
                                        P(partition_index=1, committed_offset=7, committed_leader_epoch=-1,
                                          committed_metadata=None)]),
                T(name="nope", partitions=[P(partition_index=0, committed_offset=1, committed_leader_epoch=-1,
                                             committed_metadata=None)])]))
        stale = await call(c1, OffsetCommitRequest[version](
            group_id="g", generation_id_or_member_epoch=1, member_id=leader.member_id, group_instance_id=None,
            retention_time_ms=-1, topics=[T(name="t", partitions=[P(partition_index=0, committed_offset=9,
                                                                    committed_leader_epoch=-1,
                                                                    committed_metadata=None)])]))
        FT = OffsetFetchRequest.OffsetFetchRequestTopic
        fv = min(version, apis.VERSIONS[9][1])
        fetched = await call(c1, OffsetFetchRequest[fv](group_id="g", topics=[
            FT(name="t", partition_indexes=[0, 1, 2])]))
        every = await call(c1, OffsetFetchRequest[fv](group_id="g", topics=None))
        unknown = await call(c1, OffsetFetchRequest[fv](group_id="never", topics=[
            FT(name="t", partition_indexes=[0])]))
        return commit, stale, fetched, every, unknown

    commit, stale, fetched, every, unknown = run(go())
    assert {(t.name, p.partition_index): p.error_code for t in commit.topics for p in t.partitions} == {
        ("t", 0): 0, ("t", 1): 0, ("nope", 0): Code.UNKNOWN_TOPIC_OR_PARTITION}
    assert stale.topics[0].partitions[0].error_code == Code.ILLEGAL_GENERATION
    got = {p.partition_index: (p.committed_offset, p.metadata, p.error_code) for p in fetched.topics[0].partitions}
    assert got == {0: (5, "m", 0), 1: (7, "", 0), 2: (-1, "", 0)}
    assert {(t.name, p.partition_index) for t in every.topics for p in t.partitions} == {("t", 0), ("t", 1)}
    assert [(p.committed_offset, p.error_code) for p in unknown.topics[0].partitions] == [(-1, 0)]


def test_simple_commit_without_a_group_member():
    backend, (c1,) = conns(1)
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    P = T.OffsetCommitRequestPartition
    r = run(call(c1, OffsetCommitRequest[7](group_id="solo", generation_id_or_member_epoch=-1, member_id="",
                                            group_instance_id=None, topics=[T(name="t", partitions=[
                                                P(partition_index=2, committed_offset=3, committed_leader_epoch=-1,
                                                  committed_metadata="")])])))
    assert r.topics[0].partitions[0].error_code == 0
    assert backend.offsets_committed[("solo", "t", 2)] == (3, "")


@pytest.mark.parametrize("version", sorted({0, 2, apis.VERSIONS[16][1]}))
def test_list_groups(version):
    backend, (c1, c2) = conns()
    run(form_group(c1, c2))
    r = run(call(c1, ListGroupsRequest[version]()))
    assert (r.error_code, [(g.group_id, g.protocol_type) for g in r.groups]) == (0, [("g", "consumer")])
    if version >= 4:  # states_filter: only the groups in one of those states
        state = r.groups[0].group_state
        assert [g.group_id for g in run(call(c1, ListGroupsRequest[version](states_filter=[state]))).groups] == ["g"]
        assert run(call(c1, ListGroupsRequest[version](states_filter=["Dead"]))).groups == []


@pytest.mark.parametrize("version", sorted({0, 4, apis.VERSIONS[15][1]}))
def test_describe_groups(version):
    backend, (c1, c2) = conns()
    leader, follower = run(form_group(c1, c2))
    r = run(call(c1, DescribeGroupsRequest[version](groups=["g", "never"], include_authorized_operations=False)))
    g, never = r.groups
    assert (g.error_code, g.group_state, g.protocol_type, g.protocol_data) == (0, "Stable", "consumer", "range")
    assert {m.member_id: m.member_assignment for m in g.members} == {
        leader.member_id: assignment([0, 1]), follower.member_id: assignment([2, 3])}
    assert all(m.member_metadata == b"meta" and m.client_id == "test" for m in g.members)
    if version >= 4:
        assert sorted(m.group_instance_id for m in g.members) == ["i1", "i2"]
    assert never.group_state == "Dead"
