"""Offset commits of a group member, and the membership state they are checked against.

A commit carries the member id and the generation the member knows, and by
default the positions of the partitions it owns (never of ones it gave up or
lost). The coordinator fences zombies; a refusal means the member lost those
partitions and becomes CommitFailedError (Kafka's CommitFailedException), after
which the next ``poll()`` rejoins. A synchronous commit waits out a coordinator
restart (Ray restarts the actor and the new one keeps the group's members),
bounded by ``default_api_timeout_ms``.

:class:`MemberState` is what GroupMembership (which changes it) and
:class:`OffsetCommits` (which reads it, and drops the membership when a commit
finds it gone) share; nothing else of either is visible to the other.
"""

from __future__ import annotations

import logging
import numbers
import threading
from typing import Callable

from rayka.clients.stubs import CoordinatorClient
from rayka.clients.types import OffsetAndMetadata, TopicPartition
from rayka.errors import (
    CommitFailedError,
    ConfigError,
    CoordinatorUnavailableError,
    IllegalGenerationError,
    KafkaTimeoutError,
    UnknownMemberError,
)

__all__ = ["MemberState", "OffsetCommits"]

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 4096  # Kafka's offset.metadata.max.bytes default


class MemberState:
    """One member's standing in its group. ``member_id``, ``generation`` and ``lost_reason``
    change only under ``lock`` (the heartbeat thread reads and drops them); ``owned`` and
    ``subscribed`` are the consumer thread's."""

    __slots__ = ("lock", "rejoin", "member_id", "generation", "lost_reason", "owned", "subscribed")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.rejoin = threading.Event()  # set: the next poll() joins the group (again)
        self.member_id: str | None = None
        self.generation = -1
        self.lost_reason: str | None = None  # set when the membership is gone; poll() hands the partitions in
        self.owned: set[TopicPartition] = set()
        self.subscribed = False

    def drop_locked(self, reason: str) -> None:
        """Forget the member id and generation (caller holds ``lock``); the next poll hands in
        the partitions as lost."""
        self.member_id, self.generation = None, -1
        self.lost_reason = reason


