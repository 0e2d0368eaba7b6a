"""Client stubs: the one place in clients/ and rayka/ that makes Ray calls to rayka's actors.

``PartitionClient`` and ``CoordinatorClient`` wrap an actor handle with one typed
method per call; everything else in the clients talks to them, never to Ray.
Here, and only here:

- calls are sent (``.remote()``) and waited for (``ray.get``, ``ray.wait``);
- Ray's errors become rayka's (:func:`unwrap`): a task's rayka error is raised as
  itself, a dead or restarting actor becomes PartitionUnavailableError or
  CoordinatorUnavailableError (retriable), an actor whose node is gone the same but
  not retriable, a partition whose directory another runtime holds LogDirLockedError,
  and an answer not given in time KafkaTimeoutError.

Partition calls return a :class:`Pending` (the sender and the fetcher keep one call
in flight per partition and wait on many at once: :func:`wait_first`,
:func:`gather`); coordinator calls wait for their answer, retrying while Ray
restarts the coordinator. The answers are the types of :mod:`rayka.messages`.
This is the seam where another transport could replace Ray RPC: keep it narrow.
"""

from __future__ import annotations

import time

import ray
from ray.exceptions import ActorUnschedulableError, GetTimeoutError, RayActorError, RayError, RayTaskError

from rayka.clients import runtime_attach
from rayka.errors import (CoordinatorUnavailableError, KafkaTimeoutError, LogDirLockedError,
                          PartitionUnavailableError, RaykaError)
from rayka.messages import (BudgetInfo, ClusterInfo, GroupInfo, GroupListing, HeartbeatStatus, JoinResult,
                            KafkaJoinResult, KafkaSyncResult, OffsetReset, SchemaVersionInfo, TopicConfigInfo)

__all__ = ["PartitionClient", "CoordinatorClient", "GatewayClient", "Pending", "wait_first", "gather", "stage",
           "is_staged", "unwrap", "resolve", "settle"]


# -- Ray's errors, rayka's errors ---------------------------------------------------------------


def unwrap(exc: BaseException, what: str = "partition") -> BaseException:
    """Turn a Ray error into the rayka error a user should see.

    Once the shared local runtime this process is attached to is stopping, every failure is
    that (RuntimeStoppedError, not retried), whatever Ray made of it.
    """
    stopped = runtime_attach.stopped()
    if stopped is not None and not isinstance(exc, RaykaError):
        return stopped
    if isinstance(exc, RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, RaykaError):
            return cause
        if isinstance(cause, RayActorError):
            exc = cause
        elif cause is not None:
            return cause
    locked = _dir_locked(exc)
    if locked is not None:
        return locked
    kind = CoordinatorUnavailableError if what == "coordinator" else PartitionUnavailableError
    if isinstance(exc, ActorUnschedulableError):
        err = kind(
            f"the {what} actor cannot run: the Ray node that holds its files is gone. With one "
            "replica per partition its records are unavailable until that node returns"
        )
        err.retriable = False  # waiting will not bring the node back
        return err
    if isinstance(exc, RayActorError):
        return kind(f"the {what} actor is unavailable (it died or is restarting): {exc.__class__.__name__}")
    return exc


def _dir_locked(exc: BaseException) -> LogDirLockedError | None:
    """A partition actor that could not start because another runtime holds its directory.

    Ray reports it as an actor that died in its creation task, with the whole traceback
    in the message; the user gets the one line that matters (who holds it, what to do),
    and it is not retriable: waiting will not free the directory.
    """
    if not isinstance(exc, RayActorError):
        return None
    text = str(exc)
    mark = "LogDirLockedError: "
    if mark not in text:
        return None
    line = text[text.index(mark) + len(mark):].splitlines()[0].strip()
    err = LogDirLockedError(
        f"{line}. With the shared local runtime, every process on one data dir attaches to the same "
        "runtime: connect without an address (or stop the other one: rayka runtime stop)")
    err.retriable = False
    return err


def resolve(ref, what: str = "partition", timeout: float | None = None):
    """``ray.get`` that raises rayka errors instead of Ray's wrappers (KafkaTimeoutError when
    ``timeout`` passes without an answer)."""
    try:
        return ray.get(ref, timeout=timeout)
    except GetTimeoutError:
        raise KafkaTimeoutError(f"the {what} actor did not answer within {timeout:g} s") from None
    except RayError as exc:
        raise _rayka(unwrap(exc, what), what) from None
    except _FAILED:
        _raise_if_stopped()
        raise


