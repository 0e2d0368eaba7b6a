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

from ray.exceptions import GetTimeoutError

from rayka.clients.connection import unwrap
from rayka.clients.types import TopicPartition
from rayka.errors import (
    CommitFailedError,
    CoordinatorUnavailableError,
    IllegalGenerationError,
    KafkaTimeoutError,
    UnknownMemberError,
)

__all__ = ["OffsetCommits"]

log = logging.getLogger(__name__)


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
        offsets = self._positions() if offsets is None else {TopicPartition(*tp): int(o) for tp, o in offsets.items()}
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
        payload = [(tp.topic, tp.partition, off) for tp, off in offsets.items()]
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

    def committed_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int | None]:
        rows = self._cluster.call("fetch_offsets", self.group_id, [(tp.topic, tp.partition) for tp in tps])
        return dict(zip(tps, rows))

