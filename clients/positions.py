"""Positions of a Consumer's partitions: a collaborator the Consumer owns and delegates to.

Where a partition is read from: ``seek``, ``seek_to_beginning/end``, ``position``,
look-ups of log bounds and times, pause/resume, and the first position of a newly
assigned partition (the group's committed offset, else ``auto_offset_reset``).

Each partition is resolved on its own: a look-up that fails marks that partition
unavailable (``unavailable()``, a logged warning, the ``on_partitions_unavailable``
callback and the group listener's method of that name hear of it once) and is
retried after a backoff, while the others are read. Calls that must answer for
given partitions (``position``, ``end_offsets``, ...) raise one
PartitionUnavailableError naming those that could not answer, never a Ray error.
"""

from __future__ import annotations

import logging
import time

from rayka.clients.availability import unavailable_error as _unavailable_error
from rayka.clients.fetcher import PartitionState
from rayka.clients.stubs import gather, wait_first
from rayka.clients.types import OffsetAndTimestamp, TopicPartition
from rayka.errors import LogOpenError, NoOffsetForPartitionError, PartitionUnavailableError, UnknownPartitionError

__all__ = ["Positions", "LOOKUP_GRACE_S", "reset_out_of_range"]

# Position look-ups answer in about a millisecond; one slower than this (its actor is
# restarting) stays in flight while the poll reads the partitions that answered.
LOOKUP_GRACE_S = 0.2
# A look-up unanswered this long marks its partition unavailable (it stays in flight).
LOOKUP_TIMEOUT_S = 10.0

log = logging.getLogger("rayka.clients.consumer")  # one logger for everything a Consumer says