#: What a Ray call raises once this process left a stopped runtime: a get in progress ends in
#: SystemExit, a new call in RaySystemError or AttributeError. Ctrl-C stays a KeyboardInterrupt.
_FAILED = (Exception, SystemExit)


def _raise_if_stopped() -> None:
    stopped = runtime_attach.stopped()
    if stopped is not None:
        raise stopped from None


def _wait(refs: list, num_returns: int, timeout: float | None):
    try:
        return ray.wait(refs, num_returns=num_returns, timeout=timeout)
    except _FAILED:
        _raise_if_stopped()
        raise


def _rayka(err: BaseException, what: str) -> BaseException:
    """Never a Ray error type to the user: what ``unwrap`` has no rayka error for (an object
    lost with its node, say) means the actor could not answer."""
    if isinstance(err, RayError):
        kind = CoordinatorUnavailableError if what == "coordinator" else PartitionUnavailableError
        return kind(f"the {what} actor could not answer: {type(err).__name__}: {err}")
    return err


# -- calls in flight ------------------------------------------------------------------------------


class Pending:
    """One call in flight. ``result()`` waits for its answer; ``on_done`` runs a callback with it.

    ``ref`` is the Ray ObjectRef underneath, for the one public API that hands it out
    (``Consumer.commit_async``); clients wait with :func:`wait_first` and :func:`gather`.
    """

    __slots__ = ("ref", "what")

    def __init__(self, ref, what: str = "partition"):
        self.ref = ref
        self.what = what

    def result(self, timeout_s: float | None = None):
        """The answer, or the rayka error the call raised."""
        return resolve(self.ref, self.what, timeout_s)

    def on_done(self, callback) -> None:
        """``callback(answer, None)`` or ``callback(None, rayka_error)`` when the call ends, on a
        Ray callback thread (it must not block)."""
        what = self.what

        def done(fut) -> None:
            try:
                answer = fut.result()
            except BaseException as exc:  # noqa: BLE001 - handed to the callback
                callback(None, unwrap(exc, what))
                return
            callback(answer, None)

        self.ref.future().add_done_callback(done)


def wait_first(pending: list[Pending], timeout_s: float | None, grace_s: float = 0.0) -> list[Pending]:
    """The calls that answered: wait up to ``timeout_s`` (None: no limit) for the first, then
    ``grace_s`` more for the others, so one slow partition never holds back the rest."""
    if not pending:
        return []
    by_ref = {p.ref: p for p in pending}
    ready, rest = _wait(list(by_ref), 1, timeout_s)
    if ready and rest:
        more, _ = _wait(rest, len(rest), grace_s)
        ready += more
    return [by_ref[r] for r in ready]


def gather(pending: list[Pending], timeout_s: float | None = None) -> list:
    """Per call, in order, its answer or the rayka exception it raised: each on its own, so one
    dead partition never fails the others. With ``timeout_s``, a call not answered by then
    gives a (retriable) PartitionUnavailableError saying so; never a Ray error type."""
    if not pending:
        return []
    ready = set(_wait([p.ref for p in pending], len(pending), timeout_s)[0])
    out = []
    for p in pending:
        if p.ref not in ready:
            out.append(PartitionUnavailableError(
                f"the {p.what} actor did not answer within {timeout_s:g} s (it may be restarting, or "
                "its node may be overloaded); try again later"))
            continue
        try:
            out.append(ray.get(p.ref))
        except Exception as exc:  # noqa: BLE001 - every failure is reported per call
            out.append(_rayka(unwrap(exc, p.what), p.what))
    return out


def stage(payload):
    """Put a large append payload into the object store now (the copy then overlaps the append
    in flight); :meth:`PartitionClient.append` takes what this returns as its ``data``."""
    return ray.put(payload)


def is_staged(data) -> bool:
    """Whether ``data`` is a payload :func:`stage` returned."""
    return isinstance(data, ray.ObjectRef)


async def settle(pending: Pending):
    """The answer of a call in flight, awaited without blocking the asyncio loop (the Kafka
    gateway serves every connection on one), or the rayka error the call raised."""
    import asyncio

    try:
        return await asyncio.wrap_future(pending.ref.future())
    except RayError as exc:
        raise _rayka(unwrap(exc, pending.what), pending.what) from None


# -- the stubs ------------------------------------------------------------------------------------


