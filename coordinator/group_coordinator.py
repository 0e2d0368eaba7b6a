"""GroupCoordinator: every consumer group of a cluster, with their committed offsets.

Plain logic over :class:`Group` (membership) and :class:`OffsetStore` (durable
commits); :class:`rayka.coordinator.group_service.GroupService` calls it under a
lock and adds what needs the partitions (end offsets for lag, time look-ups for resets). Group generations are stored
with the offsets, so a restarted coordinator never reuses a generation number
and a zombie from before the restart stays fenced. So are the groups' members
(``group_snapshot``): a coordinator that Ray restarted (``restore_members``)
takes them back (``Group.from_snapshot``), and they go on heartbeating and committing with no rebalance,
as after a Kafka coordinator fail-over. A coordinator of a new session does
not: the members of a previous session are gone with it.

A group is either rayka's own (:class:`Group`, the coordinator assigns) or a Kafka
client-assigned one (:class:`KafkaGroup`, the ``kafka_*`` calls); an empty group turns
into the kind its next member asks for (keeping its generation and committed offsets),
a group with members refuses the other kind (InconsistentGroupProtocolError). Both
kinds share the offset store, listing, describing with lag, deletion and resets.
"""

from __future__ import annotations

from typing import Callable

from ..clock import Clock
from .client_groups import KafkaGroup
from .group_snapshot import GroupSnapshot, KafkaGroupSnapshot
from .groups import Group, GroupState
from .offset_store import OffsetStore
from ..errors import (ConfigError, GroupNotEmptyError, InconsistentGroupProtocolError, UnknownGroupError,
                      UnknownMemberError, UnknownTopicError)
from ..messages import HeartbeatStatus, JoinResult, KafkaJoinResult, KafkaSyncResult

__all__ = ["GroupCoordinator", "reset_targets", "lag_partitions", "lag_rows"]


def reset_targets(to, topic: str, bounds: list[tuple[int, int]], times: list | None = None) -> dict:
    """New offsets of one topic's partitions for ``reset_offsets``.

    ``bounds`` is (log_start, log_end) per partition; ``to`` is "earliest", "latest",
    an offset (clamped into each partition's range, as Kafka's tool does) or
    ``{"timestamp_ms": t}`` with ``times`` the (offset, timestamp) found per partition
    (None: nothing that late, so the end).
    """
    out = {}
    for p, (start, end) in enumerate(bounds):
        if to == "earliest":
            out[(topic, p)] = start
        elif to == "latest":
            out[(topic, p)] = end
        elif isinstance(to, int) and not isinstance(to, bool):
            out[(topic, p)] = min(max(to, start), end)
        elif isinstance(to, dict) and "timestamp_ms" in to and times is not None:
            out[(topic, p)] = times[p][0] if times[p] is not None else end
        else:
            raise ConfigError(f"reset_offsets to= must be 'earliest', 'latest', an offset or "
                              f"{{'timestamp_ms': ...}}, got {to!r}")
    return out


def _commit_row(row) -> bool:
    return (isinstance(row, (list, tuple)) and len(row) in (3, 4) and isinstance(row[0], str)
            and isinstance(row[1], int) and not isinstance(row[1], bool) and row[1] >= 0)


def lag_partitions(info: dict) -> tuple[dict, set]:
    """(owner of each assigned partition, every partition a group reads or committed) of a
    ``describe()`` answer: the rows ``lag_rows`` gives, and whose bounds it needs."""
    owners = {tuple(tp): m["member_id"] for m in info["members"] for tp in m["assignment"]}
    return owners, set(owners) | set(info["committed"])


def lag_rows(info: dict, bounds: dict) -> list[dict]:
    """Per partition a group reads or committed: committed offset, log start and end offsets
    (``bounds``: (topic, partition) -> (log_start, log_end); missing for a deleted topic) and owner."""
    owners, partitions = lag_partitions(info)
    committed = info["committed"]
    rows = []
    for t, p in sorted(partitions):
        start, end = bounds.get((t, p), (None, None))
        rows.append({"topic": t, "partition": p, "committed": committed.get((t, p)), "log_start_offset": start,
                     "end_offset": end, "member": owners.get((t, p))})
    return rows


