"""The replica side of replication inside a partition actor: its role, and the Ray calls that role makes.

A partition actor is one replica of its partition. The coordinator (the controller)
tells it the partition's state (``PartitionActor.become``): the replica named leader
builds a :class:`~rayka.partitions.leader_role.LeaderRole` and runs an ISR thread that
sends its ISR changes to the coordinator (AlterPartition) and acts on them only once
they are committed; every other replica builds a
:class:`~rayka.partitions.follower_role.FollowerRole` whose thread fetches from the
leader's actor. A state is applied once: an older or equal (leader epoch, partition
epoch) is ignored, a newer partition epoch with the same leader and leader epoch
only updates the leader's ISR view. A replica whose state is not known yet (just
created, or restarted by Ray) has no role and refuses appends and fetches with
NotLeaderError until the controller's next check gives it one.

An unreplicated partition (replication factor 1) leads at once with the state it was
created with: nothing to elect, nothing to copy.
"""

from __future__ import annotations

import logging
import os
import threading

import pyarrow as pa
import ray
from ray.exceptions import GetTimeoutError, RayActorError

from rayka.coordinator.election import PartitionState
from rayka.errors import (
    CoordinatorUnavailableError,
    FencedLeaderEpochError,
    InvalidUpdateVersionError,
    NotLeaderError,
    PartitionUnavailableError,
    RaykaError,
)
from rayka.messages import ReplicaFetchRequest, ReplicaFetchResponse, ReplicaStatus
from rayka.partitions.follower_role import FollowerRole
from rayka.partitions.leader_role import LeaderRole

__all__ = ["Replication", "replica_actor_name"]

log = logging.getLogger(__name__)

ISR_CHECK_S = 0.1
CALL_TIMEOUT_S = 5.0


def replica_actor_name(base_name: str, replica: int) -> str:
    """The actor name of replica ``replica`` of the partition whose replica 0 is ``base_name``."""
    return base_name if replica == 0 else f"{base_name}.r{replica}"


