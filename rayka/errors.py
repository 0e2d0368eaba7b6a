"""Every error rayka raises on purpose.

Each error says what was wrong and what to do about it. Errors a client may
retry on its own (the partition actor was restarting, a long poll raced a
roll) carry ``retriable = True``, as kafka-python's do.

::

    RaykaError
    ├── ConfigError                  bad configuration value or unknown key
    │   ├── InvalidReplicationFactorError  more replicas than nodes to put them on, or < 1
    │   └── UnknownSchemaVersionError  a value schema version the typed topic does not have
    ├── InvalidTopicError            topic name breaks Kafka's naming rule
    ├── PartitionBudgetError         a create_topic/add_partitions past the nodes' memory budget
    ├── TopicExistsError
    ├── UnknownTopicError
    ├── UnknownPartitionError
    ├── RecordTooLargeError          a record over max.message.bytes; its batch is rejected whole
    ├── SchemaMismatchError          a value that does not fit the topic's Arrow schema
    │   └── IncompatibleSchemaError  a schema change its topic's schema.compatibility refuses
    ├── InvalidRecordError           a send()/send_table() argument of the wrong type or out of
    │                                range (a TypeError and a ValueError); refused alone, in the call
    ├── InputFormatError             a line or file for `rayka produce` is not in its stated format
    ├── OffsetOutOfRangeError        names the valid [log_start, log_end] range
    ├── CorruptRecordError           a batch failed its checksum; nothing corrupt is served
    ├── DeserializationError         a consumer's deserializer could not decode a record (names it)
    ├── LogDirLockedError            another partition log already owns the partition directory
    ├── LogWriteError                a write to a partition log or coordinator file failed (retriable)
    │   └── DiskFullError            ... because the file system is full (ENOSPC, EDQUOT)
    ├── LogOpenError                 a partition's files cannot be opened; names the directory, cause, remedy
    ├── LocalRuntimeError            the shared local runtime could not be started, reached or stopped
    │   └── RuntimeStoppedError      ... it was stopped (rayka runtime stop) under this process
    ├── DuplicateSequenceError       an idempotent retry of a batch already written (internal)
    ├── OutOfOrderSequenceError      a gap in an idempotent producer's sequence numbers
    ├── InvalidProducerEpochError    a Kafka producer's batch from an epoch a newer one fenced
    ├── BufferFullError              producer buffer_memory stayed full past max_block_ms
    ├── ProducerClosedError
    ├── InvalidCallError             a call that cannot work where it was made (flush() in a callback)
    ├── ConsumerClosedError
    ├── PartitionUnavailableError    the partition actor died and is restarting (retriable)
    ├── CoordinatorUnavailableError  the coordinator actor could not be reached (retriable)
    ├── NotLeaderError               the replica asked does not lead the partition (retriable: refresh metadata)
    ├── FencedLeaderEpochError       a request or replica of a stale leader epoch (retriable: refresh metadata)
    ├── NotEnoughReplicasError       acks="all" with fewer in-sync replicas than min.insync.replicas (retriable)
    ├── InvalidUpdateVersionError    an ISR change based on a stale partition epoch (internal)
    ├── KafkaTimeoutError            an operation did not finish within its deadline
    ├── GroupError                   consumer-group protocol errors
    │   ├── IllegalGenerationError   a stale generation (a zombie) tried to commit or heartbeat
    │   ├── UnknownMemberError
    │   ├── RebalanceInProgressError
    │   ├── CommitFailedError        a commit refused because the member lost its partitions
    │   ├── InconsistentGroupProtocolError  a member's assignor differs from the group's
    │   │   └── InvalidAssignmentError  a Kafka group leader's SyncGroup gave a partition to two members
    │   ├── FencedInstanceIdError    a static member (group.instance.id) replaced by a newer one
    │   ├── GroupMaxSizeReachedError a join past a Kafka group's member limit
    │   ├── GroupNotEmptyError
    │   └── UnknownGroupError
    └── NoOffsetForPartitionError    auto_offset_reset="none" and no committed offset

    RaykaWarning (UserWarning)
    └── OldTimestampWarning          a record older than its topic's retention.ms (retention deletes it)
"""

from __future__ import annotations

from rayka._diskspace import describe_write_failure

