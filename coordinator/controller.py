"""What the controller does each tick for replicated partitions: elect, recreate, replace.

The coordinator's tick (actors/coordinator.py) pings every replica actor and asks Ray
which actors died and which nodes are alive, feeds that to a :class:`ReplicaHealth`
(one :class:`ReplicaReport` per replica per tick), then calls :func:`decide` per topic
and carries out the actions it returns, in order:

- :class:`Elect`: the leader failed — its node is gone, Ray says its actor died for good,
  or it missed ``leader_failures`` consecutive pings (default 2) — so
  election.elect_leader picks one among the alive replicas (those that answered the last
  ping, with their node alive); also when the partition has no leader and an eligible
  replica answers again. ``new_state.leader`` may be None: no eligible replica is alive,
  and the dead leader is fenced by the new leader epoch. ``unclean_loss``: the new leader
  was out of sync (unclean.leader.election.enable), records only the old ISR had are lost.
- :class:`Recreate`: a replica whose actor died for good while its node is alive (a
  ``ray.kill``): create its actor again in place (same directory, same node). Repeated
  each tick until the actor answers, so creating it must be idempotent.
- :class:`Replace`: a follower whose node has been gone for longer than
  ``replica.lost.timeout.ms``: a new replica (replica_placement.next_replica_id,
  election.replace_replica) on the node the ``place(exclude_nodes)`` callback chooses
  (None: no room, nothing is done, tried again next tick). The leader is never
  replaced (it is elected away first, a tick earlier); neither is the last in-sync
  replica of a partition with no leader (its records would be given up). How long a
  node is gone counts from the first report saying ``node_alive=False``.

Every state-changing action (Elect, Replace) carries the whole new state, built on the
stored one: store it with ``set_partition_state(..., expected_partition_epoch=
action.expected_partition_epoch)``, so a state that moved on meanwhile (an ISR change)
refuses it and the next tick decides again. At most one state change per partition per
tick, so actions never build on each other; a tick's actions are bounded by
partitions x (1 + replication factor). :func:`decide` is deterministic: the same inputs
give the same actions, in partition then replica order. A replica with no report this
tick counts as not alive for an election and triggers nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..clock import Clock
from ..config import TopicConfig
from .election import PartitionState, elect_leader, replace_replica
from .metadata import TopicMetadata
from .replica_placement import next_replica_id

__all__ = ["ReplicaReport", "ReplicaView", "ReplicaHealth", "StartupGrace", "Elect", "Recreate", "Replace", "decide",
           "decide_partition", "LEADER_FAILURES", "STARTUP_GRACE_MS"]

#: Consecutive missed pings after which a leader counts as failed.
LEADER_FAILURES = 2
#: How long a replica that never answered yet is given to start before it counts as failing.
STARTUP_GRACE_MS = 10_000

ReplicaKey = tuple[str, int, int]  # (topic, partition, replica id)


@dataclass(frozen=True, slots=True)
class ReplicaReport:
    """One tick's news of one replica: ``answered`` its ping; ``dead``: Ray said its actor died
    for good (not restarting); ``node_alive``: its node is in Ray's alive nodes; ``behind_hw``:
    its log ends below a high watermark another replica of the partition reported (it cut
    committed records, say to copy a damaged range again), so it must not lead yet even while
    its committed ISR still names it."""

    topic: str
    partition: int
    replica: int
    answered: bool
    dead: bool = False
    node_alive: bool = True
    behind_hw: bool = False

    @property
    def key(self) -> ReplicaKey:
        return (self.topic, self.partition, self.replica)


@dataclass(frozen=True, slots=True)
class ReplicaView:
    """What :class:`ReplicaHealth` knows of a replica: the last report, the count of consecutive
    missed pings, and since when (ms, None: not now) it fails to answer, is dead, lost its node."""

    answered: bool
    dead: bool
    node_alive: bool
    missed: int
    failing_since_ms: int | None
    dead_since_ms: int | None
    node_gone_since_ms: int | None
    behind_hw: bool = False

    @property
    def alive(self) -> bool:
        """It answered the last ping, lives, and its node is there."""
        return self.answered and not self.dead and self.node_alive

    @property
    def electable(self) -> bool:
        """Eligible for an election: alive, and holding every committed record it reported."""
        return self.alive and not self.behind_hw


class ReplicaHealth:
    """The replicas' liveness across ticks, with first-failure times from ``clock``.

    Feed :meth:`update` every replica of every replicated topic once per tick: a replica not
    in a tick's reports is forgotten (a deleted topic, a replaced replica), so the tracker
    holds at most one entry per replica in the metadata. Not thread-safe (the tick owns it).
    """

    def __init__(self, clock: Clock):
        self._clock = clock
        self._views: dict[ReplicaKey, ReplicaView] = {}

    def update(self, reports: Iterable[ReplicaReport]) -> None:
        """One tick's reports; see the class docstring."""
        now = self._clock()
        views = {}
        for report in reports:
            old = self._views.get(report.key)
            views[report.key] = ReplicaView(
                answered=report.answered, dead=report.dead, node_alive=report.node_alive,
                missed=0 if report.answered else (old.missed if old else 0) + 1,
                failing_since_ms=None if report.answered else _since(old and old.failing_since_ms, now),
                dead_since_ms=_since(old and old.dead_since_ms, now) if report.dead else None,
                node_gone_since_ms=None if report.node_alive else _since(old and old.node_gone_since_ms, now),
                behind_hw=report.behind_hw)
        self._views = views

    def view(self, topic: str, partition: int, replica: int) -> ReplicaView | None:
        """The replica's view, None if it was not in the last tick's reports."""
        return self._views.get((topic, partition, replica))

    def __len__(self) -> int:
        return len(self._views)


