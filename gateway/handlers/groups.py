"""The group protocol (client-assigned): JoinGroup, SyncGroup, Heartbeat, LeaveGroup; committed
offsets (OffsetCommit, OffsetFetch); ListGroups, DescribeGroups.

JoinGroup and SyncGroup are held open: the handler asks the backend again every
``GatewayOptions.group_poll_ms`` while it answers ``pending`` (the rebalance is still
gathering members, or the leader has not sent the assignment), up to the rebalance
timeout, then answers REBALANCE_IN_PROGRESS so the client joins again. Only the
waiting connection waits.
"""

from __future__ import annotations

import asyncio
import logging
import time

from kafka.protocol.admin import DescribeGroupsResponse, ListGroupsResponse
from kafka.protocol.consumer import (ConsumerProtocolAssignment, JoinGroupResponse, LeaveGroupResponse,
                                     OffsetCommitResponse, OffsetFetchResponse)

from ... import errors as E
from .common import NO_OPERATIONS, Code, error_code, error_message, response

__all__ = ["join_group", "sync_group", "heartbeat", "leave_group", "offset_commit", "offset_fetch",
           "list_groups", "describe_groups", "decode_assignment"]

log = logging.getLogger("rayka.gateway")

_INVALID_GROUP_ID = 24
_DEFAULT_REBALANCE_MS = 60_000
_MAX_HOLD_MS = 300_000
_JOIN_MARGIN_MS = 1_000  # a held JoinGroup/SyncGroup never outlives this, whatever the client asked


def _rebalance_ms(conn, group_id: str) -> int:
    return conn.rebalance_ms.get(group_id, _DEFAULT_REBALANCE_MS)


async def join_group(conn, request):
    """Join (or rejoin) ``group_id``; held until the rebalance completes."""
    b = request.body
    v = request.api_version
    if not b.group_id:
        return response(request, throttle_time_ms=0, error_code=_INVALID_GROUP_ID, generation_id=-1,
                        protocol_name="", leader="", member_id=b.member_id or "", members=[])
    rebalance_ms = b.rebalance_timeout_ms if v >= 1 and b.rebalance_timeout_ms > 0 else b.session_timeout_ms
    if len(conn.rebalance_ms) >= 1024 and b.group_id not in conn.rebalance_ms:
        conn.rebalance_ms.clear()  # a client joining that many groups on one connection: forget the old
    conn.rebalance_ms[b.group_id] = rebalance_ms
    instance = b.group_instance_id if v >= 5 else None
    protocols = [(p.name, bytes(p.metadata)) for p in b.protocols]
    member = b.member_id or None
    # Held a little past the rebalance timeout: the coordinator completes the rebalance at that
    # timeout (dropping members that did not rejoin), and this join should get that answer.
    hold_ms = min(max(rebalance_ms, 0), _MAX_HOLD_MS)
    deadline = time.monotonic() + (hold_ms + min(hold_ms, _JOIN_MARGIN_MS)) / 1000
    while True:
        try:
            j = await conn.backend.join_group(b.group_id, member, instance, b.protocol_type, protocols,
                                              b.session_timeout_ms, rebalance_ms, conn.client_id or "",
                                              conn.client_host)
        except E.RaykaError as exc:
            return response(request, throttle_time_ms=0, error_code=error_code(exc, "in JoinGroup"),
                            generation_id=-1, protocol_name="", leader="", member_id=member or "", members=[])
        member = j.member_id
        if not j.pending:
            break
        if time.monotonic() >= deadline:
            return response(request, throttle_time_ms=0, error_code=Code.REBALANCE_IN_PROGRESS, generation_id=-1,
                            protocol_name="", leader="", member_id=member, members=[])
        await asyncio.sleep(conn.options.group_poll_ms / 1000)
    members = [JoinGroupResponse.JoinGroupResponseMember(member_id=m, group_instance_id=i, metadata=meta)
               for m, i, meta in j.members]
    return response(request, throttle_time_ms=0, error_code=0, generation_id=j.generation,
                    protocol_name=j.protocol_name or "", leader=j.leader or "", member_id=j.member_id,
                    members=members)


