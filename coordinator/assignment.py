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
    "ASSIGNORS",
]

TP = tuple  # (topic, partition)


@dataclass(frozen=True)
class Subscription:
    """What a member asks for: its topics, what it owns now, and its static identity."""

    member_id: str
    topics: frozenset
    owned: tuple = ()
    instance_id: str | None = None

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
    """

    name = "cooperative-sticky"
    cooperative = True

    def assign(self, members: dict[str, Subscription], partitions: dict[str, int]) -> Assignment:
        result: dict[str, list] = {m: [] for m in members}
        if not members:
            return Assignment(result)
        wanted = {t for s in members.values() for t in s.topics}
        universe = [(t, p) for t in sorted(partitions) if t in wanted for p in range(partitions[t])]
        valid = set(universe)
        ordered = sorted(_ordered(members), key=lambda s: -len([tp for tp in s.owned if tuple(tp) in valid]))
        n, m = len(universe), len(ordered)
        quota = {s.member_id: n // m + (1 if i < n % m else 0) for i, s in enumerate(ordered)}
        taken: set = set()
        current_owner: dict = {}
        for s in ordered:
            for tp in sorted(tuple(x) for x in s.owned):
                if tp in valid and tp not in current_owner:
                    current_owner[tp] = s.member_id
        for s in ordered:
            keep = [tp for tp in sorted(tuple(x) for x in s.owned)
                    if tp in valid and tp[0] in s.topics and current_owner.get(tp) == s.member_id]
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
        withheld = set()
        for mid, tps in result.items():
            for tp in list(tps):
                owner = current_owner.get(tp)
                if owner is not None and owner != mid and owner in members:
                    tps.remove(tp)
                    withheld.add(tp)
        return Assignment(_check(result, members), withheld)


ASSIGNORS = {a.name: a for a in (RangeAssignor(), RoundRobinAssignor(), CooperativeStickyAssignor())}


def get_assignor(name: str):
    """The assignor called ``name``; ConfigError naming the choices otherwise."""
    try:
        return ASSIGNORS[name]
    except KeyError:
        raise ConfigError(f"unknown partition assignor {name!r}; choose one of {sorted(ASSIGNORS)}") from None
