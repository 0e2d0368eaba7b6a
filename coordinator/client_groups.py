"""Kafka's client-assigned consumer groups (JoinGroup/SyncGroup), as plain logic (no Ray, no I/O).

Beside rayka's own groups (``groups``: the coordinator assigns), Kafka clients assign
partitions themselves: the coordinator picks a leader and a protocol (assignor) every
member supports, gives the leader every member's metadata, and passes the leader's
assignment on. Same state table (``group_state``), generations, sessions and committed
offsets as rayka's groups; every call is short and non-blocking, so the gateway polls a
PENDING answer (every 20-50 ms) until it is done:

1. ``join`` -> PENDING (with the member's id, new on a first join) while the rebalance
   gathers members; it completes when every known member joined, or at the rebalance
   timeout (dropping the others): generation + 1, CompletingRebalance (Kafka's
   AwaitingSync), and OK with the generation, protocol name and leader id (the leader
   also gets every member's metadata). A known member joining again with the same
   protocols while CompletingRebalance or Stable gets the current generation; the leader
   rejoining a Stable group, or anyone with new protocols, starts a rebalance (as Kafka).
2. ``sync`` -> the leader's stores every member's assignment and makes the group Stable;
   a follower's is PENDING until then. RebalanceInProgressError while PreparingRebalance.
3. ``heartbeat`` -> OK, or REBALANCE (Kafka's REBALANCE_IN_PROGRESS: join again).
4. ``leave`` by member id or (static members, KIP-345) by ``group.instance.id``; ``tick``
   evicts members past their session timeout, ends overdue rebalances, and restarts one
   whose leader did not sync within the rebalance timeout.
5. ``validate_commit``: member and generation must be current (Kafka checks no more);
   RebalanceInProgressError while CompletingRebalance.

Errors: IllegalGenerationError (another generation), UnknownMemberError. Static members:
a join with no member id and a known ``instance_id`` takes the old member's place under a
new id, with no rebalance if the group is Stable and its protocols are unchanged; the old
id is fenced (FencedInstanceIdError for all it sends), as is any member id that is not its
instance id's current member. Invariant (checked on the leader's sync): no partition goes
to two members in one generation (InvalidAssignmentError). Not thread-safe: GroupService
holds a lock around each call.
"""

from __future__ import annotations

import logging
import uuid

from ..clock import Clock
from ..errors import (FencedInstanceIdError, GroupMaxSizeReachedError, IllegalGenerationError,
                      InconsistentGroupProtocolError, RebalanceInProgressError, UnknownMemberError)
from ..messages import HeartbeatStatus, JoinStatus, KafkaJoinResult, KafkaSyncResult
from .client_members import KafkaMember, check_assignment, check_join, select_protocol
from .group_snapshot import KafkaGroupSnapshot
from .group_state import GroupState, GroupStateMachine

__all__ = ["KafkaGroup", "KafkaMember", "MAX_FENCED", "MAX_MEMBERS"]

log = logging.getLogger(__name__)

MAX_FENCED = 256  # fenced member ids remembered per group (oldest forgotten first)
MAX_MEMBERS = 1000  # Kafka's group.max.size: joins without a member id cannot grow a group forever