def decode_assignment(data: bytes) -> list[tuple[str, int]] | None:
    """The ``(topic, partition)`` pairs of a ConsumerProtocolAssignment, or None when the bytes are
    not one (another protocol type's assignment)."""
    if not data:
        return []
    try:
        a = ConsumerProtocolAssignment.decode(bytes(data))
        return [(t.topic, p) for t in a.assigned_partitions for p in t.partitions]
    except Exception:  # the codec raises struct.error, ValueError, UnicodeError...
        return None


async def sync_group(conn, request):
    """Hand out (leader) or collect (followers) the assignment; held until the leader sent it."""
    b = request.body
    v = request.api_version
    assignments = {a.member_id: bytes(a.assignment) for a in b.assignments}
    assigned = {}
    for m, data in assignments.items():
        parts = decode_assignment(data)
        if parts is not None:
            assigned[m] = parts
    instance = b.group_instance_id if v >= 3 else None
    deadline = time.monotonic() + min(_rebalance_ms(conn, b.group_id), _MAX_HOLD_MS) / 1000
    while True:
        try:
            s = await conn.backend.sync_group(b.group_id, b.member_id, b.generation_id, instance, assignments,
                                             assigned=assigned)
        except E.RaykaError as exc:
            return response(request, throttle_time_ms=0, error_code=error_code(exc, "in SyncGroup"), assignment=b"")
        if not s.pending:
            return response(request, throttle_time_ms=0, error_code=0, assignment=s.assignment,
                            protocol_type=b.protocol_type, protocol_name=s.protocol_name)
        if time.monotonic() >= deadline:
            return response(request, throttle_time_ms=0, error_code=Code.REBALANCE_IN_PROGRESS, assignment=b"")
        await asyncio.sleep(conn.options.group_poll_ms / 1000)


async def heartbeat(conn, request):
    """A member's liveness; REBALANCE_IN_PROGRESS tells it to rejoin."""
    b = request.body
    instance = b.group_instance_id if request.api_version >= 3 else None
    try:
        await conn.backend.heartbeat(b.group_id, b.member_id, b.generation_id, instance)
    except E.RaykaError as exc:
        return response(request, throttle_time_ms=0, error_code=error_code(exc, "in Heartbeat"))
    return response(request, throttle_time_ms=0, error_code=0)


async def leave_group(conn, request):
    """Members leave (v3+: several in one request, each answered)."""
    b = request.body
    if request.api_version < 3:
        try:
            await conn.backend.leave_group(b.group_id, b.member_id, None)
        except E.RaykaError as exc:
            return response(request, throttle_time_ms=0, error_code=error_code(exc, "in LeaveGroup"))
        return response(request, throttle_time_ms=0, error_code=0)
    answers = []
    for m in b.members:
        try:
            await conn.backend.leave_group(b.group_id, m.member_id, m.group_instance_id)
            code = 0
        except E.RaykaError as exc:
            code = error_code(exc, "in LeaveGroup")
        answers.append(LeaveGroupResponse.MemberResponse(member_id=m.member_id, group_instance_id=m.group_instance_id,
                                                         error_code=code))
    return response(request, throttle_time_ms=0, error_code=0, members=answers)


async def offset_commit(conn, request):
    """Commit offsets in one backend call; partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION."""
    b = request.body
    Topic = OffsetCommitResponse.OffsetCommitResponseTopic
    Part = Topic.OffsetCommitResponsePartition
    metas = dict(zip([t.name for t in b.topics],
                     await asyncio.gather(*(_topic_or_none(conn, t.name) for t in b.topics))))
    codes: dict[tuple[str, int], int] = {}
    offsets = []
    for t in b.topics:
        meta = metas[t.name]
        for p in t.partitions:
            if meta is None or not 0 <= p.partition_index < len(meta.partitions):
                codes[(t.name, p.partition_index)] = Code.UNKNOWN_TOPIC_OR_PARTITION
            else:
                offsets.append((t.name, p.partition_index, p.committed_offset, p.committed_metadata))
    if offsets:
        generation = b.generation_id_or_member_epoch
        member = b.member_id or None
        try:
            instance = b.group_instance_id if request.api_version >= 7 else None
            await conn.backend.commit_offsets(b.group_id, member, generation, offsets, instance)
            code = 0
        except E.RaykaError as exc:
            code = error_code(exc, "in OffsetCommit")
        for name, index, _, _ in offsets:
            codes[(name, index)] = code
    return response(request, throttle_time_ms=0, topics=[
        Topic(name=t.name, partitions=[
            Part(partition_index=p.partition_index, error_code=codes[(t.name, p.partition_index)])
            for p in t.partitions])
        for t in b.topics])


