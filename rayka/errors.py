"""Every error rayka raises on purpose.

Each error says what was wrong and what to do about it. Errors a client may
retry on its own (the partition actor was restarting, a long poll raced a
roll) carry ``retriable = True``, as kafka-python's do.

::

    RaykaError
    ├── ConfigError                  bad configuration value or unknown key
    ├── InvalidTopicError            topic name breaks Kafka's naming rule
    ├── TopicExistsError
    ├── UnknownTopicError
    ├── UnknownPartitionError
    ├── RecordTooLargeError          a record over max.message.bytes; its batch is rejected whole
    ├── SchemaMismatchError          a value that does not fit the topic's Arrow schema
    ├── OffsetOutOfRangeError        names the valid [log_start, log_end] range
    ├── CorruptRecordError           a batch failed its checksum; nothing corrupt is served
    ├── LogDirLockedError            another partition log already owns the partition directory
    ├── LocalRuntimeError            the shared local runtime could not be started, reached or stopped
    ├── DuplicateSequenceError       an idempotent retry of a batch already written (internal)
    ├── OutOfOrderSequenceError      a gap in an idempotent producer's sequence numbers
    ├── BufferFullError              producer buffer_memory stayed full past max_block_ms
    ├── ProducerClosedError
    ├── ConsumerClosedError
    ├── PartitionUnavailableError    the partition actor died and is restarting (retriable)
    ├── CoordinatorUnavailableError  the coordinator actor could not be reached (retriable)
    ├── KafkaTimeoutError            an operation did not finish within its deadline
    ├── GroupError                   consumer-group protocol errors
    │   ├── IllegalGenerationError   a stale generation (a zombie) tried to commit or heartbeat
    │   ├── UnknownMemberError
    │   ├── RebalanceInProgressError
    │   ├── CommitFailedError        a commit refused because the member lost its partitions
    │   ├── InconsistentGroupProtocolError  a member's assignor differs from the group's
    │   ├── GroupNotEmptyError
    │   └── UnknownGroupError
    └── NoOffsetForPartitionError    auto_offset_reset="none" and no committed offset
"""

from __future__ import annotations

__all__ = [
    "RaykaError",
    "ConfigError",
    "InvalidTopicError",
    "TopicExistsError",
    "UnknownTopicError",
    "UnknownPartitionError",
    "RecordTooLargeError",
    "SchemaMismatchError",
    "OffsetOutOfRangeError",
    "CorruptRecordError",
    "LogDirLockedError",
    "LocalRuntimeError",
    "DuplicateSequenceError",
    "OutOfOrderSequenceError",
    "BufferFullError",
    "ProducerClosedError",
    "ConsumerClosedError",
    "PartitionUnavailableError",
    "CoordinatorUnavailableError",
    "KafkaTimeoutError",
    "GroupError",
    "IllegalGenerationError",
    "UnknownMemberError",
    "RebalanceInProgressError",
    "CommitFailedError",
    "InconsistentGroupProtocolError",
    "GroupNotEmptyError",
    "UnknownGroupError",
    "NoOffsetForPartitionError",
]


class RaykaError(Exception):
    """Base of every rayka error."""

    retriable = False


class ConfigError(RaykaError, ValueError):
    """A configuration value is invalid or a key is unknown."""


class InvalidTopicError(RaykaError, ValueError):
    """A topic name breaks Kafka's rule: 1-249 of ``[a-zA-Z0-9._-]``, not ``.`` or ``..``."""


class TopicExistsError(RaykaError):
    """create_topic on a name that already exists."""


class UnknownTopicError(RaykaError, KeyError):
    """The topic does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownPartitionError(RaykaError, KeyError):
    """The partition number is outside the topic's partitions."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class RecordTooLargeError(RaykaError):
    """A record is larger than the topic's ``max.message.bytes``; its batch was not appended."""


class SchemaMismatchError(RaykaError, TypeError):
    """A value does not fit the topic's Arrow schema; nothing of its batch was appended."""


class OffsetOutOfRangeError(RaykaError):
    """A read asked for an offset outside ``[log_start_offset, log_end_offset]``."""

    def __init__(self, message: str, *, log_start_offset: int = -1, log_end_offset: int = -1):
        super().__init__(message)
        self.log_start_offset = log_start_offset
        self.log_end_offset = log_end_offset

    def __reduce__(self):
        return (_rebuild_offset_error, (self.args[0], self.log_start_offset, self.log_end_offset))


def _rebuild_offset_error(message, start, end):
    return OffsetOutOfRangeError(message, log_start_offset=start, log_end_offset=end)


class CorruptRecordError(RaykaError):
    """A stored batch failed its checksum; it is never served."""


class LogDirLockedError(RaykaError):
    """A partition directory is already open by another partition log (another process, or
    another PartitionLog in this one); two clusters must not share a data directory."""


class LocalRuntimeError(RaykaError):
    """The shared local runtime (the detached Ray head of a data dir) could not be started,
    reached or stopped; the message names its log file (``<data_dir>/runtime.log``)."""


class DuplicateSequenceError(RaykaError):
    """An idempotent producer re-sent a batch that is already in the log."""


class OutOfOrderSequenceError(RaykaError):
    """An idempotent producer's batch skipped sequence numbers."""


class BufferFullError(RaykaError):
    """The producer's ``buffer_memory`` stayed full for ``max_block_ms``."""


class ProducerClosedError(RaykaError):
    """send() on a closed Producer."""


class ConsumerClosedError(RaykaError):
    """A call on a closed Consumer."""


class PartitionUnavailableError(RaykaError):
    """The partition actor could not be reached (it died, or is restarting)."""

    retriable = True


class CoordinatorUnavailableError(RaykaError):
    """The coordinator actor could not be reached."""

    retriable = True


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


class GroupNotEmptyError(GroupError):
    """The operation needs a group with no active members."""


class UnknownGroupError(GroupError, KeyError):
    """The group does not exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class NoOffsetForPartitionError(RaykaError):
    """``auto_offset_reset="none"`` and the group has no committed offset for a partition."""