class KafkaGroup(GroupStateMachine):
    """One client-assigned consumer group's membership and generations (see the module docs)."""

    def __init__(self, group_id: str, clock: Clock, *, generation: int = 0, initial_delay_ms: int = 0):
        self.group_id = group_id
        self.clock = clock
        self._state = GroupState.EMPTY
        self.generation = generation
        self.protocol_type = ""
        self.protocol: str | None = None  # chosen at each rebalance
        self.members: dict[str, KafkaMember] = {}
        self.leader: str | None = None
        self.partitions: dict[str, int] = {}
        self.rebalances = 0
        self._initial_delay_ms = initial_delay_ms  # Kafka's group.initial.rebalance.delay.ms
        self._joined: dict[str, None] = {}  # in join order (the first is leader if the old one is gone)
        self._synced: set[str] = set()
        self._rebalance_deadline_ms = 0
        self._delay_until_ms = 0
        self._sync_deadline_ms = 0
        self._fenced: dict[str, str] = {}  # old member id -> instance id that replaced it

    # -- snapshots ------------------------------------------------------------------------------

    @classmethod
    def from_snapshot(cls, group_id: str, clock: Clock, snap: KafkaGroupSnapshot, *, generation: int = 0,
                      partitions: dict[str, int], initial_delay_ms: int = 0) -> KafkaGroup:
        """The group ``snap`` recorded, back after a coordinator restart. Born Stable in the
        recorded generation if it was Stable then, else it starts a rebalance at once (members
        learn it from their next heartbeat). Each member's session starts now."""
        group = cls(group_id, clock, generation=max(generation, snap.generation), initial_delay_ms=initial_delay_ms)
        group.partitions = dict(partitions)
        group.protocol_type, group.protocol = snap.protocol_type, snap.protocol
        group._fenced = dict(snap.fenced)
        now = clock()
        group.members = {m.member_id: KafkaMember.from_snapshot(m, now) for m in snap.members}
        if not group.members:
            return group
        group.leader = snap.leader if snap.leader in group.members else next(iter(group.members))
        group._state = GroupState.STABLE  # born in the recorded generation: not a move from Empty
        if snap.state is not GroupState.STABLE or group.generation != snap.generation:
            group._prepare_rebalance(f"restored after a coordinator restart (it was {snap.state.value})")
        log.info("kafka group %s: restored %d member(s) at generation %d", group_id, len(group.members),
                 group.generation)
        return group

    def to_snapshot(self) -> KafkaGroupSnapshot:
        """The group's membership, for ``from_snapshot`` after a coordinator restart."""
        return KafkaGroupSnapshot(self.generation, self._state, self.protocol_type, self.protocol, self.leader,
                                  tuple(m.to_snapshot() for m in self.members.values()), tuple(self._fenced.items()))

    # -- state machine --------------------------------------------------------------------------

    def _prepare_rebalance(self, reason: str) -> None:
        if self._state is GroupState.DEAD:
            return
        if not self.members:
            self._transition_to(GroupState.EMPTY)
            return
        if self._state is not GroupState.PREPARING_REBALANCE:
            log.info("kafka group %s: rebalance (%s)", self.group_id, reason)
            was_empty = self._state is GroupState.EMPTY
            self._transition_to(GroupState.PREPARING_REBALANCE)
            self._joined = {}
            now = self.clock()
            self._rebalance_deadline_ms = now + max(m.rebalance_timeout_ms for m in self.members.values())
            # A group starting from Empty waits a little for the others of a fleet starting together.
            self._delay_until_ms = now + self._initial_delay_ms if was_empty else now

    def _maybe_complete(self) -> None:
        if (self._state is GroupState.PREPARING_REBALANCE and self.members
                and all(mid in self._joined for mid in self.members) and self.clock() >= self._delay_until_ms):
            self._complete()

    def _complete(self) -> None:
        if self.leader not in self.members:
            self.leader = next(mid for mid in self._joined if mid in self.members)
        protocol = select_protocol(self.group_id, self.members, self.leader)
        self._transition_to(GroupState.COMPLETING_REBALANCE)
        self.generation += 1
        self.rebalances += 1
        self.protocol = protocol
        for member in self.members.values():  # nothing is assigned in a generation until the leader syncs
            member.assignment, member.assigned = b"", ()
        self._joined = {}
        self._synced = set()
        self._sync_deadline_ms = self.clock() + max(m.rebalance_timeout_ms for m in self.members.values())
        log.info("kafka group %s: generation %d with %d member(s), protocol %s, leader %s", self.group_id,
                 self.generation, len(self.members), protocol, self.leader)

    # -- protocol ---------------------------------------------------------------------------------

    def join(self, member_id: str | None, *, instance_id: str | None, protocol_type: str, protocols,
             session_timeout_ms: int, rebalance_timeout_ms: int, client_id: str = "",
             client_host: str = "") -> KafkaJoinResult:
        """Join (or keep polling a join); see the module docs for the answers."""
        if self._state is GroupState.DEAD:
            raise AssertionError(f"group {self.group_id}: join on a deleted group")
        protocols = check_join(instance_id, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms,
                               client_id, client_host)
        now = self.clock()
        if not member_id:
            static = self._by_instance(instance_id)
            self._check_supported(static.member_id if static else None, protocol_type, protocols)
            if static is not None:
                return self._replace_static(static, protocols, session_timeout_ms, rebalance_timeout_ms,
                                            client_id, client_host)
            if len(self.members) >= MAX_MEMBERS:
                raise GroupMaxSizeReachedError(f"group {self.group_id} has {len(self.members)} members, its "
                                               "limit; this join is refused")
            member_id = f"{client_id or 'consumer'}-{uuid.uuid4()}"
            self.members[member_id] = KafkaMember(member_id, instance_id, client_id, client_host, protocols,
                                                  session_timeout_ms, rebalance_timeout_ms, now)
            self._prepare_rebalance(f"member {member_id} joined")
            return self._take_part(self.members[member_id])
        member = self._member(member_id, instance_id)
        self._check_supported(member_id, protocol_type, protocols)
        changed = member.protocols != protocols
        member.protocols, member.last_heartbeat_ms = protocols, now
        member.session_timeout_ms, member.rebalance_timeout_ms = session_timeout_ms, rebalance_timeout_ms
        member.client_id, member.client_host = client_id, client_host
        if self._state is GroupState.PREPARING_REBALANCE:
            return self._take_part(member)
        if changed or (self._state is GroupState.STABLE and member_id == self.leader):
            self._prepare_rebalance(f"member {member_id} rejoined" + (" with new protocols" if changed else ""))
            return self._take_part(member)
        return self._answer(member)  # CompletingRebalance or Stable: the current generation

    def _take_part(self, member: KafkaMember) -> KafkaJoinResult:
        self._joined[member.member_id] = None
        self._maybe_complete()
        if self._state is GroupState.COMPLETING_REBALANCE:
            return self._answer(member)
        return KafkaJoinResult(JoinStatus.PENDING, member.member_id, self.generation, self.protocol_type)

    def _answer(self, member: KafkaMember) -> KafkaJoinResult:
        leader = member.member_id == self.leader
        members = tuple((m.member_id, m.instance_id, m.metadata(self.protocol))
                        for m in self.members.values()) if leader else ()
        return KafkaJoinResult(JoinStatus.OK, member.member_id, self.generation, self.protocol_type, self.protocol,
                               self.leader, members)

    def _check_supported(self, member_id: str | None, protocol_type: str, protocols) -> None:
        """Refuse a protocol type, or protocols, the group's other members cannot share."""
        others = [m for mid, m in self.members.items() if mid != member_id]
        if not others:
            self.protocol_type = protocol_type
            return
        common = set.intersection(*(set(m.names) for m in others))
        names = [name for name, _ in protocols]
        if protocol_type != self.protocol_type or not common & set(names):
            raise InconsistentGroupProtocolError(
                f"group {self.group_id}: this member offers protocol type {protocol_type!r} with assignors "
                f"{names}, but the group's {len(others)} other member(s) use type {self.protocol_type!r} and "
                f"all support only {sorted(common)}. Configure the same partition.assignment.strategy on "
                "every member, or use another group id")

    def _replace_static(self, old: KafkaMember, protocols, session_timeout_ms: int, rebalance_timeout_ms: int,
                        client_id: str, client_host: str) -> KafkaJoinResult:
        """A static member back (its process restarted): the old member's place under a new id."""
        old_id, new_id = old.member_id, f"{client_id or 'consumer'}-{uuid.uuid4()}"
        self._fence(old_id, old.instance_id)
        del self.members[old_id]
        old.member_id, old.last_heartbeat_ms = new_id, self.clock()
        self.members[new_id] = old
        previous_leader = self.leader
        if self.leader == old_id:
            self.leader = new_id
        if old_id in self._joined:
            del self._joined[old_id]
            self._joined[new_id] = None
        if old_id in self._synced:
            self._synced.discard(old_id)
            self._synced.add(new_id)
        changed = old.protocols != protocols
        old.protocols, old.client_id, old.client_host = protocols, client_id, client_host
        old.session_timeout_ms, old.rebalance_timeout_ms = session_timeout_ms, rebalance_timeout_ms
        log.info("kafka group %s: static member %s is back as %s; %s fenced", self.group_id, old.instance_id,
                 new_id, old_id)
        if self._state is GroupState.PREPARING_REBALANCE:
            return self._take_part(old)
        if self._state is GroupState.STABLE and not changed:
            # No rebalance: it syncs to get its old assignment. The leader id stays the old one
            # (as Kafka answers), so a replaced leader does not compute an assignment that a
            # Stable group would not pass on.
            return KafkaJoinResult(JoinStatus.OK, new_id, self.generation, self.protocol_type, self.protocol,
                                   previous_leader, ())
        self._prepare_rebalance(f"static member {old.instance_id} replaced")
        return self._take_part(old)

    def sync(self, member_id: str, generation: int, *, instance_id: str | None = None, assignments=None,
             assigned=None) -> KafkaSyncResult:
        """The member's assignment of ``generation`` (the leader's sends every member's); see the module docs."""
        member = self._member(member_id, instance_id)
        member.last_heartbeat_ms = self.clock()
        self._check_generation(member_id, generation, "sync")
        if self._state is GroupState.PREPARING_REBALANCE:
            raise RebalanceInProgressError(f"group {self.group_id} is rebalancing; join again")
        if self._state is GroupState.COMPLETING_REBALANCE:
            self._synced.add(member_id)
            if member_id != self.leader:
                return KafkaSyncResult(JoinStatus.PENDING, b"", self.protocol)
            checked = check_assignment(self.group_id, self.generation, self.members, assignments or {},
                                       assigned or {})
            for mid, m in self.members.items():
                m.assignment, m.assigned = checked[mid]
            self._transition_to(GroupState.STABLE)
            log.info("kafka group %s: generation %d assigned by its leader", self.group_id, self.generation)
        return KafkaSyncResult(JoinStatus.OK, member.assignment, self.protocol)

    def heartbeat(self, member_id: str, generation: int, instance_id: str | None = None) -> HeartbeatStatus:
        """OK, or REBALANCE (Kafka's REBALANCE_IN_PROGRESS); raises for an unknown or fenced member
        or another generation."""
        member = self._member(member_id, instance_id)
        member.last_heartbeat_ms = self.clock()
        self._check_generation(member_id, generation, "heartbeat")
        if self._state is GroupState.PREPARING_REBALANCE:
            return HeartbeatStatus.REBALANCE
        return HeartbeatStatus.OK

    def leave(self, member_id: str | None, instance_id: str | None = None) -> None:
        """Remove a member now: by member id, or by instance id (a static member, KIP-345)."""
        if instance_id is not None:
            member = self._by_instance(instance_id)
            if member is None:
                raise UnknownMemberError(f"no member of group {self.group_id} has group.instance.id {instance_id!r}")
            if member_id and member_id != member.member_id:
                self._fenced_error(member_id, instance_id)
        else:
            member = self._member(member_id, None)
        self._drop([member.member_id], f"member {member.member_id} left")

    def validate_commit(self, member_id: str | None, generation: int, partitions=(),
                        instance_id: str | None = None) -> None:
        """Raise unless this member may commit now: a current member of the current generation
        (a commit from outside the group, generation -1, only while it has no members)."""
        if not member_id or generation < 0:
            if self.members:
                raise UnknownMemberError(
                    f"group {self.group_id} has active members; a commit from outside the group is "
                    "refused. Commit from a member, or stop the members first")
            return
        member = self._member(member_id, instance_id)
        member.last_heartbeat_ms = self.clock()
        self._check_generation(member_id, generation, "commit")
        if self._state is GroupState.COMPLETING_REBALANCE:
            raise RebalanceInProgressError(f"group {self.group_id} is completing a rebalance; sync, then commit")

    def tick(self) -> list[str]:
        """Evict silent members, end overdue rebalances and syncs; returns the removed member ids."""
        now = self.clock()
        evicted = [m.member_id for m in self.members.values() if now - m.last_heartbeat_ms > m.session_timeout_ms]
        if evicted:
            self._drop(evicted, f"{len(evicted)} member(s) missed their session timeout")
        if self._state is GroupState.PREPARING_REBALANCE and now > self._rebalance_deadline_ms:
            late = [mid for mid in self.members if mid not in self._joined]
            if late:
                self._drop(late, f"{len(late)} member(s) did not rejoin in time")
                evicted += late
        if self._state is GroupState.COMPLETING_REBALANCE and now > self._sync_deadline_ms:
            late = [mid for mid in self.members if mid not in self._synced]
            self._drop(late, f"{len(late)} member(s), the leader among them, did not sync in time")
            evicted += late
        self._maybe_complete()
        if not self.members and self._state is not GroupState.DEAD:
            self._transition_to(GroupState.EMPTY)
        return evicted

    def _drop(self, member_ids, reason: str) -> None:
        for mid in member_ids:
            log.info("kafka group %s: member %s removed (%s)", self.group_id, mid, reason)
            del self.members[mid]
            self._joined.pop(mid, None)
            self._synced.discard(mid)
        if self._state is GroupState.PREPARING_REBALANCE:
            if not self.members:
                self._transition_to(GroupState.EMPTY)
            self._maybe_complete()
        else:
            self._prepare_rebalance(reason)

    def on_metadata_change(self, partitions: dict[str, int]) -> None:
        """New partition counts. No rebalance: in Kafka's protocol the leader watches the
        metadata and rejoins when its subscription's partitions change."""
        self.partitions = dict(partitions)

    def delete(self) -> None:
        self._transition_to(GroupState.DEAD)

    # -- members --------------------------------------------------------------------------------

    def _by_instance(self, instance_id: str | None) -> KafkaMember | None:
        if instance_id is None:
            return None
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def _member(self, member_id: str | None, instance_id: str | None) -> KafkaMember:
        """The member, checked against fencing: a replaced static member's old id, or a member id
        that is not its instance id's current member, gets FencedInstanceIdError."""
        if member_id in self._fenced:
            self._fenced_error(member_id, self._fenced[member_id])
        current = self._by_instance(instance_id)
        if current is not None and current.member_id != member_id:
            self._fenced_error(member_id, instance_id)
        member = self.members.get(member_id)
        if member is None:
            raise UnknownMemberError(
                f"member {member_id} is not in group {self.group_id} (evicted after its session timeout, "
                "or it left); join again without a member id")
        if instance_id is not None and member.instance_id != instance_id:
            self._fenced_error(member_id, instance_id)
        return member

    def _fence(self, member_id: str, instance_id: str) -> None:
        self._fenced[member_id] = instance_id
        while len(self._fenced) > MAX_FENCED:
            del self._fenced[next(iter(self._fenced))]

    def _fenced_error(self, member_id, instance_id) -> None:
        raise FencedInstanceIdError(
            f"member {member_id} of group {self.group_id} was fenced: group.instance.id {instance_id!r} belongs "
            "to a newer member. Two processes may share one group.instance.id; give each its own")

    def _check_generation(self, member_id: str, generation: int, what: str) -> None:
        if generation != self.generation:
            raise IllegalGenerationError(
                f"{what} from member {member_id} of generation {generation} refused: group {self.group_id} is at "
                f"generation {self.generation}; rejoin")

    def describe(self) -> dict:
        return {
            "group_id": self.group_id, "state": self._state.value, "protocol": self.protocol,
            "protocol_type": self.protocol_type, "generation": self.generation, "leader": self.leader,
            "members": [m.describe(self.protocol) for m in self.members.values()],
        }