class Positions:
    """The positions of one Consumer's assigned partitions, and look-ups of their logs.

    Given the consumer's Fetcher (whose ``states`` are the assigned partitions, each with its
    position), its Cluster (metadata of partitions not assigned), its GroupMembership or None
    (committed offsets; its ``listener``), ``auto_offset_reset`` and the
    ``on_partitions_unavailable`` callback or None. The Consumer calls :meth:`first_positions`
    and :meth:`report_unavailable` in each poll; the public methods are the Consumer's own.
    """

    def __init__(self, fetcher, cluster, *, group, auto_offset_reset: str, on_unavailable=None):
        self._fetcher = fetcher
        self._cluster = cluster
        self._group = group
        self.auto_offset_reset = auto_offset_reset
        self._on_unavailable = on_unavailable
        self._reported_unavailable: set[TopicPartition] = set()

    def _state(self, tp) -> PartitionState:
        tp = TopicPartition(*tp)
        try:
            return self._fetcher.states[tp]
        except KeyError:
            raise UnknownPartitionError(
                f"{tp.topic}-{tp.partition} is not assigned to this consumer; assign() it first"
            ) from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record read from ``tp`` (checked on the next fetch)."""
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, got {offset!r}")
        self._state(tp).seek(offset)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self._seek_ends(partitions, beginning=True)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        self._seek_ends(partitions, beginning=False)

    def _seek_ends(self, partitions, beginning: bool) -> None:
        states = [self._state(tp) for tp in partitions] if partitions else list(self._fetcher.states.values())
        answers = gather([s.handle.offsets() for s in states])
        failed = {}
        for s, answer in zip(states, answers):
            if isinstance(answer, BaseException):
                self._fetcher.mark_unavailable(s, answer)
                failed[s.tp] = answer
            else:
                s.seek(answer.log_start_offset if beginning else answer.log_end_offset)
        if failed:  # the others were moved: only these are left where they were
            raise _unavailable_error(failed, "seek_to_beginning()" if beginning else "seek_to_end()")

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp``. Raises
        PartitionUnavailableError if it has no position yet and its partition cannot be reached."""
        state = self._state(tp)
        if state.position is None:
            state.retry_at = 0.0  # asked for explicitly: look it up now, not after the backoff
            self._resolve_positions([state], wait_s=None)
            if state.position is None:
                raise _unavailable_error({state.tp: state.unavailable}, "position()")
        return state.position

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: start for tp, (start, _) in self._offsets(partitions).items()}

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: end for tp, (_, end) in self._offsets(partitions).items()}

    def _offsets(self, partitions) -> dict[TopicPartition, tuple[int, int]]:
        tps = [TopicPartition(*tp) for tp in partitions]
        return self._ask_each(tps, lambda tp, h: h.offsets(), "beginning_offsets()/end_offsets()")

    def _ask_each(self, tps: list[TopicPartition], call, what: str) -> dict:
        """``call(tp, partition_client)`` on each partition, each answer on its own;
        PartitionUnavailableError naming the partitions that could not answer (and why) if any could not."""
        answers = gather([call(tp, self._handle(tp)) for tp in tps])
        failed = {tp: a for tp, a in zip(tps, answers) if isinstance(a, BaseException)}
        if failed:
            other = next((a for a in failed.values() if not isinstance(a, PartitionUnavailableError)), None)
            if other is not None:
                raise other
            raise _unavailable_error(failed, what)
        return dict(zip(tps, answers))

    def _handle(self, tp: TopicPartition):
        state = self._fetcher.states.get(tp)
        if state is not None:
            return state.handle
        meta, handles = self._cluster.topic(tp.topic)
        meta.check_partition(tp.partition)
        return handles[tp.partition]

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the earliest offset whose timestamp is >= the given ms (None if none)."""
        tps = [TopicPartition(*tp) for tp in timestamps]
        hits = self._ask_each(tps, lambda tp, h: h.offset_for_time(int(timestamps[tp])),
                              "offsets_for_times()")
        return {tp: None if hit is None else OffsetAndTimestamp(*hit) for tp, hit in hits.items()}

    def first_positions(self, left_s) -> None:
        """Look up the positions still missing, within the poll's time (``left_s()`` seconds).
        With a partition to read, look-ups get a short grace; with none, they may take the
        poll's time, and a failed one is retried after its backoff within it."""
        states = self._fetcher.states.values()
        while True:
            readable = any(s.position is not None for s in states)
            self._resolve_positions(wait_s=min(left_s(), LOOKUP_GRACE_S) if readable else left_s())
            if readable or left_s() <= 0 or any(s.position is not None for s in states):
                return
            retries = [s.retry_at for s in states if s.position is None and s.lookup is None]
            if not retries:
                return  # look-ups still in flight took the time there was
            time.sleep(max(0.0, min(left_s(), min(retries) - time.monotonic())))

    def _resolve_positions(self, states=None, wait_s: float | None = 0.0) -> None:
        """Give each partition without a position one: the group's committed offset, else
        ``auto_offset_reset`` (its log start or end, asked of the partition).

        Each partition on its own: the look-ups go out together; once the first answers
        (within ``wait_s``; None: however long it takes) the others get ``LOOKUP_GRACE_S``, and
        those still out stay in flight for the next poll. A partition that cannot answer is
        marked unavailable and asked again after a backoff, so one dead or slow partition
        never holds back the others.
        """
        states = [s for s in (states or self._fetcher.states.values()) if s.position is None]
        if not states:
            return
        now = time.monotonic()
        todo = [s for s in states if s.lookup is None and s.retry_at <= now]
        if todo:
            committed = self._group.committed_offsets([s.tp for s in todo]) if self._group else {}
            missing = []
            for s in todo:
                offset = committed.get(s.tp)
                if offset is not None and offset >= 0:
                    s.seek(offset)
                else:
                    missing.append(s)
            if missing and self.auto_offset_reset == "none":
                raise NoOffsetForPartitionError(
                    f"no committed offset for {[f'{s.tp.topic}-{s.tp.partition}' for s in missing]} and "
                    "auto_offset_reset='none'; seek() first or choose 'earliest'/'latest'"
                )
            for s in missing:
                s.lookup, s.lookup_since = s.handle.offsets(), now
        pending = {s.lookup: s for s in states if s.lookup is not None}
        if not pending:
            return
        for s in pending.values():
            if s.unavailable is None and now - s.lookup_since > LOOKUP_TIMEOUT_S:
                # Still no answer (an actor that cannot start, say): report it; keep waiting.
                s.unavailable = f"its position look-up got no answer for {LOOKUP_TIMEOUT_S:g} s"
        # Once the first answered, the others get a short grace, not the whole wait.
        grace = LOOKUP_GRACE_S if wait_s is None else min(LOOKUP_GRACE_S, wait_s)
        for call in wait_first(list(pending), wait_s, grace):
            s = pending[call]
            if s.lookup is not call:
                continue
            s.lookup = None
            [answer] = gather([call])
            if isinstance(answer, PartitionUnavailableError):
                self._fetcher.mark_unavailable(s, answer)
            elif isinstance(answer, LogOpenError):  # unavailable too; raised by the poll, once
                self._fetcher.log_open_failed(s, answer)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                self._fetcher.mark_available(s)
                s.seek(answer.log_start_offset if self.auto_offset_reset == "earliest" else answer.log_end_offset)

    def unavailable(self) -> set[TopicPartition]:
        """Assigned partitions that cannot be reached now (their actor died or its node is gone).
        The consumer reads the others meanwhile and retries these; see also the
        ``on_partitions_unavailable`` callback and the logged warning."""
        return {tp for tp, s in self._fetcher.states.items() if s.unavailable is not None}

    def report_unavailable(self) -> None:
        """Tell the log and the callbacks about partitions that became unavailable since the
        last poll (once each time one goes away)."""
        now = {tp: s.unavailable for tp, s in self._fetcher.states.items() if s.unavailable is not None}
        new = set(now) - self._reported_unavailable
        self._reported_unavailable = set(now)
        if not new:
            return
        for tp in sorted(new):
            log.warning("%s-%d is unavailable (%s); reading the other partitions and retrying it",
                        tp.topic, tp.partition, now[tp])
        if self._on_unavailable is not None:
            self._on_unavailable(set(new))
        listener = getattr(self._group, "listener", None)
        if listener is not None and hasattr(listener, "on_partitions_unavailable"):
            listener.on_partitions_unavailable(set(new))

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop fetching these partitions (positions are kept) until resume()."""
        for tp in partitions:
            state = self._state(tp)
            state.paused = True
            if state.position is not None:
                state.seek(state.position)  # drop buffered and in-flight data

    def resume(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._state(tp).paused = False

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, s in self._fetcher.states.items() if s.paused}


def reset_out_of_range(auto_offset_reset: str, state: PartitionState, exc) -> None:
    """The Fetcher's ``on_out_of_range``: move ``state`` to the log start or end by
    ``auto_offset_reset``, or raise ``exc`` (an OffsetOutOfRangeError) when it is "none"."""
    if auto_offset_reset == "none":
        raise exc
    target = exc.log_start_offset if auto_offset_reset == "earliest" else exc.log_end_offset
    log.warning("%s-%d: %s; resetting to %d (%s)", state.tp.topic, state.tp.partition, exc, target,
                auto_offset_reset)
    state.seek(target)
