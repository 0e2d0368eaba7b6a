"""rayka errors as Kafka error codes, and the gateway's own protocol errors.

Handlers catch a ``rayka.errors`` exception per partition (or per group call) and
answer :func:`error_code` of it, so a client sees the code it acts on (refresh
metadata, rejoin the group, reset the offset). An exception that maps to nothing
is UNKNOWN_SERVER_ERROR (-1) and is logged with its traceback: it is a bug or an
outage, never a silent answer.

::

    RaykaError
    └── ProtocolError              a frame that is not a Kafka request: the connection is closed
        ├── FrameTooLargeError     a size prefix over socket.request.max.bytes (or negative)
        └── UnsupportedApiError    an api key the gateway does not serve (no error answer exists)
"""

from __future__ import annotations

import logging

from .. import errors as E

__all__ = ["ProtocolError", "FrameTooLargeError", "UnsupportedApiError", "Code", "error_code", "error_message"]

log = logging.getLogger("rayka.gateway")


class ProtocolError(E.RaykaError, ValueError):
    """A frame the gateway cannot read as a Kafka request (bad size, header or body)."""


class FrameTooLargeError(ProtocolError):
    """A frame's size prefix is negative or over ``socket.request.max.bytes``."""


class UnsupportedApiError(ProtocolError):
    """A request for an api key the gateway does not serve: Kafka has no error answer for it."""


class Code:
    """The Kafka error codes the gateway answers (names as in Kafka's ``Errors`` enum)."""

    UNKNOWN_SERVER_ERROR = -1
    NONE = 0
    OFFSET_OUT_OF_RANGE = 1
    CORRUPT_MESSAGE = 2
    UNKNOWN_TOPIC_OR_PARTITION = 3
    NOT_LEADER_OR_FOLLOWER = 6
    REQUEST_TIMED_OUT = 7
    MESSAGE_TOO_LARGE = 10
    COORDINATOR_LOAD_IN_PROGRESS = 14
    COORDINATOR_NOT_AVAILABLE = 15
    NOT_COORDINATOR = 16
    INVALID_TOPIC_EXCEPTION = 17
    NOT_ENOUGH_REPLICAS = 19
    ILLEGAL_GENERATION = 22
    INCONSISTENT_GROUP_PROTOCOL = 23
    UNKNOWN_MEMBER_ID = 25
    INVALID_SESSION_TIMEOUT = 26
    REBALANCE_IN_PROGRESS = 27
    UNSUPPORTED_VERSION = 35
    TOPIC_ALREADY_EXISTS = 36
    INVALID_PARTITIONS = 37
    INVALID_REPLICATION_FACTOR = 38
    INVALID_CONFIG = 40
    INVALID_REQUEST = 42
    OUT_OF_ORDER_SEQUENCE_NUMBER = 45
    DUPLICATE_SEQUENCE_NUMBER = 46
    INVALID_PRODUCER_EPOCH = 47
    KAFKA_STORAGE_ERROR = 56
    NON_EMPTY_GROUP = 68
    GROUP_ID_NOT_FOUND = 69
    FENCED_LEADER_EPOCH = 74
    GROUP_MAX_SIZE_REACHED = 81
    FENCED_INSTANCE_ID = 82
    INVALID_RECORD = 87


# Most specific first: CommitFailedError is both an IllegalGenerationError and an
# UnknownMemberError, and Kafka clients rejoin on ILLEGAL_GENERATION. NOT_COORDINATOR is never
# answered: every gateway is the coordinator of every group (their state is in rayka's
# coordinator actor), and that actor restarting is COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
_TABLE: tuple[tuple[type, int], ...] = (
    (E.InvalidReplicationFactorError, Code.INVALID_REPLICATION_FACTOR),  # a ConfigError
    (E.FencedInstanceIdError, Code.FENCED_INSTANCE_ID),
    (E.GroupMaxSizeReachedError, Code.GROUP_MAX_SIZE_REACHED),
    (E.InvalidProducerEpochError, Code.INVALID_PRODUCER_EPOCH),
    (E.UnknownTopicError, Code.UNKNOWN_TOPIC_OR_PARTITION),
    (E.UnknownPartitionError, Code.UNKNOWN_TOPIC_OR_PARTITION),
    (E.OffsetOutOfRangeError, Code.OFFSET_OUT_OF_RANGE),
    (E.RecordTooLargeError, Code.MESSAGE_TOO_LARGE),
    (E.InvalidTopicError, Code.INVALID_TOPIC_EXCEPTION),
    (E.CorruptRecordError, Code.CORRUPT_MESSAGE),
    (E.CoordinatorUnavailableError, Code.COORDINATOR_LOAD_IN_PROGRESS),
    (E.PartitionUnavailableError, Code.NOT_LEADER_OR_FOLLOWER),
    (E.NotLeaderError, Code.NOT_LEADER_OR_FOLLOWER),
    (E.FencedLeaderEpochError, Code.FENCED_LEADER_EPOCH),
    (E.NotEnoughReplicasError, Code.NOT_ENOUGH_REPLICAS),
    (E.RebalanceInProgressError, Code.REBALANCE_IN_PROGRESS),
    (E.IllegalGenerationError, Code.ILLEGAL_GENERATION),
    (E.UnknownMemberError, Code.UNKNOWN_MEMBER_ID),
    (E.InconsistentGroupProtocolError, Code.INCONSISTENT_GROUP_PROTOCOL),
    (E.GroupNotEmptyError, Code.NON_EMPTY_GROUP),
    (E.UnknownGroupError, Code.GROUP_ID_NOT_FOUND),
    (E.OutOfOrderSequenceError, Code.OUT_OF_ORDER_SEQUENCE_NUMBER),
    (E.DuplicateSequenceError, Code.DUPLICATE_SEQUENCE_NUMBER),
    (E.TopicExistsError, Code.TOPIC_ALREADY_EXISTS),
    (E.PartitionBudgetError, Code.INVALID_PARTITIONS),
    (E.KafkaTimeoutError, Code.REQUEST_TIMED_OUT),
    (E.SchemaMismatchError, Code.INVALID_RECORD),
    (E.InvalidRecordError, Code.INVALID_RECORD),
    (E.ConfigError, Code.INVALID_CONFIG),
    (ProtocolError, Code.INVALID_REQUEST),
    (E.LogWriteError, Code.KAFKA_STORAGE_ERROR),  # retriable: the client refreshes metadata and retries
)

def error_code(exc: BaseException, context: str = "") -> int:
    """The Kafka error code for ``exc``; UNKNOWN_SERVER_ERROR (-1), logged, for anything else."""
    for klass, code in _TABLE:
        if isinstance(exc, klass):
            return code
    log.error("gateway: unexpected error %s: %r", context or "in a request", exc, exc_info=exc)
    return Code.UNKNOWN_SERVER_ERROR


def error_message(exc: BaseException) -> str:
    """A short message for the response's error_message field."""
    return f"{type(exc).__name__}: {exc}"[:1000]
