"""Consumer groups: membership, generations and rebalancing, as plain logic (no Ray, no I/O).

The protocol is Kafka's with the assignment computed by the coordinator
(server-side), and every call short and non-blocking, so a client drives it by
polling:

1. ``join`` -> "pending" while the coordinator gathers the members of the next
   generation, then "ok" with the member's partitions and the generation;
2. ``heartbeat`` every few seconds -> HeartbeatStatus.OK, or REBALANCE (join again);
3. ``validate_commit`` fences zombies: a member of a stale generation, or one
   evicted after its session timeout, cannot commit. Commits never wait for a
   rebalance: a member that has not yet collected the newest generation may
   commit, with the generation it knows, the partitions it was given in it that
   nobody else owns in the newest one;
4. ``leave`` removes a member at once; ``tick`` evicts members whose heartbeats
   stopped and ends rebalances that waited too long.

A rebalance completes when every member has joined, or when the rebalance
timeout (the members' ``max_poll_interval_ms``) passes, dropping the ones that
did not. Static members (``group_instance_id``) that come back within their
session timeout take their old place with no rebalance. With the
cooperative-sticky assignor, partitions that move are first revoked (withheld
for one generation), then handed over in an immediate follow-up rebalance. A
member's claim to own a partition counts only if no other member owns it in the
group's current assignment (a member that left and came back claims nothing).

All members use one assignor: a join asking for another one is refused with
InconsistentGroupProtocolError while the group has other members (Kafka's
INCONSISTENT_GROUP_PROTOCOL). ``group_snapshot`` saves and restores a group's
members so that a restarted coordinator keeps them (``to_snapshot``/``from_snapshot``).

States and the moves between them are in ``group_state``: every state change goes
through ``_transition_to``, which refuses a move not in the table.

Invariant (asserted after every assignment): no partition has two owners in one
generation. Not thread-safe: GroupService holds a lock around each call.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

from ..clock import Clock
from .assignment import Subscription, get_assignor, settle_claims
from .group_snapshot import GroupSnapshot, MemberSnapshot
from .group_state import GroupState, GroupStateMachine, is_transition_valid
from ..errors import IllegalGenerationError, InconsistentGroupProtocolError, UnknownMemberError
from ..messages import HeartbeatStatus, JoinResult, JoinStatus

__all__ = ["GroupState", "Group", "Member", "is_transition_valid"]

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One member of a group: its subscription, session, and what it was given and told."""

    member_id: str
    instance_id: str | None
    topics: frozenset
    session_timeout_ms: int
    rebalance_timeout_ms: int
    last_heartbeat_ms: int
    owned: tuple = ()  # what the member said it owns when it last joined
    assignment: list = field(default_factory=list)
    assigned_generation: int = -1  # generation of ``assignment``
    delivered_generation: int = -1  # last generation whose assignment the member was told
    delivered_assignment: list = field(default_factory=list)  # ... and that assignment
    revoking: list = field(default_factory=list)  # held legitimately, to hand over; nobody has them yet