class OffsetCommits:
    """Commits and committed-offset look-ups of one group member.

    ``positions()`` gives the consumer's position of every partition it reads (those
    without one left out); commits by default send those this member owns.
    """

    def __init__(self, group_id: str, coordinator: CoordinatorClient, member: MemberState,
                 positions: Callable[[], dict[TopicPartition, int]], default_api_timeout_ms: int):
        self.group_id = group_id
        self.default_api_timeout_ms = default_api_timeout_ms
        self._coordinator = coordinator
        self._member = member
        self._all_positions = positions

    def positions(self) -> dict[TopicPartition, int]:
        """Positions of the partitions this member owns (never of ones it gave up or lost)."""
        m = self._member
        return {tp: p for tp, p in self._all_positions().items() if tp in m.owned or not m.subscribed}

    def commit(self, offsets: dict | None, sync: bool, callback=None):
        """Commit ``offsets`` (default: positions of the owned partitions). A synchronous commit
        waits out a coordinator restart (up to ``default_api_timeout_ms``, then
        KafkaTimeoutError) and raises CommitFailedError if the member lost the partitions.
        An asynchronous one returns the Ray ObjectRef of the call (None if nothing to commit)."""
        offsets = self.positions() if offsets is None else _checked(offsets)
        if not offsets:
            return None
        m = self._member
        with m.lock:
            member, generation, lost = m.member_id, m.generation, m.lost_reason
        if lost is not None and m.subscribed:
            error = CommitFailedError(
                f"group {self.group_id}: commit refused, this member is out of the group ({lost}) and "
                "another member may own its partitions; poll() to rejoin, then commit what you read next")
            if sync:
                raise error
            if callback is not None:  # an async commit reports through its callback, as Kafka's
                callback(offsets, error)
            return None
        payload = [(tp.topic, tp.partition, off.offset, off.metadata) if isinstance(off, OffsetAndMetadata)
                   else (tp.topic, tp.partition, off) for tp, off in offsets.items()]
        if sync:
            self._commit_sync(member, generation, payload)
            return None
        call = self._coordinator.commit_offsets_async(self.group_id, member, generation, payload)

        def done(_, error) -> None:
            if error is not None:
                error = self._commit_failed(error, member)
                log.warning("group %s: async commit failed: %s", self.group_id, error)
            if callback is not None:
                callback(offsets, error)

        call.on_done(done)
        return call.ref

    def _commit_sync(self, member: str | None, generation: int, payload: list) -> None:
        try:
            self._coordinator.commit_offsets(self.group_id, member, generation, payload,
                                             retry_s=self.default_api_timeout_ms / 1000.0, bounded=True)
        except CoordinatorUnavailableError:
            raise KafkaTimeoutError(
                f"group {self.group_id}: the coordinator did not come back within "
                f"default_api_timeout_ms={self.default_api_timeout_ms}; commit again later") from None
        except KafkaTimeoutError:
            raise KafkaTimeoutError(
                f"group {self.group_id}: commit got no answer within default_api_timeout_ms="
                f"{self.default_api_timeout_ms}") from None
        except (UnknownMemberError, IllegalGenerationError) as exc:
            raise self._commit_failed(exc, member) from None

    def _commit_failed(self, exc: BaseException, member: str | None) -> BaseException:
        """A refused commit means this member lost the partitions: CommitFailedError, and rejoin."""
        if not isinstance(exc, (UnknownMemberError, IllegalGenerationError)) or isinstance(exc, CommitFailedError):
            return exc
        m = self._member
        with m.lock:
            if isinstance(exc, UnknownMemberError) and member is not None and m.member_id == member:
                m.drop_locked(str(exc))
        m.rejoin.set()
        return CommitFailedError(
            f"group {self.group_id}: commit refused, this member no longer owns these partitions ({exc}). "
            "The group rebalanced without it (or removed it after session_timeout_ms or "
            "max_poll_interval_ms); the new owner reads on from the last committed offset. poll() rejoins")

    def committed_offsets(self, tps: list[TopicPartition], with_metadata: bool = False) -> dict:
        """``{tp: offset or None}``; with ``with_metadata``, ``{tp: OffsetAndMetadata or None}``."""
        keys = [(tp.topic, tp.partition) for tp in tps]
        if not with_metadata:
            return dict(zip(tps, self._coordinator.fetch_offsets(self.group_id, keys)))
        rows = self._coordinator.fetch_offsets(self.group_id, keys, with_metadata=True)
        return {tp: None if row is None else OffsetAndMetadata(*row) for tp, row in zip(tps, rows)}


def _checked(offsets: dict) -> dict:
    """The user's ``{tp: offset or OffsetAndMetadata}``, checked: a clear error for anything else."""
    if not isinstance(offsets, dict):
        raise ConfigError(f"offsets must be a dict {{TopicPartition: offset}}, got {type(offsets).__name__}")
    out = {}
    for tp, off in offsets.items():
        tp = TopicPartition(*tp)
        if isinstance(off, OffsetAndMetadata):
            if not isinstance(off.metadata, str):
                raise ConfigError(f"metadata of {tp.topic}-{tp.partition} must be a str, got {off.metadata!r}")
            if len(off.metadata.encode()) > MAX_METADATA_BYTES:
                raise ConfigError(f"metadata of {tp.topic}-{tp.partition} is over {MAX_METADATA_BYTES} bytes "
                                  "(Kafka's offset.metadata.max.bytes); store less with the offset")
            off = OffsetAndMetadata(_offset(tp, off.offset), off.metadata)
        else:
            off = _offset(tp, off)
        out[tp] = off
    return out


def _offset(tp: TopicPartition, offset) -> int:
    if isinstance(offset, bool) or not isinstance(offset, numbers.Integral) or offset < 0:
        raise ConfigError(f"offset for {tp.topic}-{tp.partition} must be a non-negative int or "
                          f"OffsetAndMetadata, got {offset!r}")
    return int(offset)

