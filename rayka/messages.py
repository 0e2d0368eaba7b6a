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
KafkaJoinResult     ``CoordinatorActor.kafka_join_group``       coordinator/client_groups.py
KafkaSyncResult     ``CoordinatorActor.kafka_sync_group``       coordinator/client_groups.py
ClusterInfo         ``CoordinatorActor.info``                   actors/coordinator.py
GroupListing        ``CoordinatorActor.list_groups`` (tuple)    coordinator/group_service.py
GroupInfo           ``CoordinatorActor.describe_group``         coordinator/group_service.py
OffsetReset         ``CoordinatorActor.reset_offsets``          coordinator/group_service.py
TopicConfigInfo     ``CoordinatorActor.alter/describe_topic_    coordinator/topic_config_service.py
                    config``
BudgetInfo          ``CoordinatorActor.(set_)partition_budget`` coordinator/topic_config_service.py
SchemaVersionInfo   ``CoordinatorActor.evolve_schema`` and      actors/coordinator.py
                    ``schema_versions`` (a list)
ReplicaFetch*       ``PartitionActor.replica_fetch``            actors/partition.py
ReplicaStatus       ``PartitionActor.status``                   actors/partition.py
==================  ==========================================  =======================
"""

from __future__ import annotations

import enum
import operator
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["FetchResponse", "AppendResult", "PartitionStats", "LogBounds", "TimeLookup", "JoinStatus",
           "JoinResult", "KafkaJoinResult", "KafkaSyncResult", "ClusterInfo", "GroupListing", "GroupMemberInfo", "GroupPartitionInfo", "GroupInfo",
           "OffsetReset", "TopicConfigInfo", "BudgetInfo", "SchemaVersionInfo", "ReplicaFetchRequest", "ReplicaFetchResponse",
           "ReplicaStatus"]


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
    ``next_offset - offset`` (0: nothing new). ``replica_id``: the replica that answered
    (the leader, or an in-sync follower for a replica read; -1: not known).
    A pushed-down fetch (``columns=``/``filter=``, partitions/pushdown.py) answers one fresh
    message of the kept rows (columns ``offset`` and those asked), ``schema`` being its
    schema, ``records`` the rows kept (0 possible) and ``next_offset`` where to resume.
    ``schema_version``: the value-schema version the payload is in (the reader's: batches
    stored under another are projected into it; 0: an untyped topic).
    """

    offset: int
    payload: bytes | tuple
    records: int
    next_offset: int
    log_start_offset: int
    high_watermark: int
    schema: bytes | None = None
    replica_id: int = -1
    schema_version: int = 0

    @classmethod
    def empty(cls, offset: int, schema: bytes | None = None) -> "FetchResponse":
        """Nothing at ``offset`` (a closing or deleted partition); bounds unknown (-1)."""
        return cls(offset, b"", 0, offset, -1, -1, schema)


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class AppendResult:
    """Where a batch landed. ``duplicate`` marks an idempotent re-send answered from state;
    ``leader_epoch`` is the epoch the leader wrote it at, told when the acks="all" wait is
    asked for apart (``PartitionActor.wait_acked``), else -1."""

    base_offset: int
    count: int
    log_append_time_ms: int
    log_start_offset: int
    duplicate: bool = False
    leader_epoch: int = -1

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.count - 1


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class PartitionStats:
    """What ``Admin.describe_topic`` shows of one partition.

    ``damaged_offsets`` holds ``(first, last)`` of each damaged run kept in place;
    ``recovered_batches`` and ``truncated_bytes`` are what the last recovery found; ``reads``
    counts the bytes fetches read from segments and shipped, full and pushed down.
    """

    log_start_offset: int
    log_end_offset: int
    size_bytes: int
    segments: int
    node_id: str
    recovered_batches: int = 0
    truncated_bytes: int = 0
    damaged_offsets: tuple[tuple[int, int], ...] = ()
    #: Fetch counters since the actor started: ``full_fetches``, ``full_read_bytes``,
    #: ``full_shipped_bytes`` and the same three for ``pushdown_`` reads (partitions/pushdown.py).
    reads: dict | None = None


class LogBounds(NamedTuple):
    """``(log_start_offset, log_end_offset)`` of a partition. A pair because the
    coordinator's lag and reset logic unpacks it as one."""

    log_start_offset: int
    log_end_offset: int


class SchemaVersionInfo(NamedTuple):
    """``(version, schema bytes, registered_ms)``: one value schema version of a typed topic,
    the schema as ``pa.Schema.serialize()`` bytes (this module imports no Arrow)."""

    version: int
    schema: bytes
    registered_ms: int


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
class KafkaJoinResult:
    """The answer to a client-assigned (Kafka) ``kafka_join_group``.

    ``PENDING``: the rebalance is still gathering members; ``member_id`` is this member's id
    (new on a first join: the gateway tells the client, which joins again with it). ``OK``:
    the new ``generation``, the chosen ``protocol_name`` (the assignor every member supports),
    the ``leader``'s member id and, for the leader only, every member's
    ``(member_id, instance_id, metadata)`` with its metadata for the chosen protocol.
    """

    status: JoinStatus
    member_id: str
    generation: int = -1
    protocol_type: str = ""
    protocol_name: str | None = None
    leader: str | None = None
    members: tuple[tuple[str, str | None, bytes], ...] = ()

    @property
    def ok(self) -> bool:
        return self.status is JoinStatus.OK


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class KafkaSyncResult:
    """The answer to ``kafka_sync_group``: ``PENDING`` until the leader sent the generation's
    assignment, then (``OK``) this member's assignment bytes as the leader encoded them (b"" if
    the leader gave it nothing) and the group's protocol name."""

    status: JoinStatus
    assignment: bytes = b""
    protocol_name: str | None = None

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


