"""The offset-commit half of GroupMembership (a mixin, kept apart so each file stays one concern).

A commit carries the member id and the generation the member knows, and by
default the positions of the partitions it owns (never of ones it gave up or
lost). The coordinator fences zombies; a refusal means the member lost those
partitions and becomes CommitFailedError (Kafka's CommitFailedException), after
which the next ``poll()`` rejoins. A synchronous commit waits out a coordinator
restart (Ray restarts the actor and the new one keeps the group's members),
bounded by ``default_api_timeout_ms``.
"""

from __future__ import annotations

import logging
import numbers

from ray.exceptions import GetTimeoutError

from rayka.clients.connection import unwrap
from rayka.clients.types import OffsetAndMetadata, TopicPartition
from rayka.errors import (
    CommitFailedError,
    ConfigError,
    CoordinatorUnavailableError,
    IllegalGenerationError,
    KafkaTimeoutError,
    UnknownMemberError,
)

__all__ = ["OffsetCommits"]

log = logging.getLogger(__name__)

MAX_METADATA_BYTES = 4096  # Kafka's offset.metadata.max.bytes default


class OffsetCommits:
    """Commit methods of GroupMembership (needs ``consumer``, ``group_id``, ``member_id``,
    ``generation``, ``subscribed``, ``default_api_timeout_ms``, ``_owned``, ``_lock``,
    ``_lost_reason``, ``_rejoin``, ``_cluster`` and ``_drop_membership_locked``)."""

    def _positions(self) -> dict[TopicPartition, int]:
        """Positions of the partitions this member owns (never of ones it gave up or lost)."""
        return {tp: s.position for tp, s in self.consumer._fetcher.states.items()
                if s.position is not None and (tp in self._owned or not self.subscribed)}

    def commit(self, offsets: dict | None, sync: bool, callback=None):
        """Commit ``offsets`` (default: positions of the owned partitions). A synchronous commit
        waits out a coordinator restart (up to ``default_api_timeout_ms``, then
        KafkaTimeoutError) and raises CommitFailedError if the member lost the partitions."""
        offsets = self._positions() if offsets is None else _checked(offsets)
        if not offsets:
            return None
        with self._lock:
            member, generation, lost = self.member_id, self.generation, self._lost_reason
        if lost is not None and self.subscribed:
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
        ref = self._cluster.coordinator.commit_offsets.remote(self.group_id, member, generation, payload)

        def done(fut):
            error = None
            try:
                fut.result()
            except BaseException as exc:  # noqa: BLE001 - reported to the callback or the log
                error = self._commit_failed(unwrap(exc, "coordinator"), member)
                log.warning("group %s: async commit failed: %s", self.group_id, error)
            if callback is not None:
                callback(offsets, error)

        ref.future().add_done_callback(done)
        return ref

    def _commit_sync(self, member: str | None, generation: int, payload: list) -> None:
        try:
            self._cluster.call("commit_offsets", self.group_id, member, generation, payload,
                               retry_s=self.default_api_timeout_ms / 1000.0, bounded=True)
        except CoordinatorUnavailableError:
            raise KafkaTimeoutError(
                f"group {self.group_id}: the coordinator did not come back within "
                f"default_api_timeout_ms={self.default_api_timeout_ms}; commit again later") from None
        except GetTimeoutError:
            raise KafkaTimeoutError(
                f"group {self.group_id}: commit got no answer within default_api_timeout_ms="
                f"{self.default_api_timeout_ms}") from None
        except (UnknownMemberError, IllegalGenerationError) as exc:
            raise self._commit_failed(exc, member) from None

    def _commit_failed(self, exc: BaseException, member: str | None) -> BaseException:
        """A refused commit means this member lost the partitions: CommitFailedError, and rejoin."""
        if not isinstance(exc, (UnknownMemberError, IllegalGenerationError)) or isinstance(exc, CommitFailedError):
            return exc
        with self._lock:
            if isinstance(exc, UnknownMemberError) and member is not None and self.member_id == member:
                self._drop_membership_locked(str(exc))
        self._rejoin.set()
        return CommitFailedError(
            f"group {self.group_id}: commit refused, this member no longer owns these partitions ({exc}). "
            "The group rebalanced without it (or removed it after session_timeout_ms or "
            "max_poll_interval_ms); the new owner reads on from the last committed offset. poll() rejoins")

    def committed_offsets(self, tps: list[TopicPartition], with_metadata: bool = False) -> dict:
        """``{tp: offset or None}``; with ``with_metadata``, ``{tp: OffsetAndMetadata or None}``."""
        keys = [(tp.topic, tp.partition) for tp in tps]
        if not with_metadata:
            return dict(zip(tps, self._cluster.call("fetch_offsets", self.group_id, keys)))
        rows = self._cluster.call("fetch_offsets", self.group_id, keys, with_metadata=True)
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