__all__ = [
    "RaykaError",
    "ConfigError",
    "InvalidReplicationFactorError",
    "UnknownSchemaVersionError",
    "InvalidTopicError",
    "PartitionBudgetError",
    "TopicExistsError",
    "UnknownTopicError",
    "UnknownPartitionError",
    "RecordTooLargeError",
    "SchemaMismatchError",
    "IncompatibleSchemaError",
    "InvalidRecordError",
    "InputFormatError",
    "OffsetOutOfRangeError",
    "CorruptRecordError",
    "DeserializationError",
    "LogDirLockedError",
    "LogWriteError",
    "DiskFullError",
    "LogOpenError",
    "LocalRuntimeError",
    "RuntimeStoppedError",
    "DuplicateSequenceError",
    "OutOfOrderSequenceError",
    "InvalidProducerEpochError",
    "BufferFullError",
    "ProducerClosedError",
    "InvalidCallError",
    "ConsumerClosedError",
    "PartitionUnavailableError",
    "CoordinatorUnavailableError",
    "NotLeaderError",
    "FencedLeaderEpochError",
    "NotEnoughReplicasError",
    "InvalidUpdateVersionError",
    "KafkaTimeoutError",
    "GroupError",
    "IllegalGenerationError",
    "UnknownMemberError",
    "RebalanceInProgressError",
    "CommitFailedError",
    "InconsistentGroupProtocolError",
    "GroupNotEmptyError",
    "UnknownGroupError",
    "InvalidAssignmentError",
    "FencedInstanceIdError",
    "GroupMaxSizeReachedError",
    "NoOffsetForPartitionError",
    "RaykaWarning",
    "OldTimestampWarning",
]


class RaykaError(Exception):
    """Base of every rayka error.

    A subclass that carries keyword fields names them in ``_fields``, so that pickling (errors
    cross Ray actor boundaries) rebuilds it with them; its ``__init__`` takes ``(message, **fields)``.
    """

    retriable = False
    _fields: tuple[str, ...] = ()

    def __reduce__(self):
        if not self._fields:
            return super().__reduce__()
        return (_rebuild, (type(self), self.args[0], {f: getattr(self, f) for f in self._fields}))


def _rebuild(cls, message, fields):
    return cls(message, **fields)


class _KeyErrorMessage(KeyError):
    """A KeyError whose str() is its message (KeyError alone would quote it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ConfigError(RaykaError, ValueError):
    """A configuration value is invalid or a key is unknown."""


class InvalidReplicationFactorError(ConfigError):
    """A replication factor below 1, or above the Ray nodes alive to hold each replica on its own."""


class UnknownSchemaVersionError(ConfigError):
    """A value schema version a typed topic does not have (or any, for an untyped topic);
    ``version`` is the one asked for, ``versions`` the topic's (1 = oldest)."""

    _fields = ("version", "versions")

    def __init__(self, message: str, *, version: int | None = None, versions: tuple = ()):
        super().__init__(message)
        self.version = version
        self.versions = tuple(versions)


class InvalidTopicError(RaykaError, ValueError):
    """A topic name breaks Kafka's rule: 1-249 of ``[a-zA-Z0-9._-]``, not ``.`` or ``..``."""


class PartitionBudgetError(RaykaError):
    """A ``create_topic``/``add_partitions`` would need more partition actors than the alive
    Ray nodes' memory holds (each partition is an actor process); nothing was created.

    Carries the figures it was decided on: ``per_partition_bytes``, ``existing``,
    ``requested`` and ``limit``.
    """

    _fields = ("per_partition_bytes", "existing", "requested", "limit")

    def __init__(self, message: str, *, per_partition_bytes: int = 0, existing: int = 0, requested: int = 0,
                 limit: int = 0):
        super().__init__(message)
        self.per_partition_bytes = per_partition_bytes
        self.existing = existing
        self.requested = requested
        self.limit = limit


class TopicExistsError(RaykaError):
    """create_topic on a name that already exists."""


class UnknownTopicError(RaykaError, _KeyErrorMessage):
    """The topic does not exist."""


class UnknownPartitionError(RaykaError, _KeyErrorMessage):
    """The partition number is outside the topic's partitions."""


class RecordTooLargeError(RaykaError):
    """A record is larger than the topic's ``max.message.bytes``; its batch was not appended.

    ``max_message_bytes`` is the limit that refused it (0 when not known): a producer whose
    batch a partition refuses under a lower limit than it checked splits the batch by it."""

    _fields = ("max_message_bytes",)

    def __init__(self, message: str, *, max_message_bytes: int = 0):
        super().__init__(message)
        self.max_message_bytes = max_message_bytes


class SchemaMismatchError(RaykaError, TypeError):
    """A value does not fit the topic's Arrow schema; nothing of its batch was appended."""


class IncompatibleSchemaError(SchemaMismatchError):
    """A new schema version its topic's ``schema.compatibility`` mode refuses; nothing changed.

    The message lists every offending field and why; ``mode`` is the mode it was checked under
    and ``incompatibilities`` the problems found (coordinator.schema_compat.Incompatibility).
    """

    _fields = ("mode", "incompatibilities")

    def __init__(self, message: str, *, mode: str = "", incompatibilities: tuple = ()):
        super().__init__(message)
        self.mode = mode
        self.incompatibilities = tuple(incompatibilities)


