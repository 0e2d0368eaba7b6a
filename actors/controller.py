"""The controller loop of the coordinator: liveness of replicas, leader elections, roles, healing.

Every :data:`CHECK_INTERVAL_S` the coordinator asks every replica of every replicated
partition for its status (``PartitionActor.status``, bounded by :data:`STATUS_TIMEOUT_S`)
and feeds what answered, what Ray reported dead and which nodes are alive to the pure
rules (coordinator/controller.py): a leader that failed is replaced by an in-sync
replica (elections, epochs bumped, persisted in the metadata before anyone is told), a
replica killed for good on an alive node is created again in place, and one whose node
stayed gone past ``replica.lost.timeout.ms`` is replaced on another node. Then every
replica whose status lags the metadata's state is told the state again
(``PartitionActor.become``): that one rule also brings restarted replicas, new
replicas and deposed leaders that come back to their roles, whatever was lost in
between.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import ray
from ray.exceptions import ActorDiedError

from rayka.coordinator import controller as rules
from rayka.coordinator import reassignment
from rayka.coordinator.election import PartitionState, preferred_leader_election

__all__ = ["ControllerLoop", "CHECK_INTERVAL_S"]

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 0.5
STATUS_TIMEOUT_S = 1.0


class ControllerLoop:
    """One controller check per :meth:`tick`.

    ``meta`` is the coordinator's ClusterMetadata; ``replica_handles(meta)`` gives
    ``{(partition, replica): handle}`` of a topic (creating what is missing where it may);
    ``recreate(meta, partition, replica)`` creates one replica's actor again;
    ``place(meta, partition, exclude_nodes, chosen)`` picks a node for a replacement replica
    (``chosen``: nodes picked earlier in the same tick); ``retire(meta, partition, replica)``
    deletes the actor and files of a replica that left the partition.
    """

    def __init__(self, meta, replica_handles: Callable, recreate: Callable, place: Callable, clock,
                 retire: Callable):
        self._meta = meta
        self._replica_handles = replica_handles
        self._recreate = recreate
        self._place = place
        self._retire = retire
        self._health = rules.ReplicaHealth(clock)
        self._clock = clock
        self._grace = rules.StartupGrace(clock)  # partitions left alone while replicas start

    def tick(self) -> None:
        topics = [self._meta.get(name) for name in self._meta.topics()]
        topics = [t for t in topics if t.replicated()]
        if not topics:
            return
        handles = {}
        for meta in topics:
            for (p, r), h in self._replica_handles(meta).items():
                handles[(meta.name, p, r)] = h
        refs = {key: h.status.remote() for key, h in handles.items() if h is not None}
        ready = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=STATUS_TIMEOUT_S)[0]) if refs else ()
        alive_nodes = {n["NodeID"] for n in ray.nodes() if n.get("Alive")}
        statuses, dead = {}, set()
        for key in handles:
            ref = refs.get(key)
            if ref is not None and ref in ready:
                try:
                    statuses[key] = ray.get(ref)
                except ActorDiedError:
                    dead.add(key)
                except Exception:  # noqa: BLE001 - restarting, or its node is going: not answering
                    pass
        # The highest HW any replica of a partition reported: a replica whose log ends below it
        # lacks committed records (it cut them to copy a damaged range again) and must not lead.
        hw = {}
        for (topic, p, _), s in statuses.items():
            hw[(topic, p)] = max(hw.get((topic, p), 0), s.high_watermark)
        reports, nodes_of = [], {}  # one lookup of a partition's replica nodes per tick, not per replica
        for (topic, p, r) in handles:
            status = statuses.get((topic, p, r))
            if (topic, p) not in nodes_of:
                nodes_of[(topic, p)] = self._meta.get(topic).replica_nodes_of(p)
            node = nodes_of[(topic, p)].get(r)
            reports.append(rules.ReplicaReport(
                topic, p, r, status is not None, (topic, p, r) in dead, node is None or node in alive_nodes,
                behind_hw=status is not None and status.log_end_offset < hw.get((topic, p), 0)))
        held = self._grace.hold_back(reports)
        self._health.update([r for r in reports if (r.topic, r.partition) not in held])
        for meta in topics:
            try:
                self._topic(meta, statuses, handles, alive_nodes)
            except Exception:  # noqa: BLE001 - one topic's trouble must not stop the others
                log.exception("controller check of topic %s failed", meta.name)

    def _topic(self, meta, statuses: dict, handles: dict, alive_nodes: set) -> None:
        chosen: list = []  # replacement nodes picked this tick, counted by place

        def place(exclude, p):
            node = self._place(meta, p, set(exclude) | set(), chosen)
            if node is not None:
                chosen.append(node)
            return node

        for p in range(meta.partitions):
            if self._health.view(meta.name, p, meta.state(p).replicas[0]) is None:
                continue  # a replica still starting: nothing is decided for the partition yet
            actions = rules.decide_partition(meta.name, p, meta.state(p), meta.replica_nodes_of(p), meta.topic_config,
                                             self._health, alive_nodes, self._clock(),
                                             lambda exclude, p=p: place(exclude, p))
            for action in actions:
                self._apply(meta.name, p, action, handles)
            if not any(isinstance(a, (rules.Elect, rules.Replace)) for a in actions):
                if not self._away_from_damage(meta.name, p, meta.state(p), statuses):
                    self._reassign(meta.name, p, handles)
        meta = self._meta.get(meta.name)
        for p in range(meta.partitions):
            self._converge(meta.name, p, meta.state(p), statuses, handles)

    def _apply(self, topic: str, p: int, action, handles: dict) -> None:
        if isinstance(action, rules.Elect):
            state = self._meta.set_partition_state(topic, p, action.new_state,
                                                   expected_partition_epoch=action.expected_partition_epoch)
            (log.error if action.unclean_loss else log.warning)(
                "%s-%d: %s at leader epoch %d (ISR %s)%s", topic, p,
                "no replica can lead" if state.leader is None else f"replica {state.leader} leads now",
                state.leader_epoch, list(state.isr),
                "; UNCLEAN election: records only the old ISR held are lost" if action.unclean_loss else "")
        elif isinstance(action, rules.Recreate):
            log.warning("%s-%d: replica %d was killed; creating it again on its node", topic, p, action.replica_id)
            handles[(topic, p, action.replica_id)] = self._recreate(self._meta.get(topic), p, action.replica_id)
        elif isinstance(action, rules.Replace):
            meta = self._meta.get(topic)
            self._meta.set_partition_state(
                topic, p, action.new_state, replica_nodes={**meta.replica_nodes_of(p), action.new_replica_id: action.node},
                expected_partition_epoch=action.expected_partition_epoch)
            log.warning("%s-%d: replica %d is lost (its node is gone); replica %d replaces it on node %s",
                        topic, p, action.lost_replica, action.new_replica_id, action.node)
            self._retire(meta, p, action.lost_replica)
            handles[(topic, p, action.new_replica_id)] = self._recreate(self._meta.get(topic), p,
                                                                         action.new_replica_id)

    def _reassign(self, topic: str, p: int, handles: dict) -> None:
        """One step of the partition's reassignment, if one is in progress (coordinator/reassignment.py)."""
        meta = self._meta.get(topic)
        target = meta.reassignment(p)
        if target is None:
            return
        state = meta.state(p)
        step = reassignment.next_step(state, meta.replica_nodes_of(p), target, meta.next_replica_id(p))
        if step.kind == "done":
            self._meta.set_reassignment(topic, p, None)
            log.info("%s-%d: reassignment done: replicas %s", topic, p, list(state.replicas))
            return
        if step.kind == "wait":
            return
        self._meta.set_partition_state(topic, p, step.state, replica_nodes=dict(step.added),
                                       expected_partition_epoch=state.partition_epoch)
        log.info("%s-%d: reassignment step %s: replicas %s, leader %s", topic, p, step.kind,
                 list(step.state.replicas), step.state.leader)
        for r, _ in step.added:
            handles[(topic, p, r)] = self._recreate(self._meta.get(topic), p, r)
        for r in step.removed:
            self._retire(meta, p, r)
            handles.pop((topic, p, r), None)

    def _away_from_damage(self, topic: str, p: int, state: PartitionState, statuses: dict) -> bool:
        """A leader whose log holds damaged batches hands the leadership to an in-sync replica
        without damage; as a follower it then copies the damaged range again (replication.py)."""
        leader = statuses.get((topic, p, state.leader))
        if leader is None or not leader.damaged:
            return False
        healthy = next((r for r in state.isr if r != state.leader and (s := statuses.get((topic, p, r))) is not None
                        and not s.damaged and s.leader_epoch == state.leader_epoch
                        and s.log_end_offset >= leader.high_watermark), None)
        if healthy is None:
            return False
        # The damaged leader leaves the ISR with its leadership: it cuts its log to copy the damaged
        # range again, and must not be electable until the new leader finds it caught up.
        new = state.replace(leader=healthy, leader_epoch=state.leader_epoch + 1,
                            isr=tuple(r for r in state.isr if r != state.leader),
                            partition_epoch=state.partition_epoch + 1)
        self._meta.set_partition_state(topic, p, new, expected_partition_epoch=state.partition_epoch)
        log.warning("%s-%d: the leader's log holds damaged batches; replica %d (in sync, undamaged) leads now and "
                    "replica %d copies the damaged range from it", topic, p, healthy, state.leader)
        return True

    def elect_preferred(self, topic: str) -> list[int]:
        """Move each partition's leadership of ``topic`` to its preferred (first) replica where that
        one is alive and in sync (Kafka's preferred leader election); the partitions moved."""
        meta = self._meta.get(topic)
        moved = []
        for p in range(meta.partitions):
            state = meta.state(p)
            alive = [r for r in state.replicas if (v := self._health.view(topic, p, r)) is not None and v.electable]
            result = preferred_leader_election(state, alive)
            if result.changed:
                self._meta.set_partition_state(topic, p, result.state, expected_partition_epoch=state.partition_epoch)
                log.info("%s-%d: preferred replica %d leads again (leader epoch %d)", topic, p,
                         result.state.leader, result.state.leader_epoch)
                moved.append(p)
        return moved

    @staticmethod
    def _converge(topic: str, p: int, state: PartitionState, statuses: dict, handles: dict) -> None:
        """Tell the state to every replica of it whose status shows an older one (or none)."""
        for r in state.replicas:
            key = (topic, p, r)
            handle = handles.get(key)
            status = statuses.get(key)
            if handle is None:
                continue
            stale = status is None or status.leader_epoch < state.leader_epoch or (
                r == state.leader and (status.role != "leader" or status.partition_epoch < state.partition_epoch)) or (
                r != state.leader and state.leader is not None and status.role != "follower")
            if stale:
                handle.become.remote(state.to_dict())  # answered by its next status; lost pushes are re-sent
