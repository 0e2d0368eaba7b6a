"""Group membership snapshots: what a restarted coordinator needs to keep a group's members.

Kafka keeps each group's members and assignment in ``__consumer_offsets``, so a
coordinator that fails over picks up where the old one stopped: members keep
their ids and generation, and heartbeats and commits go on with no rebalance.
rayka does the same: after every call that changes a group, its snapshot
(:class:`GroupSnapshot`, stored as a JSON-able dict) goes to the offset store, and a
coordinator that Ray restarted builds the group again with ``Group.from_snapshot``.
Format (version 1)::

    {"v": 1, "gen": 7, "state": "Stable", "protocol": "cooperative-sticky",
     "members": [{"id": "consumer-3f2a...", "inst": null, "topics": ["clicks"],
                  "st": 10000, "rt": 300000,
                  "a": [["clicks", 0]], "ag": 7, "d": [["clicks", 0]], "dg": 7, "r": []}]}

``a``/``ag`` is the member's assignment and its generation, ``d``/``dg`` the one it
was last told, ``r`` what it is handing over. A restored member's session starts at the restore, so one that
died during the restart is evicted a session timeout later. What a snapshot
cannot hold (who has joined a rebalance in progress) is rebuilt by starting the
rebalance again.

A Kafka client-assigned group (``client_groups.KafkaGroup``) is kept in a format of its
own, marked by its version string, so that code that only knows version 1 logs "not
understood" and lets the members rejoin instead of misreading it::

    {"v": "kafka-1", "gen": 4, "state": "Stable", "ptype": "consumer", "protocol": "range",
     "leader": "rdkafka-9c1e...",
     "members": [{"id": "rdkafka-9c1e...", "inst": null, "cid": "rdkafka", "host": "/127.0.0.1",
                  "st": 45000, "rt": 300000, "protos": [["range", "<base64>"]],
                  "asg": "<base64>", "parts": [["clicks", 0]]}],
     "fenced": [["rdkafka-77ab...", "host-1"]]}

``protos`` is what the member joined with (protocol name, metadata), ``asg`` the
assignment bytes the leader gave it in generation ``gen`` and ``parts`` the same,
decoded (what describe_group shows and who owns what); ``fenced`` the replaced static
members' old ids with their instance ids (still fenced after a restart).
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

from .group_state import GroupState

__all__ = ["GroupSnapshot", "MemberSnapshot", "VERSION", "KafkaGroupSnapshot", "KafkaMemberSnapshot",
           "KAFKA_VERSION"]

log = logging.getLogger(__name__)

VERSION = 1
KAFKA_VERSION = "kafka-1"

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class MemberSnapshot:
    """One member as a snapshot keeps it (no clock values: they mean nothing after a restart)."""

    member_id: str
    instance_id: str | None
    topics: tuple[str, ...]  # sorted
    session_timeout_ms: int
    rebalance_timeout_ms: int
    assignment: tuple[TopicPartition, ...]
    assigned_generation: int
    delivered_assignment: tuple[TopicPartition, ...]
    delivered_generation: int
    revoking: tuple[TopicPartition, ...]

    def to_dict(self) -> dict:
        return {"id": self.member_id, "inst": self.instance_id, "topics": list(self.topics),
                "st": self.session_timeout_ms, "rt": self.rebalance_timeout_ms,
                "a": [list(tp) for tp in self.assignment], "ag": self.assigned_generation,
                "d": [list(tp) for tp in self.delivered_assignment], "dg": self.delivered_generation,
                "r": [list(tp) for tp in self.revoking]}

    @classmethod
    def from_dict(cls, row: dict) -> MemberSnapshot:
        return cls(member_id=row["id"], instance_id=row["inst"], topics=tuple(sorted(row["topics"])),
                   session_timeout_ms=int(row["st"]), rebalance_timeout_ms=int(row["rt"]),
                   assignment=_tps(row["a"]), assigned_generation=int(row["ag"]),
                   delivered_assignment=_tps(row["d"]), delivered_generation=int(row["dg"]),
                   revoking=_tps(row["r"]))


@dataclass(frozen=True)
class GroupSnapshot:
    """A group's membership: what ``Group.to_snapshot`` gives and ``Group.from_snapshot`` takes back."""

    generation: int
    state: GroupState
    protocol: str | None
    members: tuple[MemberSnapshot, ...]

    def to_dict(self) -> dict:
        """The JSON-able dict kept in the offset store (the format above)."""
        return {"v": VERSION, "gen": self.generation, "state": self.state.value, "protocol": self.protocol,
                "members": [m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, snap: dict, group_id: str = "?") -> GroupSnapshot | None:
        """The snapshot of a stored dict; None (logged) for a version this code does not read."""
        if snap.get("v") != VERSION:
            log.warning("group %s: snapshot version %r not understood; members must rejoin", group_id,
                        snap.get("v"))
            return None
        return cls(generation=int(snap["gen"]), state=GroupState(snap["state"]), protocol=snap.get("protocol"),
                   members=tuple(MemberSnapshot.from_dict(row) for row in snap["members"]))

    def unsettled(self, partitions: dict[str, int], generation: int) -> str | None:
        """Why a group restored from this snapshot needs a rebalance (``partitions``: topic ->
        partition count now, ``generation``: the restored group's), or None if it is settled."""
        if self.state is not GroupState.STABLE:
            return f"it was {self.state.value}"
        wanted = {(t, p) for m in self.members for t in m.topics for p in range(partitions.get(t, 0))}
        assigned = [tp for m in self.members for tp in m.assignment]
        if set(assigned) != wanted or len(assigned) != len(wanted):
            return "its assignment does not cover its partitions"
        if any(m.assigned_generation != generation for m in self.members):
            return "a member has no assignment in the current generation"
        return None


@dataclass(frozen=True)
class KafkaMemberSnapshot:
    """One member of a Kafka client-assigned group as a snapshot keeps it (no clock values)."""

    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: tuple[tuple[str, bytes], ...]
    assignment: bytes
    assigned: tuple[TopicPartition, ...]

    def to_dict(self) -> dict:
        return {"id": self.member_id, "inst": self.instance_id, "cid": self.client_id, "host": self.client_host,
                "st": self.session_timeout_ms, "rt": self.rebalance_timeout_ms,
                "protos": [[name, _b64(meta)] for name, meta in self.protocols],
                "asg": _b64(self.assignment), "parts": [list(tp) for tp in self.assigned]}

    @classmethod
    def from_dict(cls, row: dict) -> KafkaMemberSnapshot:
        return cls(member_id=row["id"], instance_id=row["inst"], client_id=row["cid"], client_host=row["host"],
                   session_timeout_ms=int(row["st"]), rebalance_timeout_ms=int(row["rt"]),
                   protocols=tuple((name, base64.b64decode(meta)) for name, meta in row["protos"]),
                   assignment=base64.b64decode(row["asg"]), assigned=_tps(row["parts"]))


@dataclass(frozen=True)
class KafkaGroupSnapshot:
    """A Kafka client-assigned group: ``KafkaGroup.to_snapshot`` gives it, ``from_snapshot`` takes it."""

    generation: int
    state: GroupState
    protocol_type: str
    protocol: str | None
    leader: str | None
    members: tuple[KafkaMemberSnapshot, ...]
    fenced: tuple[tuple[str, str], ...] = ()  # (old member id, instance id), oldest first

    @staticmethod
    def is_one(stored: dict) -> bool:
        """Whether a stored snapshot dict is of a Kafka group (its version says so)."""
        return stored.get("v") == KAFKA_VERSION

    def to_dict(self) -> dict:
        """The JSON-able dict kept in the offset store (the format above)."""
        return {"v": KAFKA_VERSION, "gen": self.generation, "state": self.state.value, "ptype": self.protocol_type,
                "protocol": self.protocol, "leader": self.leader, "members": [m.to_dict() for m in self.members],
                "fenced": [list(pair) for pair in self.fenced]}

    @classmethod
    def from_dict(cls, snap: dict) -> KafkaGroupSnapshot:
        return cls(generation=int(snap["gen"]), state=GroupState(snap["state"]), protocol_type=snap["ptype"],
                   protocol=snap.get("protocol"), leader=snap.get("leader"),
                   members=tuple(KafkaMemberSnapshot.from_dict(row) for row in snap["members"]),
                   fenced=tuple((old, inst) for old, inst in snap.get("fenced", ())))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _tps(rows) -> tuple[TopicPartition, ...]:
    return tuple(tuple(tp) for tp in rows)