# -- admin answers of the coordinator ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupListing:
    """One group of ``list_groups``: its id, state (a GroupState value) and member count."""

    group_id: str
    state: str
    members: int
    protocol_type: str = ""  # "" for rayka's own groups; a Kafka group's ("consumer")

    def to_dict(self) -> dict:
        """``{"group_id", "state", "members"}``, as ``Admin.list_groups`` returns it."""
        return {"group_id": self.group_id, "state": self.state, "members": self.members}


@dataclass(frozen=True, slots=True)
class GroupMemberInfo:
    """One member of a described group: ids, subscribed topics (sorted) and its partitions."""

    member_id: str
    instance_id: str | None
    topics: tuple[str, ...]
    assignment: tuple[tuple[str, int], ...]
    # Kafka (client-assigned) members only: as the client told, and the leader assigned, them.
    client_id: str = ""
    client_host: str = ""
    metadata: bytes = b""
    assignment_bytes: bytes = b""


@dataclass(frozen=True, slots=True)
class GroupPartitionInfo:
    """One partition a group reads or committed: its committed offset (None: none), the log's
    start and end offsets (None: the partition did not answer, or its topic is gone) and the
    member that owns it (None: nobody)."""

    topic: str
    partition: int
    committed: int | None
    log_start_offset: int | None
    end_offset: int | None
    member: str | None


@dataclass(frozen=True, slots=True)
class GroupInfo:
    """The answer to ``describe_group``: state (a GroupState value), the assignor the members
    use (None before any joined), generation, leader, members and per-partition offsets;
    ``protocol_type`` is "" for rayka's own groups, the Kafka clients' one ("consumer") for a
    client-assigned group."""

    group_id: str
    state: str
    protocol: str | None
    generation: int
    leader: str | None
    members: tuple[GroupMemberInfo, ...]
    partitions: tuple[GroupPartitionInfo, ...]
    protocol_type: str = ""


@dataclass(frozen=True, slots=True)
class OffsetReset:
    """The answer to ``reset_offsets``: the new committed offset of each partition, as
    ``((topic, partition), offset)`` pairs in partition order."""

    offsets: tuple[tuple[tuple[str, int], int], ...]

    def as_dict(self) -> dict[tuple[str, int], int]:
        """``{(topic, partition): offset}``."""
        return dict(self.offsets)


@dataclass(frozen=True, slots=True)
class TopicConfigInfo:
    """A topic's whole config (Kafka-style ``(key, value)`` pairs, in the metadata's order) at its
    ``version`` (0: never changed). From ``alter_topic_config``, ``pending`` lists the
    partitions that did not confirm the new config yet (they get it when they answer again)."""

    config: tuple[tuple[str, Any], ...]
    version: int
    pending: tuple[int, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """The config as ``{"retention.ms": ..., ...}``."""
        return dict(self.config)


@dataclass(frozen=True, slots=True)
class BudgetInfo:
    """The partition budget in force (rayka.config.PartitionBudget's fields), each alive node's
    Ray ``memory``, the limit it makes (None: no limit) and how many partitions exist."""

    partition_memory_bytes: int
    memory_fraction: float
    max_partitions: int | None
    node_memory_bytes: tuple[float, ...]
    limit: int | None
    partitions: int

    def to_dict(self) -> dict[str, Any]:
        """The Kafka-style dict ``Admin.partition_budget`` returns: the budget's keys
        (``partition.memory.bytes``, ...), ``node_memory_bytes``, ``limit``, ``partitions``."""
        return {"partition.memory.bytes": self.partition_memory_bytes,
                "partition.memory.fraction": self.memory_fraction, "max.partitions": self.max_partitions,
                "node_memory_bytes": list(self.node_memory_bytes), "limit": self.limit,
                "partitions": self.partitions}


# -- replication (a follower's fetch from its leader, a replica's status) -------------------------


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReplicaFetchRequest:
    """A follower's fetch from its leader (Kafka's fetch with a replica id).

    ``fetch_offset`` is the follower's log end (it holds every record below it),
    ``last_fetched_epoch`` its epoch cache's latest epoch (-1: none), ``leader_epoch``
    the epoch it follows (the leader fences an older one). ``high_watermark``: the HW
    the follower knows, sent while consumers read from it (KIP-392), so that the leader
    answers at once when its HW has moved past it instead of waiting out the long-poll
    for new records; -1 (no reads there): only new records end the wait.
    """

    replica_id: int
    fetch_offset: int
    last_fetched_epoch: int
    leader_epoch: int
    max_bytes: int
    max_wait_ms: int
    high_watermark: int = -1


@_pickled_by_fields
@dataclass(frozen=True, slots=True)
class ReplicaFetchResponse:
    """The leader's answer to a ReplicaFetchRequest.

    ``payload``: stored record-batch messages from ``fetch_offset`` on, verbatim (bytes,
    or a tuple of buffers), for ``PartitionLog.append_replicated``. ``diverging``: the
    follower's log parts from the leader's: ``(epoch, end_offset)`` to truncate by
    (divergence.truncation_for), and the payload is empty. ``out_of_range``: the fetch
    offset is outside the leader's log (below its start after retention), payload empty.
    ``isr``: the leader's committed ISR (a follower serves consumer reads only while it is
    in it; empty: not told). ``schema_version``: the value-schema version of the payload's
    batches (one per answer; -1: not told, the latest), and ``value_schema`` that version's
    serialised value schema when it is above 1 (a follower may not know it yet).
    """

    payload: bytes | tuple
    high_watermark: int
    log_start_offset: int
    log_end_offset: int
    diverging: tuple[int, int] | None = None
    out_of_range: bool = False
    isr: tuple[int, ...] = ()
    schema_version: int = -1
    value_schema: bytes | None = None


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
