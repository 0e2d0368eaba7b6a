"""GroupMembership: a Consumer's side of the consumer-group protocol.

Protocol (server-side assignment, every call short and non-blocking on the coordinator):

1. ``join_group`` until it answers with an assignment (it answers "pending"
   while the coordinator waits for the other members of the new generation);
2. ``heartbeat`` from a background thread every ``heartbeat_interval_ms``; an
   answer of "rebalance" makes the next ``poll()`` join again;
3. ``commit_offsets`` with the generation, refused for a stale one (a zombie);
4. ``leave_group`` on close.

Liveness and progress are separate, as in Kafka: heartbeats come from a thread,
so slow processing never evicts a live member; if ``poll()`` is not called for
``max_poll_interval_ms``, the heartbeat thread leaves the group with a warning,
and the next ``poll()`` joins again. With the cooperative-sticky assignor a
rebalance revokes only the partitions that move; with the eager ones (range,
roundrobin) everything is revoked before joining.

Losing partitions: a member that left for ``max_poll_interval_ms``, or that the
group no longer knows (evicted after its session timeout), has lost its
partitions: another member may be reading them already. The heartbeat thread
only marks it; the next ``poll()``, in the consumer's thread, calls
``on_partitions_lost``, drops those partitions from the fetcher (no record of
them is returned any more, not even ones already fetched), and joins again as a
member owning nothing. The group instance id, not the member id, is what
identifies a static member, so it too joins with a fresh member id.

Commits carry the generation the member knows and only the positions of
partitions it owns; a refusal (the member lost the partitions) is a
CommitFailedError, and the next ``poll()`` rejoins. A synchronous commit rides
through a coordinator restart (the restarted coordinator keeps the members).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Callable

from rayka.clients.group_commit import MemberState, OffsetCommits
from rayka.clients.types import TopicPartition
from rayka.config import GroupConfig
from rayka.messages import HeartbeatStatus
from rayka.errors import (
    CoordinatorUnavailableError,
    IllegalGenerationError,
    LocalRuntimeError,
    RebalanceInProgressError,
    UnknownMemberError,
)

__all__ = ["GroupMembership", "ConsumerRebalanceListener"]

log = logging.getLogger(__name__)

_JOIN_POLL_S = 0.05
_PATTERN_REFRESH_S = 2.0


class ConsumerRebalanceListener:
    """Override to hear about rebalances (called from ``poll()``, in the consumer's thread)."""

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        pass

    def on_partitions_lost(self, lost: set[TopicPartition]) -> None:
        """The partitions were lost without a chance to commit: this member left the group
        (``max_poll_interval_ms``) or was removed from it, and another member may own them
        already. By default calls ``on_partitions_revoked``, as Kafka's listener does."""
        self.on_partitions_revoked(lost)

    def on_partitions_unavailable(self, unavailable: set[TopicPartition]) -> None:
        """These assigned partitions cannot be reached now (their actor died, or its node is
        gone); the consumer reads the others and keeps retrying them (rayka's addition: a
        partition here has one replica, so no other leader takes over)."""


class GroupMembership:
    """Membership of one Consumer in one group; owned and driven by that Consumer.

    Its settings are a checked :class:`rayka.config.GroupConfig`; its collaborators are
    explicit: ``cluster`` (topic look-ups and the coordinator),
    ``assign(tps)`` to set the partitions the consumer reads, ``positions()`` for the
    consumer's positions, and ``auto_commit_interval_ms`` (None: no auto-commit).
    Commits go through :attr:`commits` (an OffsetCommits sharing this member's MemberState).
    """

    def __init__(self, config: GroupConfig, *, cluster, assign: Callable[[list[TopicPartition]], None],
                 positions: Callable[[], dict[TopicPartition, int]], auto_commit_interval_ms: int | None):
        # config is checked already (GroupConfig.__post_init__): its fields and defaults live there
        self.config = config
        self.group_id = group_id = config.group_id
        self.session_timeout_ms = config.session_timeout_ms
        self.heartbeat_interval_s = config.heartbeat_interval_s
        self.max_poll_interval_ms = config.max_poll_interval_ms
        self.default_api_timeout_ms = default_api_timeout_ms = config.default_api_timeout_ms  # a sync commit's bound
        self.assignor = config.partition_assignment_strategy
        self.group_instance_id = config.group_instance_id
        self.listener = config.listener or ConsumerRebalanceListener()
        self.topics: list[str] = []
        self.pattern: re.Pattern | None = None
        self._cluster = cluster
        self._assign = assign
        self._auto_commit_ms = auto_commit_interval_ms
        self._m = MemberState()
        self.commits = OffsetCommits(group_id, cluster.coordinator, self._m, positions, default_api_timeout_ms)
        self._stop = threading.Event()
        self._last_poll = time.monotonic()
        self._last_commit = time.monotonic()
        self._last_pattern_check = 0.0
        self._joining = False
        self._heartbeat: threading.Thread | None = None

    @property
    def member_id(self) -> str | None:
        """The member id the coordinator gave this member (None when not in the group)."""
        return self._m.member_id

    @property
    def generation(self) -> int:
        """The generation of the assignment this member holds (-1 when not in the group)."""
        return self._m.generation

    @property
    def subscribed(self) -> bool:
        return self._m.subscribed

    def commit(self, offsets: dict | None, sync: bool, callback=None):
        """See :meth:`OffsetCommits.commit`."""
        return self.commits.commit(offsets, sync, callback)

    def committed_offsets(self, tps: list[TopicPartition], with_metadata: bool = False) -> dict:
        return self.commits.committed_offsets(tps, with_metadata)

    # -- subscription ---------------------------------------------------------------------------

    def subscribe(self, topics: list[str] | None, pattern: str | None) -> None:
        if pattern is not None:
            self.pattern = re.compile(pattern)
            self.topics = self._matching_topics()
        else:
            self.pattern = None
            self.topics = sorted(set(topics or []))
            for t in self.topics:
                self._cluster.topic(t, refresh=True)  # UnknownTopicError now, not at poll
        self._m.subscribed = True
        self._m.rejoin.set()

    def unsubscribe(self) -> None:
        if self._m.owned:
            self._revoke(set(self._m.owned))
        self._leave()
        self._m.subscribed = False
        self.topics = []

    def _matching_topics(self) -> list[str]:
        return sorted(t for t in self._cluster.coordinator.list_topics() if self.pattern.fullmatch(t))

    # -- poll hooks -------------------------------------------------------------------------------

    def on_poll(self, timeout_ms: float) -> None:
        """Called at the start of every poll: mark progress, hand in lost partitions, and
        (re)join within the poll's time."""
        with self._m.lock:  # one lock with the heartbeat thread's max_poll_interval_ms check
            self._last_poll = time.monotonic()
            lost, self._m.lost_reason = self._m.lost_reason, None
        if not self._m.subscribed:
            return
        if lost is not None:
            self._lose(lost)
        if self.pattern is not None and self._last_poll - self._last_pattern_check > _PATTERN_REFRESH_S:
            self._last_pattern_check = self._last_poll
            topics = self._matching_topics()
            if topics != self.topics:
                log.info("group %s: pattern now matches %s", self.group_id, topics)
                self.topics = topics
                self._m.rejoin.set()
        if self._m.rejoin.is_set() or self._joining:
            self._join(deadline=time.monotonic() + timeout_ms / 1000.0)

    def after_poll(self, drained: list) -> list:
        """Called with what a poll drained: keeps only records of partitions this member
        still owns (none if it lost its membership during the poll), then auto-commits."""
        with self._m.lock:
            lost = self._m.lost_reason is not None
        if lost:
            return []  # another member may own these partitions now; the next poll hands them in
        if self._m.subscribed:
            drained = [(state, batches) for state, batches in drained if state.tp in self._m.owned]
        if self._auto_commit_ms is not None and self._m.member_id is not None:
            now = time.monotonic()
            if (now - self._last_commit) * 1000 >= self._auto_commit_ms:
                self._last_commit = now
                self.commit(None, sync=False)
        return drained

    # -- join ---------------------------------------------------------------------------------------

    def _join(self, deadline: float) -> None:
        """Join the group; returns at ``deadline`` if the rebalance is still gathering members
        (the next poll carries on), so a poll never blocks past its timeout."""
        if not self._joining:
            self._joining = True
            self._m.rejoin.clear()
            if self.assignor != "cooperative-sticky" and self._m.owned:
                self._revoke(set(self._m.owned))  # eager protocols give everything up first
        while True:
            try:
                result = self._cluster.coordinator.join_group(
                    self.group_id, self._m.member_id, self.group_instance_id, list(self.topics),
                    self.session_timeout_ms, self.max_poll_interval_ms, sorted(self._m.owned), self.assignor,
                )
            except UnknownMemberError as exc:
                # The group no longer knows this member id (it was evicted, or the rebalance
                # went on without it): what it owned is lost. Join again without a member id;
                # a static member is found again by its group instance id.
                with self._m.lock:
                    self._m.member_id, self._m.generation = None, -1
                self._lose(str(exc))
                continue
            with self._m.lock:
                self._m.member_id = result.member_id
            self._ensure_heartbeat()
            if result.ok:
                break
            if time.monotonic() + _JOIN_POLL_S > deadline:
                return
            time.sleep(_JOIN_POLL_S)  # the coordinator is gathering the other members
        self._joining = False
        new = {TopicPartition(t, p) for t, p in result.assignment}
        with self._m.lock:
            self._m.generation = result.generation
        revoked = self._m.owned - new
        if revoked:
            self._revoke(revoked)
        added = new - self._m.owned
        self._m.owned = new
        self._assign(sorted(new))
        log.info("group %s: member %s generation %d owns %d partition(s)", self.group_id, self._m.member_id,
                 self._m.generation, len(new))
        if added:
            self.listener.on_partitions_assigned(added)
        if result.rebalance:
            self._m.rejoin.set()  # cooperative hand-over: join again now with what we still own

    def _revoke(self, revoked: set[TopicPartition]) -> None:
        if self._auto_commit_ms is not None and self._m.member_id is not None:
            try:
                self.commit({tp: p for tp, p in self.commits.positions().items() if tp in revoked}, sync=True)
            except (IllegalGenerationError, UnknownMemberError, RebalanceInProgressError) as exc:
                log.info("group %s: commit before revoke refused (%s)", self.group_id, exc)
        self.listener.on_partitions_revoked(revoked)
        self._m.owned -= revoked
        self._assign(sorted(self._m.owned))

    def _lose(self, reason: str) -> None:
        """Give up every partition without committing (another member may own them already),
        tell the listener, and rejoin owning nothing. In the consumer's thread."""
        lost, self._m.owned = set(self._m.owned), set()
        self._m.rejoin.set()
        try:
            if lost:
                log.warning("group %s: lost %d partition(s) (%s); rejoining", self.group_id, len(lost), reason)
                self.listener.on_partitions_lost(lost)
        finally:
            self._assign([])

    # -- heartbeats -------------------------------------------------------------------------------

    def pause_heartbeats(self) -> None:
        """Stop the heartbeat thread and wait for it to end, as a paused process (GC, SIGSTOP)
        would: the coordinator then sees no heartbeat. For tests (rayka.testing.paused_heartbeats);
        :meth:`resume_heartbeats` starts it again."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join()

    def resume_heartbeats(self) -> None:
        """Start the heartbeat thread again after :meth:`pause_heartbeats`."""
        self._ensure_heartbeat()

    @property
    def told_to_rejoin(self) -> bool:
        """Whether a heartbeat heard of a rebalance (the next poll joins again)."""
        return self._m.rejoin.is_set()

    def _ensure_heartbeat(self) -> None:
        if self._heartbeat is None or not self._heartbeat.is_alive():
            self._stop.clear()
            self._heartbeat = threading.Thread(target=self._heartbeat_loop, name="rayka-heartbeat", daemon=True)
            self._heartbeat.start()

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.heartbeat_interval_s):
            with self._m.lock:
                member, generation = self._m.member_id, self._m.generation
                idle_ms = (time.monotonic() - self._last_poll) * 1000
                leaving = member is not None and idle_ms > self.max_poll_interval_ms
                if leaving:  # decided under the lock poll() takes, so no poll can be half-way
                    self._m.drop_locked(f"no poll() for {idle_ms:.0f} ms")
            if member is None:
                continue
            if leaving:
                log.warning(
                    "group %s: no poll() for %.0f ms (max_poll_interval_ms=%d); leaving the group so "
                    "its partitions move on. The next poll() rejoins. Process faster, poll more often, "
                    "or raise max_poll_interval_ms", self.group_id, idle_ms, self.max_poll_interval_ms)
                self._send_leave(member)
                continue
            try:
                answer = self._cluster.coordinator.heartbeat(self.group_id, member, generation, retry_s=2.0)
            except UnknownMemberError as exc:
                log.warning("group %s: %s; rejoining on the next poll()", self.group_id, exc)
                with self._m.lock:
                    if self._m.member_id == member:  # not replaced by a join meanwhile
                        self._m.drop_locked(str(exc))
                continue
            except IllegalGenerationError as exc:
                # Still a member, of a newer generation: joining again brings its assignment.
                log.info("group %s: %s; rejoining on the next poll()", self.group_id, exc)
                self._m.rejoin.set()
                continue
            except CoordinatorUnavailableError:
                continue
            except LocalRuntimeError:
                return  # the runtime was stopped: nothing left to heartbeat to (poll() says so)
            if answer is HeartbeatStatus.REBALANCE:
                self._m.rejoin.set()

    def _leave(self) -> None:
        with self._m.lock:
            member, self._m.member_id = self._m.member_id, None
            self._m.generation = -1
        self._send_leave(member)

    def _send_leave(self, member: str | None) -> None:
        if member is not None:
            try:
                self._cluster.coordinator.leave_group(self.group_id, member, retry_s=2.0)
            except (UnknownMemberError, CoordinatorUnavailableError, LocalRuntimeError):
                pass  # gone already, or the whole runtime is: no one left to tell

    # -- closing ------------------------------------------------------------------------------------

    def close(self, autocommit: bool) -> None:
        if autocommit and self._m.member_id is not None:
            try:
                self.commit(None, sync=True)
            except Exception as exc:  # noqa: BLE001 - closing goes on
                log.warning("group %s: final commit failed: %s", self.group_id, exc)
        self._stop.set()
        if self.group_instance_id is None:
            self._leave()
        # A static member does not leave: if it comes back within session_timeout_ms it gets its
        # partitions again with no rebalance (Kafka's static membership).
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
