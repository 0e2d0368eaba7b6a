"""Partition assignors: range, roundrobin and cooperative-sticky, as Kafka's.

Every assignor maps ``members`` (member id -> Subscription) and ``partitions``
(topic -> partition count) to member id -> sorted list of (topic, partition).
All are deterministic: members are ordered by group instance id when they have
one (static members keep their place across restarts), else by member id.

Invariant (asserted): each partition of a subscribed topic goes to at most one
member, and only to a member subscribed to its topic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import ConfigError

__all__ = [
    "Subscription",
    "Assignment",
    "RangeAssignor",
    "RoundRobinAssignor",
    "CooperativeStickyAssignor",
    "get_assignor",
    "settle_claims",
    "ASSIGNORS",
    "ASSIGNOR_NAMES",
]

TP = tuple  # (topic, partition)


@dataclass(frozen=True)
class Subscription:
    """What a member asks for: its topics, what it claims to own now, and its static identity.

    ``generation`` is the generation in which the member was given ``owned`` (-1: unknown).
    When two members claim one partition, the claim of the newer generation wins (Kafka's
    cooperative-sticky rule): the other is a stale claim, e.g. of a member that left the
    group and came back still believing it owns what has moved on since.
    """

    member_id: str
    topics: frozenset
    owned: tuple = ()
    instance_id: str | None = None
    generation: int = -1

    @property
    def sort_key(self) -> tuple:
        return (self.instance_id or "~" + self.member_id,)


@dataclass
class Assignment:
    """An assignor's answer. ``withheld`` are partitions that move between members and, in the
    cooperative protocol, must be revoked by their old owner before the new one gets them."""

    owners: dict = field(default_factory=dict)  # member id -> list of TP
    withheld: set = field(default_factory=set)

    @property
    def needs_follow_up(self) -> bool:
        return bool(self.withheld)


def _ordered(members: dict[str, Subscription]) -> list[Subscription]:
    return sorted(members.values(), key=lambda s: s.sort_key)


def _check(result: dict[str, list], members: dict[str, Subscription]) -> dict[str, list]:
    seen = set()
    for mid, tps in result.items():
        for tp in tps:
            assert tp not in seen, f"partition {tp} assigned twice"
            assert tp[0] in members[mid].topics, f"{mid} got {tp} without subscribing to {tp[0]}"
            seen.add(tp)
        result[mid] = sorted(tps)
    return result


class RangeAssignor:
    """Per topic, contiguous ranges: the first ``n % m`` members get one partition more."""

    name = "range"
    cooperative = False

    def assign(self, members: dict[str, Subscription], partitions: dict[str, int]) -> Assignment:
        result = {m: [] for m in members}
        for topic in sorted(partitions):
            subs = [s for s in _ordered(members) if topic in s.topics]
            if not subs:
                continue
            n, m = partitions[topic], len(subs)
            start = 0
            for i, s in enumerate(subs):
                count = n // m + (1 if i < n % m else 0)
                result[s.member_id] += [(topic, p) for p in range(start, start + count)]
                start += count
        return Assignment(_check(result, members))


class RoundRobinAssignor:
    """All partitions in (topic, partition) order dealt to members in turn."""

    name = "roundrobin"
    cooperative = False

    def assign(self, members: dict[str, Subscription], partitions: dict[str, int]) -> Assignment:
        result = {m: [] for m in members}
        ordered = _ordered(members)
        if not ordered:
            return Assignment(result)
        i = 0
        for topic in sorted(partitions):
            for p in range(partitions[topic]):
                for _ in range(len(ordered)):
                    s = ordered[i % len(ordered)]
                    i += 1
                    if topic in s.topics:
                        result[s.member_id].append((topic, p))
                        break
        return Assignment(_check(result, members))


class CooperativeStickyAssignor:
    """Balanced, keeping every partition it can where it already is (incremental cooperative).

    Each member keeps up to its fair share of what it owns; the rest are dealt to the
    least-loaded subscribed members. A partition that changes hands while its old owner
    still holds it is *withheld* this generation: the old owner revokes it, and the
    follow-up rebalance hands it over. Members that keep their partitions never stop.

    Conflicting claims: the claim of the newest generation owns the partition. Claims of
    one partition tied at the newest generation cannot be settled: every claimant may still
    hold it, so it is withheld from all until they have revoked it (follow-up rebalance).
    """

    name = "cooperative-sticky"
    cooperative = True

    def assign(self, members: dict[str, Subscription], partitions: dict[str, int]) -> Assignment:
        result: dict[str, list] = {m: [] for m in members}
        if not members:
            return Assignment(result)
        wanted = {t for s in members.values() for t in s.topics}
        universe = [(t, p) for t in sorted(partitions) if t in wanted for p in range(partitions[t])]
        current_owner, contested = settle_claims(members, set(universe))
        held = {mid: 0 for mid in members}
        for mid in current_owner.values():
            held[mid] += 1
        ordered = sorted(_ordered(members), key=lambda s: -held[s.member_id])
        n, m = len(universe), len(ordered)
        quota = {s.member_id: n // m + (1 if i < n % m else 0) for i, s in enumerate(ordered)}
        taken: set = set(contested)
        for s in ordered:
            keep = [tp for tp in sorted(tuple(x) for x in s.owned)
                    if tp[0] in s.topics and current_owner.get(tp) == s.member_id]
            for tp in keep[: quota[s.member_id]]:
                result[s.member_id].append(tp)
                taken.add(tp)
        for tp in universe:
            if tp in taken:
                continue
            eligible = [s for s in ordered if tp[0] in s.topics]
            if not eligible:
                continue
            under = [s for s in eligible if len(result[s.member_id]) < quota[s.member_id]] or eligible
            target = min(under, key=lambda s: (len(result[s.member_id]), s.sort_key))
            result[target.member_id].append(tp)
            taken.add(tp)
        withheld = {tp for tp in contested if tp[0] in wanted}
        for mid, tps in result.items():
            for tp in list(tps):
                owner = current_owner.get(tp)
                if owner is not None and owner != mid:
                    tps.remove(tp)
                    withheld.add(tp)
        return Assignment(_check(result, members), withheld)


def settle_claims(members: dict[str, Subscription], valid: set) -> tuple[dict, set]:
    """Who owns each claimed partition now: the claimant of the newest generation (never the
    first in some sort order). Returns (partition -> owner, partitions tied at the newest)."""
    claims: dict = {}
    for s in members.values():
        for tp in {tuple(x) for x in s.owned}:
            if tp in valid:
                claims.setdefault(tp, []).append(s)
    owner, contested = {}, set()
    for tp, claimants in claims.items():
        newest = max(s.generation for s in claimants)
        top = [s.member_id for s in claimants if s.generation == newest]
        if len(top) == 1:
            owner[tp] = top[0]
        else:
            contested.add(tp)
    return owner, contested


ASSIGNORS = {a.name: a for a in (RangeAssignor(), RoundRobinAssignor(), CooperativeStickyAssignor())}
#: The assignors' names, the values of a consumer's ``partition_assignment_strategy``.
ASSIGNOR_NAMES = tuple(ASSIGNORS)


def get_assignor(name: str):
    """The assignor called ``name``; ConfigError naming the choices otherwise."""
    try:
        return ASSIGNORS[name]
    except KeyError:
        raise ConfigError(f"unknown partition assignor {name!r}; choose one of {sorted(ASSIGNORS)}") from None
