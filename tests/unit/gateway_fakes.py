"""An in-memory Backend for the gateway's protocol tests (no Ray).

Topics hold partitions as lists of stored Arrow batches (rayka's stored layout); fetch answers
them as the partition actor does, as Arrow IPC messages of the partition codec. Groups run a
small client-assigned state machine (join -> all known members rejoined -> leader syncs ->
stable). ``calls`` records every call, for tests that check what reached the backend.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid

import pyarrow as pa

from rayka import errors as E
from rayka.gateway.backend import Broker, GroupDescription, GroupJoin, GroupMember, GroupSync, PartitionMeta, TopicMeta
from rayka.messages import AppendResult, FetchResponse, LogBounds, TimeLookup
from rayka.partitions import codec
from rayka.partitions.records import log_schema

_SCHEMA = log_schema()
#: A value the fake's append refuses (with everything appended with it).
POISON = b"\x00poison"
_SCHEMA_SIZE = len(codec.schema_message(_SCHEMA))


class FakePartition:
    def __init__(self):
        self.batches: list[pa.RecordBatch] = []
        self.end = 0
        self.start = 0
        self.sequences: dict[str, tuple[int, AppendResult]] = {}  # producer -> (next sequence, last result)
        self.changed = asyncio.Event()


class FakeGroup:
    def __init__(self, group_id):
        self.group_id = group_id
        self.state = "Empty"
        self.generation = 0
        self.members: dict[str, dict] = {}
        self.joined: set[str] = set()
        self.answered: set[str] = set()
        self.leader: str | None = None
        self.protocol: str | None = None
        self.protocol_type = ""
        self.assignments: dict[str, bytes] = {}
        self.assigned: dict | None = None
        self.started = 0.0


class FakeBackend:
    """Implements rayka.gateway.backend.Backend in memory."""

    def __init__(self, host="127.0.0.1", port=9092, node_id=0):
        self.broker_list = [Broker(node_id, host, port)]
        self.topics: dict[str, list[FakePartition]] = {}
        self.meta_extra: dict[str, dict] = {}
        self.groups: dict[str, FakeGroup] = {}
        self.offsets_committed: dict[tuple[str, str, int], tuple[int, str | None]] = {}
        self.calls: list[tuple] = []
        self.leader_epoch = 0  # every partition's, as Metadata tells it
        self._pids = itertools.count(1000)
        self.clock = time.monotonic

    # -- cluster and topics
    async def brokers(self):
        return list(self.broker_list)

    def controller_id(self):
        return self.broker_list[0].node_id

    def cluster_id(self):
        return "rayka-test"

    async def list_topics(self):
        return sorted(self.topics)

    async def topic(self, name):
        parts = self.topics.get(name)
        if parts is None:
            return None
        node = self.broker_list[0].node_id
        extra = self.meta_extra.get(name, {})
        parts = tuple(PartitionMeta(i, node, 0, (node,), (node,)) for i in range(len(parts)))
        return TopicMeta(name, b"\1" * 16, parts,
                         typed=extra.get("typed", False), config=extra.get("config", {}))

    async def create_topic(self, name, partitions, replication_factor, config):
        self.calls.append(("create_topic", name, partitions, replication_factor, config))
        if not name or len(name) > 249 or name in (".", "..") or any(
                not (c.isalnum() or c in "._-") for c in name):
            raise E.InvalidTopicError(f"invalid topic name {name!r}")
        if name in self.topics:
            raise E.TopicExistsError(f"topic {name!r} already exists")
        if replication_factor > len(self.broker_list):
            raise E.InvalidReplicationFactorError(
                f"replication factor {replication_factor} > {len(self.broker_list)} brokers")
        self.topics[name] = [FakePartition() for _ in range(partitions)]
        self.meta_extra[name] = {"config": dict(config)}

    async def delete_topic(self, name):
        if name not in self.topics:
            raise E.UnknownTopicError(f"topic {name!r} does not exist")
        del self.topics[name]

    async def create_partitions(self, name, total):
        parts = self.topics.get(name)
        if parts is None:
            raise E.UnknownTopicError(f"topic {name!r} does not exist")
        parts.extend(FakePartition() for _ in range(total - len(parts)))

    async def describe_topic_config(self, name):
        if name not in self.topics:
            raise E.UnknownTopicError(f"topic {name!r} does not exist")
        return {"retention.ms": "604800000", **self.meta_extra.get(name, {}).get("config", {})}

    def _part(self, topic, partition) -> FakePartition:
        parts = self.topics.get(topic)
        if parts is None:
            raise E.UnknownTopicError(f"topic {topic!r} does not exist")
        if not 0 <= partition < len(parts):
            raise E.UnknownPartitionError(f"{topic} has no partition {partition}")
        return parts[partition]

    # -- records
    async def append(self, topic, partition, batch, producer_id, sequence, acks, leader_epoch=-1):
        self.calls.append(("append", topic, partition, batch.num_rows, producer_id, sequence, acks))
        p = self._part(topic, partition)
        if POISON in batch.column("value").to_pylist():  # a record the log refuses, whole append
            raise E.InvalidRecordError("a poisoned record: nothing of this append is written")
        if producer_id is not None:
            nxt, last = p.sequences.get(producer_id, (0, None))
            if last is not None and sequence == nxt - last.count:
                return AppendResult(last.base_offset, last.count, last.log_append_time_ms, p.start, duplicate=True)
            if sequence != nxt and not (last is None and sequence >= 0):
                raise E.OutOfOrderSequenceError(f"{producer_id}: sequence {sequence}, expected {nxt}")
        n = batch.num_rows
        stored = pa.RecordBatch.from_arrays([pa.array(range(p.end, p.end + n), pa.int64()), *batch.columns],
                                            schema=_SCHEMA)
        p.batches.append(stored)
        res = AppendResult(p.end, n, int(time.time() * 1000), p.start)
        p.end += n
        if producer_id is not None:
            p.sequences[producer_id] = (sequence + n, res)
        p.changed.set()
        p.changed = asyncio.Event()
        return res

    async def fetch(self, topic, partition, offset, max_bytes, max_wait_ms, leader_epoch=-1):
        self.calls.append(("fetch", topic, partition, offset, max_wait_ms))
        p = self._part(topic, partition)
        if 0 <= leader_epoch < self.leader_epoch:
            raise E.FencedLeaderEpochError(f"leader epoch {leader_epoch} is older than {self.leader_epoch}")
        if not p.start <= offset <= p.end:
            raise E.OffsetOutOfRangeError(f"offset {offset} outside [{p.start}, {p.end}]",
                                          log_start_offset=p.start, log_end_offset=p.end)
        if offset == p.end and max_wait_ms > 0:
            try:
                await asyncio.wait_for(p.changed.wait(), max_wait_ms / 1000)
            except asyncio.TimeoutError:
                pass
        parts, size, nxt = [], 0, offset
        for b in p.batches:
            first = b.column(0)[0].as_py()
            if first + b.num_rows <= offset:
                continue
            enc = codec.encode_batch(b, schema_size=_SCHEMA_SIZE, max_timestamp_ms=0, append_ms=0)
            if parts and size + enc.size > max_bytes:
                break
            parts.append(enc.message.to_pybytes())
            size += enc.size
            nxt = first + b.num_rows
        return FetchResponse(offset, b"".join(parts), nxt - offset, nxt, p.start, p.end)

    async def offsets(self, topic, partition):
        p = self._part(topic, partition)
        return LogBounds(p.start, p.end)

    async def offset_for_time(self, topic, partition, timestamp_ms):
        p = self._part(topic, partition)
        for b in p.batches:
            for off, ts in zip(b.column(0).to_pylist(), b.column(1).to_pylist()):
                if ts >= timestamp_ms:
                    return TimeLookup(off, ts)
        return None

    async def init_producer_id(self):
        return next(self._pids), 0

    # -- groups
    def _group(self, group_id) -> FakeGroup:
        g = self.groups.get(group_id)
        if g is None:
            raise E.UnknownGroupError(f"group {group_id!r} does not exist")
        return g

    def _complete(self, g: FakeGroup):
        for m in [m for m in g.members if m not in g.joined]:
            del g.members[m]  # did not rejoin in time
        g.generation += 1
        g.leader = sorted(g.joined)[0]
        names = [n for n, _ in g.members[g.leader]["protocols"]]
        g.protocol = next(n for n in names if all(n in dict(m["protocols"]) for m in g.members.values()))
        g.state = "CompletingRebalance"
        g.assignments = {}
        g.answered = set()

    def _answer(self, g: FakeGroup, member):
        g.answered.add(member)
        members = ()
        if member == g.leader:
            members = tuple((m, d["instance"], dict(d["protocols"])[g.protocol]) for m, d in sorted(g.members.items()))
        return GroupJoin(False, member, g.generation, g.protocol, g.leader, members)

    async def join_group(self, group_id, member_id, instance_id, protocol_type, protocols, session_timeout_ms,
                         rebalance_timeout_ms, client_id, client_host):
        self.calls.append(("join_group", group_id, member_id, instance_id))
        g = self.groups.setdefault(group_id, FakeGroup(group_id))
        if member_id is None:
            member_id = f"{client_id}-{uuid.uuid4().hex[:8]}"
        elif member_id not in g.members:
            raise E.UnknownMemberError(f"member {member_id!r} is not in group {group_id!r}")
        if g.state in ("CompletingRebalance", "Stable") and member_id in g.members and member_id not in g.answered:
            return self._answer(g, member_id)  # a held join asking again after the rebalance completed
        g.protocol_type = protocol_type
        g.members[member_id] = {"instance": instance_id, "protocols": protocols, "client_id": client_id,
                                "host": client_host, "rebalance_ms": rebalance_timeout_ms}
        if g.state != "PreparingRebalance":
            g.state, g.joined, g.started = "PreparingRebalance", set(), self.clock()
        g.joined.add(member_id)
        wait_s = min(d["rebalance_ms"] for d in g.members.values()) / 1000
        if g.joined >= set(g.members) or self.clock() - g.started > wait_s:
            self._complete(g)
            return self._answer(g, member_id)
        return GroupJoin(True, member_id)

    def _check(self, g, member_id, generation):
        if member_id not in g.members:
            raise E.UnknownMemberError(f"member {member_id!r} is not in group {g.group_id!r}")
        if g.state == "PreparingRebalance":
            raise E.RebalanceInProgressError(f"group {g.group_id!r} is rebalancing")
        if generation != g.generation:
            raise E.IllegalGenerationError(f"generation {generation} is not {g.generation}")

    async def sync_group(self, group_id, member_id, generation, instance_id, assignments, assigned=None):
        self.calls.append(("sync_group", group_id, member_id, generation, dict(assignments), assigned))
        g = self._group(group_id)
        self._check(g, member_id, generation)
        if member_id == g.leader and g.state == "CompletingRebalance":
            g.assignments = dict(assignments)
            g.assigned = assigned
            g.state = "Stable"
        if g.state != "Stable":
            return GroupSync(True)
        return GroupSync(False, g.assignments.get(member_id, b""), g.protocol)

    async def heartbeat(self, group_id, member_id, generation, instance_id):
        g = self._group(group_id)
        self._check(g, member_id, generation)

    async def leave_group(self, group_id, member_id, instance_id):
        self.calls.append(("leave_group", group_id, member_id, instance_id))
        g = self._group(group_id)
        if member_id not in g.members:
            raise E.UnknownMemberError(f"member {member_id!r} is not in group {group_id!r}")
        del g.members[member_id]
        if g.members:
            g.state, g.joined, g.started = "PreparingRebalance", set(), self.clock()
        else:
            g.state, g.generation = "Empty", g.generation + 1

    async def commit_offsets(self, group_id, member_id, generation, offsets, instance_id=None):
        self.calls.append(("commit_offsets", group_id, member_id, generation, list(offsets)))
        g = self.groups.get(group_id)
        if member_id is not None or generation >= 0:
            if g is None:
                raise E.UnknownMemberError(f"member {member_id!r} is not in group {group_id!r}")
            self._check(g, member_id, generation)
        elif g is None:
            self.groups[group_id] = FakeGroup(group_id)
        for topic, partition, offset, meta in offsets:
            self.offsets_committed[(group_id, topic, partition)] = (offset, meta)

    async def fetch_offsets(self, group_id, tps):
        if group_id not in self.groups:
            raise E.UnknownGroupError(f"group {group_id!r} does not exist")
        mine = {(t, p): v for (g, t, p), v in self.offsets_committed.items() if g == group_id}
        return mine if tps is None else {tp: mine[tp] for tp in tps if tp in mine}

    async def list_groups(self):
        return [(g.group_id, g.protocol_type, g.state) for g in self.groups.values()]

    async def describe_group(self, group_id):
        g = self._group(group_id)
        members = tuple(GroupMember(m, d["instance"], d["client_id"], d["host"],
                                    dict(d["protocols"]).get(g.protocol, b""), g.assignments.get(m, b""))
                        for m, d in sorted(g.members.items()))
        return GroupDescription(group_id, g.state, g.protocol_type, g.protocol or "", members)