class InvalidRecordError(RaykaError, TypeError, ValueError):
    """An argument of ``send()`` or a column of ``send_table()`` has the wrong type or is out of
    range (a str timestamp, a negative one, a bool partition, headers that are not pairs).

    Raised by the call itself, naming the argument; nothing was queued, so the other records of
    the batch it would have joined are not affected. It is both a TypeError and a ValueError,
    so code that caught either keeps working.
    """


class InputFormatError(RaykaError, ValueError):
    """A line or file given to ``rayka produce`` is not valid in its format (JSON lines, CSV,
    Parquet) or names fields the topic does not have; the message names the line or file."""


class OffsetOutOfRangeError(RaykaError):
    """A read asked for an offset outside ``[log_start_offset, log_end_offset]``."""

    _fields = ("log_start_offset", "log_end_offset")

    def __init__(self, message: str, *, log_start_offset: int = -1, log_end_offset: int = -1):
        super().__init__(message)
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset


class CorruptRecordError(RaykaError):
    """A stored batch failed its checksum; it is never served. Where the damaged offsets are
    known, ``first_offset`` and ``next_offset`` (the offset to seek to) say so, else None."""

    _fields = ("first_offset", "next_offset")

    def __init__(self, message: str, *, first_offset: int | None = None, next_offset: int | None = None):
        super().__init__(message)
        self.first_offset = first_offset
        self.next_offset = next_offset


class DeserializationError(RaykaError, ValueError):
    """A record's key or value could not be decoded by the consumer's deserializer (Kafka's
    RecordDeserializationException). The records before it were returned; the partition's
    position is left at ``offset``, so ``seek(tp, next_offset)`` skips the record."""

    _fields = ("topic", "partition", "offset", "next_offset", "deserializer")

    def __init__(self, message: str, *, topic: str = "", partition: int = -1, offset: int = -1,
                 next_offset: int = -1, deserializer: str = ""):
        super().__init__(message)
        self.topic, self.partition, self.offset = topic, partition, offset
        self.next_offset, self.deserializer = next_offset, deserializer


class LogDirLockedError(RaykaError):
    """A partition directory is already open by another partition log (another process, or
    another PartitionLog in this one); two clusters must not share a data directory."""


class LogWriteError(RaykaError):
    """Writing a partition log (or a coordinator file) failed with an OS error (EIO, ENOSPC, ...).

    Nothing of the failed write was kept: the file was cut back to its last whole record and
    the log's state is as before the call, so everything acknowledged earlier stays readable
    and a retry (the producer retries on its own until ``delivery_timeout_ms``) writes no
    duplicate. ``path`` is the directory or file, ``errno`` the OS error number and
    ``free_bytes`` the space left on its file system (os.statvfs; -1 if unknown).
    """

    retriable = True
    _fields = ("path", "errno", "free_bytes")

    def __init__(self, message: str, *, path: str = "", errno: int | None = None, free_bytes: int = -1):
        super().__init__(message)
        self.path, self.errno, self.free_bytes = path, errno, free_bytes

    @classmethod
    def from_os_error(cls, exc: OSError, path, what: str) -> "LogWriteError":
        """The rayka error for ``exc``, raised while doing ``what`` in ``path``: a DiskFullError
        for ENOSPC/EDQUOT, else a LogWriteError; the message names the free space left."""
        full, message, free = describe_write_failure(exc, str(path), what)
        return (DiskFullError if full else LogWriteError)(message, path=str(path), errno=exc.errno, free_bytes=free)


class DiskFullError(LogWriteError):
    """The file system holding a partition log or coordinator file is full (ENOSPC or EDQUOT)."""


class LogOpenError(RaykaError):
    """A partition log cannot be opened from its files (a segment of another log, an unreadable
    file or directory, damage recovery cannot step over). The partition answers every call with
    this error, naming the directory, the cause and what to do, until its files are fixed; a call
    that arrives tries to open again (at most once every few seconds), so fixing them is enough."""

    _fields = ("directory", "cause")

    def __init__(self, message: str, *, directory: str = "", cause: str = ""):
        super().__init__(message)
        self.directory = directory
        self.cause = cause


class LocalRuntimeError(RaykaError):
    """The shared local runtime (the detached Ray head of a data dir) could not be started,
    reached or stopped; the message names its log file (``<data_dir>/runtime.log``)."""


class RuntimeStoppedError(LocalRuntimeError):
    """The shared local runtime this process was attached to was stopped (``rayka runtime stop``,
    its idle timeout) or its head exited: every later call fails with this at once, not retried.
    What was acknowledged before is on disk; ``rayka.connect()`` starts a new runtime."""

    retriable = False


class DuplicateSequenceError(RaykaError):
    """An idempotent producer re-sent a batch that is already in the log."""


class OutOfOrderSequenceError(RaykaError):
    """An idempotent producer's batch skipped sequence numbers."""