class GroupCoordinator:
    """All groups: join/heartbeat/leave/commit/fetch, listing, deletion and resets."""

    def __init__(self, store: OffsetStore, clock: Clock, partitions: Callable[[], dict[str, int]],
                 *, restore_members: bool = False, kafka_initial_delay_ms: int = 0):
        self.store = store
        # Kafka's group.initial.rebalance.delay.ms: how long a Kafka group starting from Empty
        # waits for more members before its first generation (fewer rebalances as a fleet starts).
        self.kafka_initial_delay_ms = kafka_initial_delay_ms
        self.clock = clock
        self._partitions = partitions  # topic -> partition count, now
        self.groups: dict[str, Group | KafkaGroup] = {}
        for group_id in self.store.groups():
            stored = self.store.group_state(group_id)
            if stored and stored.get("members"):
                restored = self._restore(group_id, stored) if restore_members else None
                if restored is not None:
                    self.groups[group_id] = restored
                # Else the members are of a session that is gone: record that the group is empty,
                # so that a later restart of this coordinator does not bring them back.
                self._persist(self._group(group_id))

    def _restore(self, group_id: str, stored: dict) -> Group | KafkaGroup | None:
        generation = self.store.generation(group_id)
        if KafkaGroupSnapshot.is_one(stored):
            return KafkaGroup.from_snapshot(group_id, self.clock, KafkaGroupSnapshot.from_dict(stored),
                                            generation=generation, partitions=self._partitions(),
                                            initial_delay_ms=self.kafka_initial_delay_ms)
        snap = GroupSnapshot.from_dict(stored, group_id)
        if snap is None:
            return None
        return Group.from_snapshot(group_id, self.clock, snap, generation=generation, partitions=self._partitions())

    def _group(self, group_id: str, create: bool = True) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            if not create:
                raise UnknownGroupError(f"group {group_id!r} does not exist")
            if not isinstance(group_id, str) or not group_id:
                raise ConfigError(f"group_id must be a non-empty str, got {group_id!r}")
            group = self.groups[group_id] = Group(group_id, self.clock, generation=self.store.generation(group_id))
            group.partitions = self._partitions()
        return group

    def _of_kind(self, group_id: str, kind: type) -> Group | KafkaGroup:
        """The group to join as ``kind`` (Group or KafkaGroup): an empty one of the other kind is
        replaced (same generation); one with members refuses (InconsistentGroupProtocolError)."""
        group = self._group(group_id)
        if isinstance(group, kind):
            return group
        if group.members:
            theirs, mine = (("Kafka clients'", "rayka's own") if isinstance(group, KafkaGroup)
                            else ("rayka's own", "Kafka clients'"))
            raise InconsistentGroupProtocolError(
                f"group {group_id!r} has {len(group.members)} member(s) using {theirs} group protocol; this member "
                f"uses {mine}. rayka Consumers and Kafka clients cannot share a group: use another group id, "
                "or stop the group's members first")
        generation = max(group.generation, self.store.generation(group_id))
        fresh = (KafkaGroup(group_id, self.clock, generation=generation, initial_delay_ms=self.kafka_initial_delay_ms)
                 if kind is KafkaGroup else Group(group_id, self.clock, generation=generation))
        fresh.partitions = self._partitions()
        self.groups[group_id] = fresh
        return fresh

    def _persist(self, group: Group | KafkaGroup) -> None:
        """Store the group's generation and members (each write only if it changed)."""
        self.store.set_generation(group.group_id, group.generation)
        self.store.set_group_state(group.group_id, group.to_snapshot().to_dict())

    def join(self, group_id: str, member_id: str | None, instance_id: str | None, topics: list[str],
             session_timeout_ms: int, rebalance_timeout_ms: int, owned, assignor: str) -> JoinResult:
        group = self._of_kind(group_id, Group)
        # Through on_metadata_change, not a plain assignment: a join can land between a topic
        # gaining partitions and topics_changed(), which would then find nothing new.
        group.on_metadata_change(self._partitions())
        unknown = [t for t in topics if t not in group.partitions]
        if unknown:
            raise UnknownTopicError(f"group {group_id}: topics {unknown} do not exist")
        answer = group.join(member_id, instance_id=instance_id, topics=topics,
                            session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms,
                            owned=owned, assignor=assignor)
        self._persist(group)
        return answer

    def heartbeat(self, group_id: str, member_id: str, generation: int) -> HeartbeatStatus:
        return self._group(group_id).heartbeat(member_id, generation)

    def leave(self, group_id: str, member_id: str) -> None:
        group = self._group(group_id)
        group.leave(member_id)
        self._persist(group)

    def commit(self, group_id: str, member_id: str | None, generation: int, offsets: list) -> None:
        """Validate (zombie fencing) and durably store ``[(topic, partition, offset[, metadata]), ...]``."""
        self._group(group_id).validate_commit(member_id, generation, [(row[0], row[1]) for row in offsets])
        self._store_commit(group_id, offsets)

    def _store_commit(self, group_id: str, offsets: list) -> None:
        metadata = {}
        for row in offsets:
            t, p, o = row[:3]
            if not isinstance(o, int) or o < 0:
                raise ConfigError(f"offset for {t}-{p} must be a non-negative int, got {o!r}")
            m = row[3] if len(row) > 3 else ""
            if not isinstance(m, str):
                raise ConfigError(f"metadata for {t}-{p} must be a str, got {m!r}")
            metadata[(t, p)] = m
        self.store.commit(group_id, {(row[0], row[1]): row[2] for row in offsets}, now_ms=self.clock(),
                          metadata=metadata)

    # -- Kafka's client-assigned protocol (KafkaGroup) ----------------------------------------

    def kafka_join(self, group_id: str, member_id: str | None, instance_id: str | None, protocol_type: str,
                   protocols, session_timeout_ms: int, rebalance_timeout_ms: int, client_id: str = "",
                   client_host: str = "") -> KafkaJoinResult:
        group = self._of_kind(group_id, KafkaGroup)
        answer = group.join(member_id, instance_id=instance_id, protocol_type=protocol_type, protocols=protocols,
                            session_timeout_ms=session_timeout_ms, rebalance_timeout_ms=rebalance_timeout_ms,
                            client_id=client_id, client_host=client_host)
        self._persist(group)
        return answer

    def _kafka(self, group_id: str, member_id) -> KafkaGroup:
        group = self.groups.get(group_id)  # not created: a stray call must not make a group appear
        if not isinstance(group, KafkaGroup):
            raise UnknownMemberError(f"member {member_id} is not in group {group_id!r} (it has no Kafka client "
                                     "members); join again without a member id")
        return group

    def kafka_sync(self, group_id: str, member_id: str, generation: int, instance_id: str | None,
                   assignments: dict | None, assigned: dict | None) -> KafkaSyncResult:
        group = self._kafka(group_id, member_id)
        answer = group.sync(member_id, generation, instance_id=instance_id, assignments=assignments,
                            assigned=assigned)
        self._persist(group)
        return answer

    def kafka_heartbeat(self, group_id: str, member_id: str, generation: int,
                        instance_id: str | None) -> HeartbeatStatus:
        return self._kafka(group_id, member_id).heartbeat(member_id, generation, instance_id)

    def kafka_leave(self, group_id: str, member_id: str | None, instance_id: str | None) -> None:
        group = self._kafka(group_id, member_id)
        group.leave(member_id, instance_id)
        self._persist(group)

    def kafka_commit(self, group_id: str, member_id: str | None, generation: int, instance_id: str | None,
                     offsets: list) -> None:
        """A Kafka client's commit: ``[(topic, partition, offset, metadata or None)]``, checked as
        Kafka does (member, instance id, generation), into the same durable store."""
        if not isinstance(offsets, (list, tuple)) or not all(_commit_row(row) for row in offsets):
            raise ConfigError(f"group {group_id}: offsets must be (topic, partition, offset, metadata or None) "
                              f"rows, got {offsets!r:.200}")
        group = self._group(group_id)
        tps = [(row[0], row[1]) for row in offsets]
        if isinstance(group, KafkaGroup):
            group.validate_commit(member_id or None, generation, tps, instance_id)
        else:  # an offsets-only (assign()) Kafka client, or a rayka group: its own rules
            group.validate_commit(member_id or None, generation, tps)
        # Kafka's metadata is nullable; the store keeps "" for none.
        self._store_commit(group_id, [(row[0], row[1], row[2], row[3] if len(row) > 3 and row[3] is not None
                                       else "") for row in offsets])

    def fetch_all(self, group_id: str) -> tuple:
        """Every committed offset of the group: ``((topic, partition), offset, metadata)`` rows, sorted."""
        return tuple((tp, c.offset, c.metadata) for tp, c in sorted(self.store.offsets(group_id).items()))

    def fetch(self, group_id: str, tps: list, with_metadata: bool = False) -> list:
        """Committed offsets for ``[(topic, partition)]`` (None where there is none); with
        ``with_metadata``, ``(offset, metadata)`` pairs."""
        out = []
        for t, p in tps:
            c = self.store.get(group_id, t, p)
            out.append(None if c is None else (c.offset, c.metadata) if with_metadata else c.offset)
        return out

    def tick(self) -> None:
        for group in list(self.groups.values()):
            # Runs 10 times a second: snapshot a group only when the tick changed it (members
            # removed, or a rebalance completed or emptied it), not to find it unchanged.
            before = (group.state, group.generation)
            if group.tick() or (group.state, group.generation) != before:
                self._persist(group)

    def topics_changed(self) -> None:
        parts = self._partitions()
        for group in self.groups.values():
            group.on_metadata_change(parts)
            self._persist(group)

    def topic_deleted(self, topic: str) -> None:
        self.store.delete_topic(topic)
        self.topics_changed()

    def list(self) -> list[dict]:
        ids = sorted(set(self.groups) | set(self.store.groups()))
        out = []
        for gid in ids:
            group = self.groups.get(gid)
            out.append({"group_id": gid, "state": group.state.value if group else GroupState.EMPTY.value,
                        "members": len(group.members) if group else 0,
                        "protocol_type": group.protocol_type if isinstance(group, KafkaGroup) else ""})
        return out

    def _require_known(self, group_id: str) -> None:
        if group_id not in self.groups and group_id not in self.store.groups():
            raise UnknownGroupError(f"group {group_id!r} does not exist (no members, no commits)")

    def describe(self, group_id: str) -> dict:
        self._require_known(group_id)
        info = self._group(group_id).describe()
        info.setdefault("protocol_type", "")
        info["committed"] = {tp: c.offset for tp, c in self.store.offsets(group_id).items()}
        return info

    def _require_inactive(self, group_id: str, what: str) -> None:
        group = self.groups.get(group_id)
        if group is not None and group.members:
            raise GroupNotEmptyError(
                f"group {group_id!r} has {len(group.members)} active member(s); stop its consumers "
                f"before you {what}")

    def delete(self, group_id: str) -> None:
        self._require_known(group_id)
        self._require_inactive(group_id, "delete it")
        self.store.delete_group(group_id)
        group = self.groups.pop(group_id, None)
        if group is not None:
            group.delete()

    def reset(self, group_id: str, offsets: dict) -> None:
        """Overwrite committed offsets of an inactive group: ``{(topic, partition): offset}``."""
        self._require_inactive(group_id, "reset its offsets")
        self.store.commit(group_id, offsets, now_ms=self.clock())