class StartupGrace:
    """Which partitions a tick leaves alone: feed :meth:`hold_back` every tick's reports and give
    :meth:`ReplicaHealth.update` only the reports of partitions not held back.

    A partition is held back when one of its replicas never answered yet and was first asked
    less than ``grace_ms`` ago (an actor process takes seconds to start on a busy node: a new
    partition, or every replica after the coordinator restarted), unless Ray says that replica
    is dead or its node is gone; and when no replica of it answered and none is known dead or
    lost (every call timed out: the controller's own view is in doubt, say on a machine too busy
    to answer in time, and no election could pick anyone anyway). Not thread-safe.
    """

    def __init__(self, clock: Clock, grace_ms: int = STARTUP_GRACE_MS):
        self._clock = clock
        self._grace_ms = grace_ms
        self._first_asked: dict[ReplicaKey, int | None] = {}  # None: it answered once

    def hold_back(self, reports: Iterable[ReplicaReport]) -> set[tuple[str, int]]:
        """The (topic, partition) pairs to leave alone this tick; see the class docstring."""
        reports = list(reports)
        now = self._clock()
        heard = {(r.topic, r.partition) for r in reports if r.answered or r.dead or not r.node_alive}
        held = {(r.topic, r.partition) for r in reports} - heard
        first_asked = {}
        for r in reports:
            first = None if r.answered else self._first_asked.get(r.key, now)
            first_asked[r.key] = first
            if first is not None and now - first < self._grace_ms and not r.dead and r.node_alive:
                held.add((r.topic, r.partition))
        self._first_asked = first_asked  # a replica not reported (deleted, replaced) is forgotten
        return held


@dataclass(frozen=True, slots=True)
class Elect:
    """Store ``new_state`` (a new leader, or none with the dead one fenced) and tell the replicas."""

    topic: str
    partition: int
    new_state: PartitionState
    unclean_loss: bool

    @property
    def expected_partition_epoch(self) -> int:
        return self.new_state.partition_epoch - 1  # an election bumps it by one


@dataclass(frozen=True, slots=True)
class Recreate:
    """Create replica ``replica_id``'s actor again on ``node`` (None: anywhere), in its own directory."""

    topic: str
    partition: int
    replica_id: int
    node: str | None


@dataclass(frozen=True, slots=True)
class Replace:
    """Store ``new_state`` (``new_replica_id`` in ``lost_replica``'s place) with the new replica on
    ``node``, then create its actor; it copies the log from the leader and joins the ISR."""

    topic: str
    partition: int
    lost_replica: int
    new_replica_id: int
    new_state: PartitionState
    node: str

    @property
    def expected_partition_epoch(self) -> int:
        return self.new_state.partition_epoch - 1  # a replacement bumps it by one