async def _topic_or_none(conn, name):
    try:
        return await conn.backend.topic(name)
    except E.RaykaError:
        return None


async def offset_fetch(conn, request):
    """Committed offsets (-1 where none); null topics (v2+): every partition the group committed."""
    b = request.body
    Topic = OffsetFetchResponse.OffsetFetchResponseTopic
    Part = Topic.OffsetFetchResponsePartition
    tps = None if b.topics is None else [(t.name, i) for t in b.topics for i in t.partition_indexes]
    code = 0
    try:
        found = await conn.backend.fetch_offsets(b.group_id, tps)
    except E.UnknownGroupError:
        found = {}  # Kafka answers a group it never saw with no offsets, not an error
    except E.RaykaError as exc:
        found, code = {}, error_code(exc, "in OffsetFetch")
    if tps is None:
        tps = sorted(found)
    by_topic: dict[str, list] = {}
    for name, index in tps:
        offset, meta = found.get((name, index), (-1, ""))
        by_topic.setdefault(name, []).append(Part(partition_index=index, committed_offset=offset,
                                                  committed_leader_epoch=-1, metadata=meta if meta is not None else "",
                                                  error_code=code))
    return response(request, throttle_time_ms=0, error_code=code,
                    topics=[Topic(name=n, partitions=parts) for n, parts in by_topic.items()])


async def list_groups(conn, request):
    """Every group the coordinator keeps."""
    try:
        groups = await conn.backend.list_groups()
    except E.RaykaError as exc:
        return response(request, throttle_time_ms=0, error_code=error_code(exc, "in ListGroups"), groups=[])
    # v4+: the states asked for (none: every group); each answer carries its state.
    wanted = {x.lower() for x in (request.body.states_filter or ())} if request.api_version >= 4 else set()
    return response(request, throttle_time_ms=0, error_code=0, groups=[
        ListGroupsResponse.ListedGroup(group_id=g, protocol_type=t, group_state=s) for g, t, s in groups
        if not wanted or s.lower() in wanted])


async def describe_groups(conn, request):
    """Each group's state, protocol and members; a group never seen is "Dead", as in Kafka."""
    Group = DescribeGroupsResponse.DescribedGroup
    Member = Group.DescribedGroupMember

    async def one(group_id):
        try:
            d = await conn.backend.describe_group(group_id)
        except E.UnknownGroupError:
            return Group(error_code=0, group_id=group_id, group_state="Dead", protocol_type="", protocol_data="",
                         members=[], authorized_operations=NO_OPERATIONS)
        except E.RaykaError as exc:
            return Group(error_code=error_code(exc, "in DescribeGroups"), error_message=error_message(exc),
                         group_id=group_id, group_state="", protocol_type="", protocol_data="", members=[],
                         authorized_operations=NO_OPERATIONS)
        members = [Member(member_id=m.member_id, group_instance_id=m.instance_id, client_id=m.client_id,
                          client_host=m.client_host, member_metadata=m.metadata, member_assignment=m.assignment)
                   for m in d.members]
        return Group(error_code=0, group_id=d.group_id, group_state=d.state, protocol_type=d.protocol_type,
                     protocol_data=d.protocol, members=members, authorized_operations=NO_OPERATIONS)

    groups = await asyncio.gather(*(one(g) for g in request.body.groups))
    return response(request, throttle_time_ms=0, groups=list(groups))
