"""The messages that cross between clients and actors: one frozen type per answer.

Both sides import this module: the actors (``rayka.actors``) and the coordinator
logic build these values, the client stubs (``rayka.clients.stubs``) hand them
to the clients. It imports neither Ray nor Arrow, so the pure packages and any
later transport can use it as they are.

Rules for a message type:

- frozen, slotted dataclass (or, where code on the other side unpacks it as a
  pair, a NamedTuple: ``LogBounds``, ``TimeLookup``);
- cheap to pickle: fields are ints, strings, bytes, tuples and Arrow buffers, and
  buffers stay buffers (``FetchResponse.payload``), never converted, so large
  fetches still reach the consumer zero-copy through Ray's object store;
- no behaviour beyond small derived properties.

==================  ==========================================  =======================
type                answer of                                   built in
==================  ==========================================  =======================
FetchResponse       ``PartitionActor.fetch``                    actors/partition.py
AppendResult        ``PartitionActor.append``                   actors/partition.py
PartitionStats      ``PartitionActor.stats``                    actors/partition.py
LogBounds           ``PartitionActor.offsets``                  actors/partition.py
TimeLookup          ``PartitionActor.offset_for_time``          actors/partition.py
JoinResult          ``CoordinatorActor.join_group``             coordinator/groups.py
ClusterInfo         ``CoordinatorActor.info``                   actors/coordinator.py
ReplicaFetch*       ``PartitionActor.replica_fetch``            actors/partition.py
ReplicaStatus       ``PartitionActor.status``                   actors/partition.py
==================  ==========================================  =======================
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass
from typing import NamedTuple

__all__ = ["FetchResponse", "AppendResult", "PartitionStats", "LogBounds", "TimeLookup", "JoinStatus",
           "JoinResult", "ClusterInfo", "ReplicaFetchRequest", "ReplicaFetchResponse", "ReplicaStatus"]


def _pickled_by_fields(cls):
    """Pickle instances as ``cls(*fields)``: half the work of the default for a frozen slotted
    dataclass (its ``__getstate__``/``__setstate__``), paid on every fetch and append."""
    fields = operator.attrgetter(*cls.__slots__)
    cls.__reduce__ = lambda self: (cls, fields(self))
    return cls


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class FetchResponse:
    """Stored messages of one partition holding offsets ``offset .. next_offset - 1``.

    ``payload`` is the stored Arrow IPC record-batch messages back to back: ``bytes``
    when small (one object inline in Ray's reply), else a tuple of zero-copy Arrow
    buffers. Messages may start before ``offset`` (a reader slices them off).
    ``schema`` is the log's serialised Arrow schema when the fetch asked for it (a
    consumer asks once per partition), else None. ``records`` is
    ``next_offset - offset`` (0: nothing new).
    """

    offset: int
    payload: bytes | tuple
    records: int
    next_offset: int
    log_start_offset: int
    high_watermark: int
    schema: bytes | None = None

    @classmethod
    def empty(cls, offset: int, schema: bytes | None = None) -> "FetchResponse":
        """Nothing at ``offset`` (a closing or deleted partition); bounds unknown (-1)."""
        return cls(offset, b"", 0, offset, -1, -1, schema)


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a batch landed. ``duplicate`` marks an idempotent re-send answered from state."""

    base_offset: int
    count: int
    log_append_time_ms: int
    log_start_offset: int
    duplicate: bool = False

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.count - 1


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class PartitionStats:
    """What ``Admin.describe_topic`` shows of one partition.

    ``damaged_offsets`` holds ``(first, last)`` of each damaged run kept in place;
    ``recovered_batches`` and ``truncated_bytes`` are what the last recovery found.
    """

    log_start_offset: int
    log_end_offset: int
    size_bytes: int
    segments: int
    node_id: str
    recovered_batches: int = 0
    truncated_bytes: int = 0
    damaged_offsets: tuple[tuple[int, int], ...] = ()


class LogBounds(NamedTuple):
    """``(log_start_offset, log_end_offset)`` of a partition. A pair because the
    coordinator's lag and reset logic unpacks it as one."""

    log_start_offset: int
    log_end_offset: int


class TimeLookup(NamedTuple):
    """``(offset, timestamp_ms)`` of the earliest record at or after a time."""

    offset: int
    timestamp_ms: int


class HeartbeatStatus(str, enum.Enum):
    """How a ``heartbeat`` was answered (a str enum: it compares equal to "ok" / "rebalance")."""

    #: Still a member of the current generation: carry on.
    OK = "ok"
    #: A rebalance began (or an assignment waits to be collected): join again on the next poll.
    REBALANCE = "rebalance"


class JoinStatus(enum.Enum):
    """How a ``join_group`` was answered."""

    #: The member's assignment for ``generation`` is in the answer.
    OK = "ok"
    #: The coordinator is still gathering the members of the new generation: join again.
    PENDING = "pending"


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class JoinResult:
    """The answer to ``join_group``.

    With ``OK``, ``assignment`` holds the member's ``(topic, partition)`` pairs of
    ``generation``, and ``rebalance`` asks it to join again at once (a cooperative
    hand-over is still going on). With ``PENDING`` the assignment is empty.
    """

    status: JoinStatus
    member_id: str
    generation: int
    assignment: tuple[tuple[str, int], ...] = ()
    rebalance: bool = False

    @property
    def ok(self) -> bool:
        return self.status is JoinStatus.OK


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """Who a coordinator is: its rayka cluster name, Ray namespace and data dir."""

    cluster: str
    namespace: str
    data_dir: str


# -- replication (a follower's fetch from its leader, a replica's status) -------------------------


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReplicaFetchRequest:
    """A follower's fetch from its leader (Kafka's fetch with a replica id).

    ``fetch_offset`` is the follower's log end (it holds every record below it),
    ``last_fetched_epoch`` its epoch cache's latest epoch (-1: none), ``leader_epoch``
    the epoch it follows (the leader fences an older one).
    """

    replica_id: int
    fetch_offset: int
    last_fetched_epoch: int
    leader_epoch: int
    max_bytes: int
    max_wait_ms: int


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReplicaFetchResponse:
    """The leader's answer to a ReplicaFetchRequest.

    ``payload``: stored record-batch messages from ``fetch_offset`` on, verbatim (bytes,
    or a tuple of buffers), for ``PartitionLog.append_replicated``. ``diverging``: the
    follower's log parts from the leader's: ``(epoch, end_offset)`` to truncate by
    (divergence.truncation_for), and the payload is empty. ``out_of_range``: the fetch
    offset is outside the leader's log (below its start after retention), payload empty.
    """

    payload: bytes | tuple
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    diverging: tuple[int, int] | None = None
    out_of_range: bool = False


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What a partition replica reports of itself (the controller's liveness check).

    ``role`` is "leader", "follower", or "none" (not told its role yet, or its log cannot
    open); the epochs are those of the partition state it acts on (-1: none yet).
    ``damaged``: its log keeps holes (corrupt batches); the controller moves leadership to a
    healthy in-sync replica, and as a follower it copies the damaged range again.
    """

    replica_id: int
    role: str
    leader_epoch: int
    partition_epoch: int
    log_start_offset: int
    log_end_offset: int
    high_watermark: int
    isr: tuple[int, ...] = ()
    damaged: bool = False  # its log holds damaged offsets (holes) that a healthy replica may have
    pid: int = -1  # the actor's process id (operators; fault tests pause or kill it)
