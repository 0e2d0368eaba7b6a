"""GroupService: the coordinator's consumer-group calls, as plain logic behind one lock.

The coordinator actor holds one and forwards its group methods to it (same names,
same arguments, same answers). It serialises every call into the
:class:`GroupCoordinator` (which is not thread-safe) and adds what needs the
partitions: their log start/end offsets for a group's lag, and the offsets a reset
moves to. Those it asks through the :class:`PartitionOffsets` it is given (the
actor's asks the partition actors; tests give a fake), never holding the lock
while partitions answer.
"""

from __future__ import annotations

import threading
from typing import Protocol

from .group_coordinator import GroupCoordinator, lag_partitions, lag_rows, reset_targets
from ..messages import (GroupInfo, GroupListing, GroupMemberInfo, GroupPartitionInfo, HeartbeatStatus,
                        JoinResult, KafkaJoinResult, KafkaSyncResult, OffsetReset)
from ..errors import UnknownGroupError

__all__ = ["GroupService", "PartitionOffsets"]


class PartitionOffsets(Protocol):
    """What the group calls ask of the partitions."""

    def bounds(self, tps) -> dict:
        """(topic, partition) -> (log_start, log_end) of those that answered (a deleted topic's,
        a dead partition's are left out: their lag is unknown)."""

    def topic_bounds(self, topic: str) -> list[tuple[int, int]]:
        """(log_start, log_end) of every partition of ``topic``, or PartitionUnavailableError."""

    def topic_times(self, topic: str, timestamp_ms: int) -> list:
        """Per partition of ``topic``, the first (offset, timestamp) at or after ``timestamp_ms``
        (None if none), or PartitionUnavailableError."""


class GroupService:
    """Join/heartbeat/leave/commit/fetch, listing, describing with lag, deletion and resets."""

    def __init__(self, groups: GroupCoordinator, partitions: PartitionOffsets):
        self._groups = groups
        self._partitions = partitions
        self._lock = threading.Lock()

    def tick(self) -> None:
        """Evict silent members and end overdue rebalances (the actor calls this 10 times a second)."""
        with self._lock:
            self._groups.tick()

    def topics_changed(self, deleted: str | None = None) -> None:
        """Topics were created, grew or (``deleted``) went: rebalance the groups that read them."""
        with self._lock:
            if deleted is not None:
                self._groups.topic_deleted(deleted)
            else:
                self._groups.topics_changed()

    def join_group(self, group_id, member_id, instance_id, topics, session_timeout_ms, rebalance_timeout_ms,
                   owned, assignor) -> JoinResult:
        with self._lock:
            return self._groups.join(group_id, member_id, instance_id, topics, session_timeout_ms,
                                     rebalance_timeout_ms, owned, assignor)

    def heartbeat(self, group_id, member_id, generation) -> HeartbeatStatus:
        with self._lock:
            return self._groups.heartbeat(group_id, member_id, generation)

    def leave_group(self, group_id, member_id) -> None:
        with self._lock:
            self._groups.leave(group_id, member_id)

    def commit_offsets(self, group_id, member_id, generation, offsets) -> None:
        with self._lock:
            self._groups.commit(group_id, member_id, generation, offsets)

    # -- Kafka's client-assigned protocol (see coordinator/client_groups.py)

    def kafka_join_group(self, group_id, member_id, instance_id, protocol_type, protocols, session_timeout_ms,
                         rebalance_timeout_ms, client_id="", client_host="") -> KafkaJoinResult:
        with self._lock:
            return self._groups.kafka_join(group_id, member_id, instance_id, protocol_type, protocols,
                                           session_timeout_ms, rebalance_timeout_ms, client_id, client_host)

    def kafka_sync_group(self, group_id, member_id, generation, instance_id, assignments,
                         assigned=None) -> KafkaSyncResult:
        with self._lock:
            return self._groups.kafka_sync(group_id, member_id, generation, instance_id, assignments, assigned)

    def kafka_heartbeat(self, group_id, member_id, generation, instance_id=None) -> HeartbeatStatus:
        with self._lock:
            return self._groups.kafka_heartbeat(group_id, member_id, generation, instance_id)

    def kafka_leave_group(self, group_id, member_id, instance_id=None) -> None:
        with self._lock:
            self._groups.kafka_leave(group_id, member_id, instance_id)

    def kafka_commit_offsets(self, group_id, member_id, generation, instance_id, offsets) -> None:
        with self._lock:
            self._groups.kafka_commit(group_id, member_id, generation, instance_id, offsets)

    def fetch_all_offsets(self, group_id) -> tuple:
        """Every committed offset of the group: ``((topic, partition), offset, metadata)`` rows."""
        with self._lock:
            return self._groups.fetch_all(group_id)

    def fetch_offsets(self, group_id, tps, with_metadata: bool = False) -> list:
        with self._lock:
            return self._groups.fetch(group_id, tps, with_metadata)

    def list_groups(self) -> tuple[GroupListing, ...]:
        with self._lock:
            listed = self._groups.list()
        return tuple(GroupListing(g["group_id"], g["state"], g["members"], g["protocol_type"]) for g in listed)

    def describe_group(self, group_id) -> GroupInfo:
        """Members and, per partition the group reads or committed, its log start/end offsets and lag."""
        with self._lock:
            info = self._groups.describe(group_id)
        _, partitions = lag_partitions(info)
        rows = lag_rows(info, self._partitions.bounds(partitions))
        members = tuple(GroupMemberInfo(m["member_id"], m["instance_id"], tuple(m["topics"]),
                                        tuple(tuple(tp) for tp in m["assignment"]), m.get("client_id", ""),
                                        m.get("client_host", ""), m.get("metadata", b""),
                                        m.get("assignment_bytes", b"")) for m in info["members"])
        parts = tuple(GroupPartitionInfo(r["topic"], r["partition"], r["committed"], r["log_start_offset"],
                                         r["end_offset"], r["member"]) for r in rows)
        return GroupInfo(info["group_id"], info["state"], info["protocol"], info["generation"], info["leader"],
                         members, parts, info["protocol_type"])

    def delete_group(self, group_id) -> None:
        with self._lock:
            self._groups.delete(group_id)

    def reset_offsets(self, group_id, to, topics=None) -> OffsetReset:
        """Set an inactive group's offsets to "earliest", "latest", an offset, or {"timestamp_ms": t}."""
        with self._lock:
            topics = sorted(topics or {t for (t, _) in self._groups.store.offsets(group_id)})
        if not topics:
            raise UnknownGroupError(f"group {group_id!r} has no committed offsets; name the topics to reset")
        targets = {}
        for name in topics:
            bounds = self._partitions.topic_bounds(name)
            times = None
            if isinstance(to, dict) and "timestamp_ms" in to:
                times = self._partitions.topic_times(name, int(to["timestamp_ms"]))
            targets.update(reset_targets(to, name, bounds, times))
        with self._lock:
            self._groups.reset(group_id, targets)
        return OffsetReset(tuple(sorted(targets.items())))