class Group(GroupStateMachine):
    """One consumer group's membership and generations."""

    def __init__(self, group_id: str, clock: Clock, *, generation: int = 0):
        self.group_id = group_id
        self.clock = clock
        self._state = GroupState.EMPTY
        self.generation = generation
        self.protocol: str | None = None
        self.members: dict[str, Member] = {}
        self.leader: str | None = None
        self._joined: set[str] = set()
        self._rebalance_deadline_ms = 0
        self.partitions: dict[str, int] = {}
        self.rebalances = 0

    @classmethod
    def from_snapshot(cls, group_id: str, clock: Clock, snap: GroupSnapshot, *, generation: int = 0,
                      partitions: dict[str, int]) -> Group:
        """The group ``snap`` recorded, back after a coordinator restart (``partitions``: topic ->
        partition count now; ``generation``: the stored one, if later than the snapshot's).

        A group is born Stable in the snapshot's generation if that generation was settled,
        else it starts a rebalance at once (its members are told by their next heartbeat).
        Each member's session starts now.
        """
        group = cls(group_id, clock, generation=max(generation, snap.generation))
        group.partitions = dict(partitions)
        group.protocol = snap.protocol
        now = clock()
        for m in snap.members:
            group.members[m.member_id] = Member(
                member_id=m.member_id, instance_id=m.instance_id, topics=frozenset(m.topics),
                session_timeout_ms=m.session_timeout_ms, rebalance_timeout_ms=m.rebalance_timeout_ms,
                last_heartbeat_ms=now, owned=m.delivered_assignment, assignment=list(m.assignment),
                assigned_generation=m.assigned_generation, delivered_generation=m.delivered_generation,
                delivered_assignment=list(m.delivered_assignment), revoking=list(m.revoking))
        if not group.members:
            return group
        group.leader = min(group.members)
        group._state = GroupState.STABLE  # born in the recorded generation: not a move from Empty
        reason = snap.unsettled(group.partitions, group.generation)
        if reason is not None:
            group._prepare_rebalance(f"restored after a coordinator restart ({reason})")
        log.info("group %s: restored %d member(s) at generation %d", group_id, len(group.members),
                 group.generation)
        return group

    def to_snapshot(self) -> GroupSnapshot:
        """The group's membership, for ``from_snapshot`` after a coordinator restart."""
        return GroupSnapshot(self.generation, self._state, self.protocol, tuple(
            MemberSnapshot(m.member_id, m.instance_id, tuple(sorted(m.topics)), m.session_timeout_ms,
                           m.rebalance_timeout_ms, tuple(tuple(tp) for tp in m.assignment), m.assigned_generation,
                           tuple(tuple(tp) for tp in m.delivered_assignment), m.delivered_generation,
                           tuple(tuple(tp) for tp in m.revoking))
            for m in self.members.values()))

    # -- state machine --------------------------------------------------------------------------

    def _prepare_rebalance(self, reason: str) -> None:
        if self.state is GroupState.DEAD:
            return
        if not self.members:
            self._transition_to(GroupState.EMPTY)
            return
        if self.state is not GroupState.PREPARING_REBALANCE:
            log.info("group %s: rebalance (%s)", self.group_id, reason)
            self._transition_to(GroupState.PREPARING_REBALANCE)
            self._joined = set()
            timeout = max(m.rebalance_timeout_ms for m in self.members.values())
            self._rebalance_deadline_ms = self.clock() + timeout

    def _maybe_complete(self) -> None:
        if self.state is GroupState.PREPARING_REBALANCE and self.members and set(self.members) <= self._joined:
            self._complete()

    def _complete(self) -> None:
        # The assignment is computed before the group moves on, so a failure (a bug) leaves it
        # PreparingRebalance, to be tried again, not stuck in CompletingRebalance.
        assignor = get_assignor(self.protocol or "range")
        # The group's current assignment is the truth about who owns what: a claim to a
        # partition another member owns in it is stale (say, of a member that left after
        # max_poll_interval_ms and came back) and must not win over the real owner.
        owner_now = {tuple(tp): mid for mid, m in self.members.items() for tp in m.assignment}
        subs = {m.member_id: Subscription(m.member_id, m.topics,
                                          tuple(tp for tp in m.owned if owner_now.get(tuple(tp), m.member_id)
                                                == m.member_id),
                                          m.instance_id, m.assigned_generation)
                for m in self.members.values()}
        parts = {t: n for t, n in self.partitions.items() if any(t in m.topics for m in self.members.values())}
        result = assignor.assign(subs, parts)
        # Who really holds each claimed partition (one member at most): what it must hand over
        # it may still commit until someone else is given it.
        held, _ = settle_claims(subs, {tuple(tp) for s in subs.values() for tp in s.owned})
        self._transition_to(GroupState.COMPLETING_REBALANCE)
        self.generation += 1
        self.rebalances += 1
        for mid, member in self.members.items():
            member.assignment = list(result.owners.get(mid, []))
            member.assigned_generation = self.generation
            member.revoking = sorted(tp for tp, owner in held.items() if owner == mid and tp not in member.assignment)
        self._check_unique()
        self.leader = min(self.members)
        self._joined = set()
        self._transition_to(GroupState.STABLE)
        log.info("group %s: generation %d with %d member(s)", self.group_id, self.generation, len(self.members))
        if result.needs_follow_up:
            # Cooperative: the old owners revoke what moves, then rejoin to hand it over.
            self._prepare_rebalance(f"{len(result.withheld)} partition(s) to hand over")

    def _check_unique(self) -> None:
        owners: dict = {}
        for mid, member in self.members.items():
            for tp in member.assignment:
                assert tp not in owners, f"{tp} owned by {owners[tp]} and {mid} in one generation"
                owners[tp] = mid

    # -- protocol ---------------------------------------------------------------------------------

    def join(self, member_id: str | None, *, instance_id: str | None, topics, session_timeout_ms: int,
             rebalance_timeout_ms: int, owned=(), assignor: str = "range") -> JoinResult:
        """Join (or keep polling a join); see the module docs for the answers."""
        if self._state is GroupState.DEAD:
            # The coordinator forgets a deleted group and makes a new one for its id.
            raise AssertionError(f"group {self.group_id}: join on a deleted group")
        get_assignor(assignor)
        now = self.clock()
        topics = frozenset(topics)
        owned = tuple(tuple(tp) for tp in owned)
        known = member_id is not None and member_id in self.members
        static = None if known else self._static(instance_id)
        if member_id is not None and not known and static is None:
            raise UnknownMemberError(
                f"member {member_id} is not in group {self.group_id} (evicted after its session "
                "timeout?); join again without a member id")
        self._check_protocol(member_id if known else static.member_id if static else None, assignor)
        if static is not None:
            return self._static_rejoin(static, topics, owned, now)
        if not known:
            member_id = f"{instance_id or 'consumer'}-{uuid.uuid4().hex[:12]}"
            self.members[member_id] = Member(member_id, instance_id, topics, session_timeout_ms,
                                             rebalance_timeout_ms, now, owned)
            self._prepare_rebalance(f"member {member_id} joined")
        member = self.members[member_id]
        member.last_heartbeat_ms = now
        member.session_timeout_ms, member.rebalance_timeout_ms = session_timeout_ms, rebalance_timeout_ms
        if member.topics != topics:
            member.topics = topics
            self._prepare_rebalance(f"member {member_id} changed its subscription")
        return self._take_part(member, owned)

    def _check_protocol(self, member_id: str | None, assignor: str) -> None:
        """Refuse an assignor the other members do not use; the first member picks the group's."""
        others = [m for mid, m in self.members.items() if mid != member_id]
        if others and self.protocol is not None and assignor != self.protocol:
            raise InconsistentGroupProtocolError(
                f"group {self.group_id} uses partition_assignment_strategy {self.protocol!r} "
                f"({len(others)} member(s)); this member asked for {assignor!r}. All members of a "
                f"group must use one strategy: set partition_assignment_strategy={self.protocol!r}, "
                "or use another group_id (to switch, stop every member first)")
        self.protocol = assignor if not others or self.protocol is None else self.protocol

    def _take_part(self, member: Member, owned) -> JoinResult:
        """Answer a join: the member's partitions if there is a generation it has not been told
        about (or the group is stable), else count it in the rebalance and maybe complete it."""
        if self.state is GroupState.STABLE or member.assigned_generation > member.delivered_generation:
            # Even if a cooperative follow-up has already started: first hand over this generation.
            return self._answer(member.member_id)
        member.owned = owned
        self._joined.add(member.member_id)
        self._maybe_complete()
        if self.state is GroupState.STABLE or member.assigned_generation > member.delivered_generation:
            return self._answer(member.member_id)
        return JoinResult(JoinStatus.PENDING, member.member_id, self.generation)

    def _static(self, instance_id: str | None) -> Member | None:
        if instance_id is None:
            return None
        return next((m for m in self.members.values() if m.instance_id == instance_id), None)

    def _static_rejoin(self, old: Member, topics, owned, now: int) -> dict:
        """A static member back (e.g. its process restarted): same place, new member id; the
        old id is fenced. No rebalance if its subscription is unchanged and the group is stable."""
        old_id, new_id = old.member_id, f"{old.instance_id}-{uuid.uuid4().hex[:12]}"
        del self.members[old_id]
        self._joined.discard(old_id)
        old.member_id, old.last_heartbeat_ms = new_id, now
        self.members[new_id] = old
        if self.leader == old_id:
            self.leader = new_id
        if old.topics != topics:
            old.topics = topics
            self._prepare_rebalance(f"static member {old.instance_id} changed its subscription")
        return self._take_part(old, owned)

    def _answer(self, member_id: str) -> JoinResult:
        """The member's current partitions; ``rebalance`` asks it to join again right away."""
        member = self.members[member_id]
        member.delivered_generation = member.assigned_generation
        member.delivered_assignment = list(member.assignment)
        return JoinResult(JoinStatus.OK, member_id, member.assigned_generation,
                          tuple(map(tuple, member.assignment)),
                          rebalance=self.state is GroupState.PREPARING_REBALANCE)

    def heartbeat(self, member_id: str, generation: int) -> HeartbeatStatus:
        """OK or REBALANCE; raises for an unknown member or a stale generation."""
        member = self._member(member_id)
        member.last_heartbeat_ms = self.clock()
        if self.state is GroupState.PREPARING_REBALANCE or member.assigned_generation > member.delivered_generation:
            return HeartbeatStatus.REBALANCE  # join again: to take part, or to collect a finished assignment
        if generation != self.generation:
            raise IllegalGenerationError(
                f"member {member_id} is at generation {generation}, group {self.group_id} at "
                f"{self.generation}; rejoin")
        return HeartbeatStatus.OK

    def leave(self, member_id: str) -> None:
        self._member(member_id)
        del self.members[member_id]
        self._joined.discard(member_id)
        self._prepare_rebalance(f"member {member_id} left")
        self._maybe_complete()

    def validate_commit(self, member_id: str | None, generation: int, partitions) -> None:
        """Raise unless this member may commit these partitions now (zombie fencing).

        Commits never wait for a rebalance. A member may commit, with the generation it knows:

        - up to date: the partitions of its assignment, and those it held and is handing over
          (cooperative revocation) until another member is given them;
        - one generation behind (it has not collected the newest assignment yet; a rebalance
          completes only after every member collected the one before, so never further): the
          partitions it was given in the generation it knows that no other member owns now.

        No partition is ever committable by two members at once.
        """
        if member_id is None or generation < 0:
            if self.members:
                raise UnknownMemberError(
                    f"group {self.group_id} has active members; a commit from outside the group is "
                    "refused. Commit from a member, or stop the members first")
            return
        member = self._member(member_id)
        catching_up = (member.assigned_generation > member.delivered_generation
                       and generation == member.delivered_generation)
        if generation != self.generation and not catching_up:
            raise IllegalGenerationError(
                f"commit from member {member_id} of generation {generation} refused: group "
                f"{self.group_id} is at generation {self.generation} (this member was fenced as a "
                "zombie). Rejoin and commit again")
        others = {tuple(tp) for mid, m in self.members.items() if mid != member_id for tp in m.assignment}
        if catching_up:
            allowed = {tuple(tp) for tp in member.delivered_assignment} - others
        else:
            allowed = {tuple(tp) for tp in member.assignment} | ({tuple(tp) for tp in member.revoking} - others)
        foreign = sorted({tuple(tp) for tp in partitions} - allowed)
        if foreign:
            raise IllegalGenerationError(
                f"member {member_id} does not own {foreign} in generation {generation}; its commit is refused")

    def tick(self) -> list[str]:
        """Evict silent members and end overdue rebalances; returns evicted member ids."""
        now = self.clock()
        evicted = [m.member_id for m in self.members.values()
                   if now - m.last_heartbeat_ms > m.session_timeout_ms]
        for mid in evicted:
            log.info("group %s: member %s missed its session timeout; evicted", self.group_id, mid)
            del self.members[mid]
            self._joined.discard(mid)
        if evicted:
            self._prepare_rebalance(f"{len(evicted)} member(s) evicted")
        if self.state is GroupState.PREPARING_REBALANCE and now > self._rebalance_deadline_ms:
            late = [mid for mid in self.members if mid not in self._joined]
            for mid in late:
                log.info("group %s: member %s did not rejoin in time; removed", self.group_id, mid)
                del self.members[mid]
            evicted += late
        self._maybe_complete()
        if not self.members and self.state is not GroupState.DEAD:
            self._transition_to(GroupState.EMPTY)
        return evicted

    def on_metadata_change(self, partitions: dict[str, int]) -> None:
        """New partition counts; rebalance if a subscribed topic changed."""
        subscribed = {t for m in self.members.values() for t in m.topics}
        changed = {t for t in subscribed if self.partitions.get(t) != partitions.get(t)}
        self.partitions = dict(partitions)
        if changed and self.members:
            self._prepare_rebalance(f"partitions of {sorted(changed)} changed")

    def delete(self) -> None:
        self._transition_to(GroupState.DEAD)

    def _member(self, member_id: str) -> Member:
        try:
            return self.members[member_id]
        except KeyError:
            raise UnknownMemberError(
                f"member {member_id} is not in group {self.group_id} (evicted after its session timeout, "
                "or it left); join again") from None

    def describe(self) -> dict:
        return {
            "group_id": self.group_id, "state": self.state.value, "protocol": self.protocol,
            "generation": self.generation, "leader": self.leader,
            "members": [{"member_id": m.member_id, "instance_id": m.instance_id, "topics": sorted(m.topics),
                         "assignment": list(m.assignment)} for m in self.members.values()],
        }