class PartitionClient:
    """Calls to one partition actor (actors/partition.py), each answered by a :class:`Pending`.

    ``handle`` is the Ray actor handle, for tests and tools that manage the actor itself.
    """

    __slots__ = ("handle", "attachment")

    def __init__(self, handle, attachment=None):
        self.handle = handle
        self.attachment = attachment  # runtime_attach.Attachment of the shared runtime, if on one

    def _send(self, method, *args) -> Pending:
        if self.attachment is not None:  # its runtime was stopped: its actors are gone for good
            self.attachment.check()
        try:
            return Pending(method.remote(*args))
        except _FAILED:
            _raise_if_stopped()
            raise

    def append(self, data, producer_id: str | None, sequence: int, acks: int = 1, leader_epoch: int = -1,
               wait_acks: bool = True) -> Pending:
        """Append one batch (an IPC buffer, bytes, or an ObjectRef of one); answers AppendResult.
        ``acks`` -1 waits for every in-sync replica, unless ``wait_acks`` is False: then it answers
        once written (with its leader epoch) and :meth:`wait_acked` waits; ``leader_epoch`` -1 is
        not checked."""
        if acks == 1 and leader_epoch == -1:  # the common case: Ray sends fewer arguments
            return self._send(self.handle.append, data, producer_id, sequence)
        if wait_acks:
            return self._send(self.handle.append, data, producer_id, sequence, acks, leader_epoch)
        return self._send(self.handle.append, data, producer_id, sequence, acks, leader_epoch, False)

    def wait_acked(self, last_offset: int, leader_epoch: int) -> Pending:
        """The acks="all" wait of an append sent with ``wait_acks`` False; answers None once every
        in-sync replica has ``last_offset``."""
        return self._send(self.handle.wait_acked, last_offset, leader_epoch)

    def fetch(self, offset: int, max_records: int, max_bytes: int, max_wait_ms: int, with_schema: bool,
              replica_read: bool = False, columns=None, filter=None, *, leader_epoch: int = -1,
              schema_version: int | None = None) -> Pending:
        """Read from ``offset`` (a long poll up to ``max_wait_ms``); answers FetchResponse.
        ``replica_read``: a follower may answer (KIP-392), else only the leader. ``columns`` /
        ``filter``: pushed down into the partition (partitions/pushdown.py); the usual call
        sends neither (fewer arguments to pickle on every fetch). ``leader_epoch``: the epoch the
        reader last saw (the Kafka gateway's current_leader_epoch); an older one is fenced.
        ``schema_version``: the value-schema version to read in (None: the partition's latest;
        older batches are projected into it)."""
        if columns is not None or filter is not None or schema_version is not None:
            return self._send(self.handle.fetch, offset, max_records, max_bytes, max_wait_ms, with_schema,
                              leader_epoch, replica_read, columns, filter, schema_version)
        if not replica_read and leader_epoch == -1:
            return self._send(self.handle.fetch, offset, max_records, max_bytes, max_wait_ms, with_schema)
        return self._send(self.handle.fetch, offset, max_records, max_bytes, max_wait_ms, with_schema, leader_epoch,
                          replica_read)

    def offsets(self) -> Pending:
        """Answers LogBounds."""
        return self._send(self.handle.offsets)

    def offset_for_time(self, timestamp_ms: int) -> Pending:
        """Answers TimeLookup, or None when no record is that recent."""
        return self._send(self.handle.offset_for_time, timestamp_ms)

    def stats(self) -> Pending:
        """Answers PartitionStats."""
        return self._send(self.handle.stats)