class InvalidProducerEpochError(RaykaError):
    """A Kafka producer's batch carries an older epoch than the partition knows for its producer
    id: a newer instance of that producer (InitProducerId again) fenced it. Not retriable; Kafka's
    INVALID_PRODUCER_EPOCH."""


class BufferFullError(RaykaError):
    """The producer's ``buffer_memory`` stayed full for ``max_block_ms``."""


class ProducerClosedError(RaykaError):
    """send() on a closed Producer."""


class InvalidCallError(RaykaError, RuntimeError):
    """A call that cannot work where it was made: ``flush()`` or ``close()`` of a Producer
    inside one of its callbacks would wait for that callback to return (Kafka's Java client
    refuses it too). Nothing was changed; flush after the callback, from your own thread."""


class ConsumerClosedError(RaykaError):
    """A call on a closed Consumer."""


class PartitionUnavailableError(RaykaError):
    """The partition actor could not be reached (it died, or is restarting)."""

    retriable = True


class CoordinatorUnavailableError(RaykaError):
    """The coordinator actor could not be reached."""

    retriable = True


class NotLeaderError(RaykaError):
    """The replica asked is not the leader of the partition (Kafka's NOT_LEADER_OR_FOLLOWER): it
    was deposed, or the request named a newer leader epoch than it knows. Ask the coordinator
    for the partition's leader and retry there."""

    retriable = True


class FencedLeaderEpochError(RaykaError):
    """A request carried a leader epoch older than the partition's (Kafka's FENCED_LEADER_EPOCH):
    the sender's view of the partition is stale. It refreshes its metadata and retries; a
    deposed leader that gets this stops acting as leader."""

    retriable = True


class NotEnoughReplicasError(RaykaError):
    """An ``acks="all"`` append found fewer in-sync replicas than the topic's
    ``min.insync.replicas``; the batch was not appended (nothing of it is visible) unless the
    message says it was refused after the append. Retried until ``delivery_timeout_ms``."""

    retriable = True


class InvalidUpdateVersionError(RaykaError):
    """An ISR change (AlterPartition) was based on a stale partition epoch: the partition's
    state changed since the leader read it. The leader adopts the current state and proposes
    again (Kafka's INVALID_UPDATE_VERSION); users do not see it."""


class KafkaTimeoutError(RaykaError, TimeoutError):
    """An operation did not complete within its deadline."""

    retriable = True


class GroupError(RaykaError):
    """A consumer-group protocol error."""


class IllegalGenerationError(GroupError):
    """A member of a stale generation (a zombie) tried to commit or heartbeat."""


class UnknownMemberError(GroupError):
    """The member id is not (or no longer) in the group."""


class RebalanceInProgressError(GroupError):
    """The group is rebalancing; rejoin and retry."""

    retriable = True


class CommitFailedError(IllegalGenerationError, UnknownMemberError):
    """A commit the group refused because this member no longer owns the partitions (Kafka's
    CommitFailedException): the group rebalanced without it, or it was removed (session or
    max_poll_interval_ms timeout). Another member re-reads from the last committed offset.

    It subclasses both errors the coordinator refuses with, so code that caught those keeps working.
    """


class InconsistentGroupProtocolError(GroupError):
    """A member asked for a partition assignment strategy the group's members do not use
    (Kafka's INCONSISTENT_GROUP_PROTOCOL); the join is refused and nothing changes."""


class InvalidAssignmentError(InconsistentGroupProtocolError):
    """A Kafka group leader's SyncGroup assignment is not usable (a partition given to two
    members, or a value of the wrong type); nothing is stored and the group stays as it was."""


class FencedInstanceIdError(GroupError):
    """A static member (``group.instance.id``) whose place a newer member of the same instance id
    took (Kafka's FENCED_INSTANCE_ID): this one is a zombie; stop it (two processes share one
    instance id), or give each process its own ``group.instance.id``."""


class GroupMaxSizeReachedError(GroupError):
    """A new member's join refused: the group has as many members as it may (Kafka's
    GROUP_MAX_SIZE_REACHED). Stop members that are not needed, or use another group id."""


class GroupNotEmptyError(GroupError):
    """The operation needs a group with no active members."""


class UnknownGroupError(GroupError, _KeyErrorMessage):
    """The group does not exist."""


class NoOffsetForPartitionError(RaykaError):
    """``auto_offset_reset="none"`` and the group has no committed offset for a partition."""


class RaykaWarning(UserWarning):
    """Base of the warnings rayka gives (``warnings.simplefilter("ignore", RaykaWarning)``)."""


class OldTimestampWarning(RaykaWarning):
    """A produced record is older than its topic's ``retention.ms``: it is written, but retention
    deletes it with its segment as soon as the segment holds nothing newer (at the next pass,
    if the records beside it are as old). Given once per producer and topic."""