Action = Elect | Recreate | Replace
Place = Callable[[frozenset], "str | None"]


def decide(meta: TopicMetadata, health: ReplicaHealth, alive_nodes: Iterable[str], now_ms: int,
           place: Place | None = None, *, leader_failures: int = LEADER_FAILURES) -> list[Action]:
    """The actions for every partition of ``meta`` (see the module docstring). ``alive_nodes``: Ray's
    alive node ids; ``place(exclude_nodes)``: a node for a replacement replica, not one of
    ``exclude_nodes`` (the partition's other replicas' nodes), or None; without it nothing is
    replaced. The callback may count what it returns, as several partitions may ask in one call."""
    alive_nodes = frozenset(alive_nodes)
    config = meta.topic_config
    actions: list[Action] = []
    for p in range(meta.partitions):
        actions += decide_partition(meta.name, p, meta.state(p), meta.replica_nodes_of(p), config, health,
                                    alive_nodes, now_ms, place, leader_failures=leader_failures)
    return actions


def decide_partition(topic: str, partition: int, state: PartitionState, replica_nodes: Mapping[int, str | None],
                     config: TopicConfig, health: ReplicaHealth, alive_nodes: Iterable[str], now_ms: int,
                     place: Place | None = None, *, leader_failures: int = LEADER_FAILURES) -> list[Action]:
    """:func:`decide` for one partition, given its stored state and replica nodes."""
    if leader_failures < 1:
        raise ValueError(f"leader_failures must be >= 1, got {leader_failures}")
    alive_nodes = frozenset(alive_nodes)
    views = {r: health.view(topic, partition, r) for r in state.replicas}

    def node_alive(r: int) -> bool:
        node = replica_nodes.get(r)
        return (node is None or node in alive_nodes) and (views[r] is None or views[r].node_alive)

    alive = [r for r in state.replicas if views[r] is not None and views[r].electable and node_alive(r)]
    actions: list[Action] = []
    elect = _election(topic, partition, state, views, node_alive, alive, config, leader_failures)
    if elect is not None:
        actions.append(elect)
    for r in state.replicas:
        view = views[r]
        if view is not None and view.dead and node_alive(r):
            actions.append(Recreate(topic, partition, r, replica_nodes.get(r)))
    if elect is None and place is not None:
        replace = _replacement(topic, partition, state, replica_nodes, views, node_alive, config, now_ms, place)
        if replace is not None:
            actions.append(replace)
    return actions


def _election(topic, partition, state, views, node_alive, alive, config, leader_failures) -> Elect | None:
    leader = state.leader
    if leader is not None:
        view = views[leader]
        failed = not node_alive(leader) or (view is not None and (view.dead or view.missed >= leader_failures))
        if not failed:
            return None
        alive = [r for r in alive if r != leader]  # it may have answered once since: it failed all the same
    result = elect_leader(state, alive, unclean=config.unclean_leader_election_enable)
    if not result.changed:
        return None
    return Elect(topic, partition, result.state, result.unclean)


def _replacement(topic, partition, state, replica_nodes, views, node_alive, config, now_ms, place) -> Replace | None:
    for r in state.replicas:
        view = views[r]
        if r == state.leader or node_alive(r) or view is None or view.node_gone_since_ms is None:
            continue
        if now_ms - view.node_gone_since_ms <= config.replica_lost_timeout_ms:
            continue
        new_id = next_replica_id(state.replicas)
        try:
            new_state = replace_replica(state, r, new_id)
        except ValueError:
            continue  # the last in-sync replica of a leaderless partition: wait for it
        exclude = frozenset(n for other, n in replica_nodes.items() if other != r and n is not None)
        node = place(exclude)
        if node is None:
            return None  # no room now: nothing is done, the next tick asks again
        return Replace(topic, partition, r, new_id, new_state, node)
    return None


def _since(first_ms: int | None, now_ms: int) -> int:
    return now_ms if first_ms is None else first_ms