class CoordinatorClient:
    """Calls to the cluster's coordinator actor (actors/coordinator.py), one method each.

    Each call waits for its answer and retries while the coordinator restarts (Ray
    restarts it; the new one keeps topics and groups) for up to ``retry_s`` seconds, then
    raises CoordinatorUnavailableError. With ``bounded``, each attempt also waits only
    until then (KafkaTimeoutError after), as a poll or a commit must not block past its time.
    """

    __slots__ = ("handle", "attachment")

    def __init__(self, handle, attachment=None):
        self.handle = handle
        self.attachment = attachment  # runtime_attach.Attachment, set by connect() on a shared runtime

    def _call(self, method, *args, retry_s: float = 60.0, bounded: bool = False, **kwargs):
        deadline = time.monotonic() + retry_s
        while True:
            if self.attachment is not None:
                self.attachment.check()
            timeout = max(0.0, deadline - time.monotonic()) if bounded else None
            try:
                try:
                    ref = method.remote(*args, **kwargs)
                except _FAILED:
                    _raise_if_stopped()
                    raise
                return resolve(ref, "coordinator", timeout=timeout)
            except CoordinatorUnavailableError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                time.sleep(min(0.2, remaining))  # it is restarting (Ray restarts it): try again

    # -- cluster and topics

    def info(self) -> ClusterInfo:
        return self._call(self.handle.info)

    def instance_id(self) -> str:
        """A new id per coordinator incarnation (tells a restarted one from the one before)."""
        return self._call(self.handle.instance_id)

    def topic(self, name: str, *, retry_s: float = 60.0, bounded: bool = False) -> tuple:
        """(TopicMetadata, [PartitionClient]) of a topic."""
        meta, handles = self._call(self.handle.topic, name, retry_s=retry_s, bounded=bounded)
        return meta, [PartitionClient(h, self.attachment) for h in handles]

    def reassign_partitions(self, name: str, targets: dict | None) -> dict:
        return self._call(self.handle.reassign_partitions, name, targets)

    def elect_preferred_leaders(self, name: str) -> list[int]:
        return self._call(self.handle.elect_preferred_leaders, name)

    def list_topics(self) -> list[str]:
        return self._call(self.handle.list_topics)

    def create_topic(self, name: str, partitions: int, replication_factor: int, config, schema):
        return self._call(self.handle.create_topic, name, partitions, replication_factor, config, schema)

    def delete_topic(self, name: str) -> None:
        self._call(self.handle.delete_topic, name)

    def add_partitions(self, name: str, total: int):
        return self._call(self.handle.add_partitions, name, total)

    def alter_topic_config(self, name: str, changes: dict) -> TopicConfigInfo:
        """The new config; its ``pending`` lists the partitions not reached yet."""
        return self._call(self.handle.alter_topic_config, name, changes)

    def describe_topic_config(self, name: str) -> TopicConfigInfo:
        return self._call(self.handle.describe_topic_config, name)

    def evolve_schema(self, name: str, schema) -> SchemaVersionInfo:
        """The topic's latest value schema version after registering ``schema`` (a pa.Schema)."""
        return self._call(self.handle.evolve_schema, name, schema)

    def schema_versions(self, name: str) -> list[SchemaVersionInfo]:
        """Every value schema version of the topic, oldest first."""
        return self._call(self.handle.schema_versions, name)

    def set_partition_budget(self, changes: dict) -> BudgetInfo:
        return self._call(self.handle.set_partition_budget, changes)

    def partition_budget(self) -> BudgetInfo:
        return self._call(self.handle.partition_budget)

    def shutdown(self, delete_data: bool, *, retry_s: float = 60.0) -> None:
        """Close (or with ``delete_data``, delete) every partition and kill the partition actors."""
        self._call(self.handle.shutdown, delete_data, retry_s=retry_s)

    def start_shutdown(self, delete_data: bool) -> Pending:
        """:meth:`shutdown` without waiting (several coordinators are closed at once)."""
        return Pending(self.handle.shutdown.remote(delete_data), "coordinator")

    # -- consumer groups

    def join_group(self, group_id: str, member_id: str | None, instance_id: str | None, topics: list[str],
                   session_timeout_ms: int, rebalance_timeout_ms: int, owned: list,
                   assignor: str) -> JoinResult:
        return self._call(self.handle.join_group, group_id, member_id, instance_id, topics, session_timeout_ms,
                          rebalance_timeout_ms, owned, assignor)

    def heartbeat(self, group_id: str, member_id: str, generation: int, *, retry_s: float = 60.0) -> HeartbeatStatus:
        """HeartbeatStatus.OK, or REBALANCE (join again)."""
        return self._call(self.handle.heartbeat, group_id, member_id, generation, retry_s=retry_s)

    def leave_group(self, group_id: str, member_id: str, *, retry_s: float = 60.0) -> None:
        self._call(self.handle.leave_group, group_id, member_id, retry_s=retry_s)

    def commit_offsets(self, group_id: str, member_id: str | None, generation: int, offsets: list, *,
                       retry_s: float = 60.0, bounded: bool = False) -> None:
        """``offsets``: ``(topic, partition, offset[, metadata])`` rows."""
        self._call(self.handle.commit_offsets, group_id, member_id, generation, offsets, retry_s=retry_s,
                   bounded=bounded)

    def commit_offsets_async(self, group_id: str, member_id: str | None, generation: int,
                             offsets: list) -> Pending:
        return Pending(self.handle.commit_offsets.remote(group_id, member_id, generation, offsets), "coordinator")

    def fetch_offsets(self, group_id: str, tps: list, with_metadata: bool = False) -> list:
        """Per ``(topic, partition)``, its committed offset (or ``(offset, metadata)``), or None."""
        return self._call(self.handle.fetch_offsets, group_id, tps, with_metadata)

    def fetch_all_offsets(self, group_id: str) -> tuple:
        """Every committed offset of the group: ``((topic, partition), offset, metadata)`` rows, sorted."""
        return self._call(self.handle.fetch_all_offsets, group_id)

    # -- Kafka's client-assigned groups (the gateway's JoinGroup/SyncGroup/...; each answer is
    # quick: poll a PENDING one again). A join without a member id that Ray retried after a lost
    # answer may leave an extra member behind; its session timeout removes it.

    def kafka_join_group(self, group_id: str, member_id: str | None, instance_id: str | None, protocol_type: str,
                         protocols: list[tuple[str, bytes]], session_timeout_ms: int, rebalance_timeout_ms: int,
                         client_id: str = "", client_host: str = "", *, retry_s: float = 60.0) -> KafkaJoinResult:
        return self._call(self.handle.kafka_join_group, group_id, member_id, instance_id, protocol_type,
                          list(protocols), session_timeout_ms, rebalance_timeout_ms, client_id, client_host,
                          retry_s=retry_s)

    def kafka_sync_group(self, group_id: str, member_id: str, generation: int, instance_id: str | None,
                         assignments: dict[str, bytes], assigned: dict[str, list[tuple[str, int]]] | None = None, *,
                         retry_s: float = 60.0) -> KafkaSyncResult:
        """``assigned``: each member's partitions, decoded from ``assignments`` (what describe_group shows)."""
        return self._call(self.handle.kafka_sync_group, group_id, member_id, generation, instance_id, assignments,
                          assigned, retry_s=retry_s)

    def kafka_heartbeat(self, group_id: str, member_id: str, generation: int, instance_id: str | None = None, *,
                        retry_s: float = 60.0) -> HeartbeatStatus:
        """HeartbeatStatus.OK, or REBALANCE (Kafka's REBALANCE_IN_PROGRESS); raises the other errors."""
        return self._call(self.handle.kafka_heartbeat, group_id, member_id, generation, instance_id, retry_s=retry_s)

    def kafka_leave_group(self, group_id: str, member_id: str | None, instance_id: str | None = None, *,
                          retry_s: float = 60.0) -> None:
        """Remove a member by member id, or (a static member) by instance id."""
        self._call(self.handle.kafka_leave_group, group_id, member_id, instance_id, retry_s=retry_s)

    def kafka_commit_offsets(self, group_id: str, member_id: str | None, generation: int, instance_id: str | None,
                             offsets: list, *, retry_s: float = 60.0) -> None:
        """``offsets``: ``(topic, partition, offset, metadata or None)`` rows."""
        self._call(self.handle.kafka_commit_offsets, group_id, member_id, generation, instance_id, offsets,
                   retry_s=retry_s)

    def list_groups(self) -> tuple[GroupListing, ...]:
        return self._call(self.handle.list_groups)

    def describe_group(self, group_id: str) -> GroupInfo:
        return self._call(self.handle.describe_group, group_id)

    def delete_group(self, group_id: str) -> None:
        self._call(self.handle.delete_group, group_id)

    def reset_offsets(self, group_id: str, to, topics: list[str] | None) -> OffsetReset:
        return self._call(self.handle.reset_offsets, group_id, to, topics)

    # -- producers

    def init_producer_id(self) -> tuple[int, int]:
        """A new Kafka producer ``(producer_id, epoch)`` (InitProducerId): a non-negative int64 id never
        handed out before, even by an earlier coordinator, and epoch 0. A retry after a lost answer
        gets another id; the one lost is never used."""
        return self._call(self.handle.init_producer_id)


class GatewayClient:
    """Calls to one Kafka gateway actor (actors/gateway.py)."""

    __slots__ = ("handle",)

    def __init__(self, handle):
        self.handle = handle

    def address(self) -> Pending:
        """Answers ``(broker_id, host, port)``: the broker this gateway advertises."""
        return Pending(self.handle.address.remote(), "gateway")

    def stop(self) -> Pending:
        """Close its listening socket and connections; answers None."""
        return Pending(self.handle.stop.remote(), "gateway")