class Replication:
    """The role of replica ``replica_id`` of one partition, and its threads.

    ``actor_name`` is this actor's own name (its replica-0 form names the leader's actor,
    its cluster part the coordinator); ``config()`` gives the topic config in use.
    """

    def __init__(self, actor_name: str, namespace: str, topic: str, partition: int, replica_id: int, config):
        self._base = actor_name.rsplit(".r", 1)[0] if replica_id else actor_name
        self._coordinator_name = f"rayka:{actor_name.split(':')[1]}:coordinator"
        self._topic_id = self._base.split(":")[3] if self._base.count(":") >= 4 else ""
        self._namespace = namespace
        self.topic, self.partition, self.replica_id = topic, partition, replica_id
        self._config = config
        self._lock = threading.Lock()
        self.state: PartitionState | None = None
        self.role: LeaderRole | FollowerRole | None = None
        self._leader_handles: dict[str, object] = {}

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.partition}.r{self.replica_id}"

    # -- roles -------------------------------------------------------------------------------

    def apply(self, plog, state: PartitionState, high_watermark: int | None = None) -> bool:
        """Act on ``state`` if it is newer than the one in use; True if it was applied."""
        with self._lock:
            old = self.state
            if old is not None and (state.leader_epoch, state.partition_epoch) <= (old.leader_epoch,
                                                                                   old.partition_epoch):
                if self._serving() or (state.leader_epoch, state.partition_epoch) < (old.leader_epoch,
                                                                                    old.partition_epoch):
                    return False
                old = None  # its role ended (fenced, or its fetch loop stopped): take the state up again
            if self.replica_id not in state.replicas:
                self._end_role(f"replica {self.replica_id} is no longer a replica of the partition")
                self.state = state
                return True
            if (old is not None and isinstance(self.role, LeaderRole) and state.leader == self.replica_id
                    and state.leader_epoch == old.leader_epoch and not self.role.resigned):
                try:
                    self.role.adopt(state)
                    self.state = state
                    return True
                except FencedLeaderEpochError:
                    pass
            hw = self._hw() if high_watermark is None else high_watermark
            self._end_role(f"the partition moved to leader epoch {state.leader_epoch}")
            self.state = state
            if state.leader == self.replica_id:
                plog.begin_epoch(state.leader_epoch)
                cfg = self._config()
                role = LeaderRole(state, self.replica_id, plog.log_end_offset, hw,
                                  min_insync_replicas=cfg.min_insync_replicas,
                                  lag_time_max_ms=cfg.replica_lag_time_max_ms)
                self.role = role
                if len(state.replicas) > 1:
                    threading.Thread(target=self._isr_loop, args=(role,), daemon=True,
                                     name=f"rayka-isr-{self.name}").start()
            elif state.leader is not None:
                # Its holes (corrupt batches) are copied again from the leader (follower_role.py).
                role = FollowerRole(plog, state, self.replica_id, self._fetcher(state.leader), name=self.name)
                self.role = role
                threading.Thread(target=role.run, daemon=True, name=f"rayka-follow-{self.name}").start()
            else:
                self.role = None  # offline: no one leads; wait for the next state
            log.info("replica %s: %s at leader epoch %d (ISR %s)", self.name,
                     "leads" if state.leader == self.replica_id else f"follows replica {state.leader}",
                     state.leader_epoch, list(state.isr))
            return True

    def stop(self) -> None:
        with self._lock:
            self._end_role("the replica is closing")

    def _serving(self) -> bool:
        """Whether the role in use still acts (a resigned leader or a stopped follower does not)."""
        role = self.role
        if isinstance(role, LeaderRole):
            return not role.resigned
        if isinstance(role, FollowerRole):
            return not role.stopped
        return self.state is not None and self.state.leader is None  # offline: nothing to do

    def _end_role(self, why: str) -> None:
        role, self.role = self.role, None
        if isinstance(role, LeaderRole):
            role.resign(why)
        elif isinstance(role, FollowerRole):
            role.stop()

    def _hw(self) -> int:
        role = self.role
        return role.high_watermark if role is not None else 0

    def leader(self) -> LeaderRole:
        """The leader role, or NotLeaderError saying who leads."""
        role = self.role
        if isinstance(role, LeaderRole) and not role.resigned:
            return role
        state = self.state
        if state is None:
            raise NotLeaderError(f"replica {self.replica_id} of {self.topic}-{self.partition} has not been told "
                                 "its role yet (it just started); ask the coordinator for the leader and retry")
        raise NotLeaderError(f"replica {self.replica_id} of {self.topic}-{self.partition} does not lead it "
                             f"(leader: replica {state.leader}, leader epoch {state.leader_epoch}); ask the "
                             "coordinator for the partition's leader and retry")

    def reader(self, replica_read: bool):
        """The role that serves a consumer fetch: the leader; with ``replica_read`` also this
        replica as a follower that may serve reads (KIP-392: in the leader's committed ISR as
        last heard, heard within replica.lag.time.max.ms; it serves up to the HW it learned).
        Otherwise NotLeaderError: the consumer reads from the leader instead."""
        role = self.role
        if replica_read and isinstance(role, FollowerRole):
            if role.may_serve_reads(self._config().replica_lag_time_max_ms):
                return role
            raise NotLeaderError(f"replica {self.replica_id} of {self.topic}-{self.partition} is not an in-sync "
                                 "follower now (out of the ISR, or not heard from its leader lately); read from "
                                 "the leader")
        return self.leader()

    def status(self, plog) -> ReplicaStatus:
        role, state = self.role, self.state
        kind = "leader" if isinstance(role, LeaderRole) and not role.resigned else (
            "follower" if isinstance(role, FollowerRole) else "none")
        isr = role.isr if isinstance(role, LeaderRole) else (state.isr if state else ())
        return ReplicaStatus(
            self.replica_id, kind, state.leader_epoch if state else -1, state.partition_epoch if state else -1,
            plog.log_start_offset if plog else -1, plog.log_end_offset if plog else -1, self._hw() if plog else -1,
            tuple(isr), bool(plog is not None and plog.damaged_offsets), os.getpid())

    # -- Ray calls ---------------------------------------------------------------------------

    def _fetcher(self, leader: int):
        name = replica_actor_name(self._base, leader)

        def fetch(request: ReplicaFetchRequest) -> ReplicaFetchResponse:
            handle = self._leader_handles.get(name)
            if handle is None:
                try:
                    handle = ray.get_actor(name, namespace=self._namespace)
                except ValueError:
                    raise PartitionUnavailableError(f"the leader replica {name} does not exist now") from None
                self._leader_handles[name] = handle
            try:
                return ray.get(handle.replica_fetch.remote(request),
                               timeout=request.max_wait_ms / 1000.0 + CALL_TIMEOUT_S)
            except RaykaError:
                raise
            except (RayActorError, GetTimeoutError) as exc:
                self._leader_handles.pop(name, None)
                raise PartitionUnavailableError(f"the leader replica {name} did not answer: {exc}") from None

        return fetch

    def _coordinator(self):
        return ray.get_actor(self._coordinator_name, namespace=self._namespace)

    def topic_schema_versions(self) -> dict:
        """Every value-schema version of this topic as the coordinator keeps them (version ->
        pa.Schema): a batch or a reader named one this replica does not know yet."""
        try:
            infos = ray.get(self._coordinator().schema_versions.remote(self.topic), timeout=CALL_TIMEOUT_S)
        except RaykaError:
            raise
        except (RayActorError, GetTimeoutError, ValueError) as exc:  # restarting, or not there yet
            raise CoordinatorUnavailableError(
                f"replica {self.name} needs the topic's schema versions and the coordinator did not answer "
                f"({type(exc).__name__}); try again") from None
        return {info.version: pa.ipc.read_schema(pa.py_buffer(info.schema)) for info in infos}

    def _isr_loop(self, role: LeaderRole) -> None:
        """Send the leader's ISR changes to the coordinator until the role ends."""
        stop = threading.Event()
        while not role.resigned and not stop.wait(ISR_CHECK_S):
            request = role.isr_request()
            if request is None:
                continue
            try:
                state = ray.get(self._coordinator().alter_partition.remote(
                    self.topic, self._topic_id, self.partition, request), timeout=CALL_TIMEOUT_S)
                role.isr_committed(state)
                with self._lock:
                    if self.role is role and self.state is not None and \
                            state.partition_epoch > self.state.partition_epoch:
                        self.state = state
                log.info("replica %s: ISR is now %s (partition epoch %d)", self.name, list(state.isr),
                         state.partition_epoch)
            except InvalidUpdateVersionError:
                role.isr_rejected()  # the controller changed the state: its next check sends it
            except (FencedLeaderEpochError, NotLeaderError) as exc:
                role.resign(str(exc))
            except Exception as exc:  # noqa: BLE001 - unknown outcome: send the same change again
                log.info("replica %s: ISR change %s unanswered (%s); sending it again", self.name,
                         list(request.isr), type(exc).__name__)
                role.isr_unknown()
