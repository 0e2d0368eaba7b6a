"""A topic read as a stream of bounded Datasets (micro-batches), for a consumer group.

A group Consumer decides which partitions this process owns (it is only used for that and
for commits: it reads nothing itself, its partitions stay paused). Each micro-batch is the
offsets from the group's position up to at most ``max_records`` in all, read as one Dataset
with read_topic's ranges.

When offsets are committed: a micro-batch's end offsets are committed when the caller asks
for the next micro-batch (``next()``, the ``for`` loop going round), or leaves the ``with``
block without an exception, or calls ``commit()``; never while the caller still works on
it. A process killed meanwhile resumes (any member of the group does) from the last
committed offsets: every record is processed at least once.

Exactly once into a topic: before a micro-batch is handed out, its plan (the ranges and an
id derived from the group and those ranges) is committed with the start offsets as their
metadata. A member that resumes finds it and hands out the same ranges under the same id
first; ``write_topic(batch.dataset..., write_id=batch.id)`` then derives the same producer
ids, so what the killed run wrote of it is recognised and not written again. This holds
when the resumed member owns every partition of the pending micro-batch (one member, or the
same assignment); after a rebalance that splits it, its ranges are read again at least once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

from rayka.clients.ray_data_read import DEFAULT_RECORDS_PER_TASK, check_records_per_task, dataset_of_ranges
from rayka.clients.topic_read import PartitionRange, _check_filter
from rayka.clients.types import OffsetAndMetadata, TopicPartition
from rayka.errors import CommitFailedError, ConfigError

log = logging.getLogger(__name__)

__all__ = ["stream_topic", "TopicStream", "MicroBatch", "batch_id", "allot"]

_PLAN_KEY = "rayka.data.pending"


@dataclass
class MicroBatch:
    """One micro-batch: ``dataset`` (a bounded ray.data.Dataset of ``ranges``), ``id`` (the
    same when the same ranges are handed out again after a crash: use it as write_topic's
    ``write_id``), ``records`` (offsets it covers), ``replayed`` (a pending one resumed)."""

    id: str
    ranges: list[PartitionRange]
    dataset: object = field(repr=False)
    replayed: bool = False

    @property
    def records(self) -> int:
        return sum(r.records for r in self.ranges)


def batch_id(group_id: str, ranges: list[PartitionRange]) -> str:
    """An id for these ranges of this group (the same every time they are planned)."""
    text = json.dumps([group_id] + sorted([r.topic, r.partition, r.start, r.end] for r in ranges))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def allot(available: dict[int, int], max_records: int) -> dict[int, int]:
    """How many of each partition's ``available`` records a micro-batch of at most
    ``max_records`` takes: a fair share each, what a short partition leaves going to the rest."""
    take = {p: 0 for p in available}
    left = max_records
    open_ = sorted(p for p, n in available.items() if n > 0)
    while left > 0 and open_:
        share = max(left // len(open_), 1)
        for p in list(open_):
            n = min(share, available[p] - take[p], left)
            take[p] += n
            left -= n
            if take[p] >= available[p]:
                open_.remove(p)
            if left == 0:
                break
    return take


class TopicStream:
    """The iterator :func:`stream_topic` returns (see the module docs); a context manager."""

    def __init__(self, topic: str, *, group_id: str, max_records: int = 100_000, max_wait_s: float = 1.0,
                 columns=None, filter=None, cluster=None, auto_offset_reset: str = "earliest",
                 max_records_per_task: int = DEFAULT_RECORDS_PER_TASK, idle_timeout_s: float | None = None,
                 **consumer_options):
        from rayka.clients.connection import current
        from rayka.clients.consumer import Consumer
        from rayka.clients.group import ConsumerRebalanceListener

        if not isinstance(group_id, str) or not group_id:
            raise ConfigError(f"stream_topic needs a group_id (a non-empty string), not {group_id!r}")
        if isinstance(max_records, bool) or not isinstance(max_records, int) or max_records < 1:
            raise ConfigError(f"max_records must be a whole number >= 1, not {max_records!r}")
        if not max_wait_s >= 0:
            raise ConfigError(f"max_wait_s must be a number of seconds >= 0, not {max_wait_s!r}")
        if idle_timeout_s is not None and not idle_timeout_s >= 0:
            raise ConfigError(f"idle_timeout_s must be None or a number of seconds >= 0, not {idle_timeout_s!r}")
        check_records_per_task(max_records_per_task)
        _check_filter(filter)
        self.idle_timeout_s = idle_timeout_s
        self.topic, self.group_id = topic, group_id
        self.max_records, self.max_wait_s = max_records, float(max_wait_s)
        self.columns, self.filter, self.max_records_per_task = columns, filter, max_records_per_task
        self.cluster = cluster or current()
        self._auto_reset = auto_offset_reset
        self._positions: dict[int, int] = {}
        self._pending: MicroBatch | None = None
        self._closed = False
        stream = self

        class _Pause(ConsumerRebalanceListener):
            def on_partitions_assigned(self, assigned):
                stream._consumer.pause(list(assigned))  # the stream reads them, not the consumer

            def on_partitions_revoked(self, revoked):
                for tp in revoked:
                    stream._positions.pop(tp.partition, None)

            def on_partitions_lost(self, lost):
                self.on_partitions_revoked(lost)

        self._consumer = Consumer(group_id=group_id, enable_auto_commit=False, auto_offset_reset=auto_offset_reset,
                                  cluster=self.cluster, **consumer_options)
        self._consumer.subscribe([topic], listener=_Pause())

    # -- iteration ------------------------------------------------------------------------------

    def __iter__(self) -> "TopicStream":
        return self

    def __next__(self) -> MicroBatch:
        if self._closed:
            raise StopIteration
        self.commit()  # the caller asks for the next: it is done with the last one
        batch = self._next_batch()
        if batch is None:
            self.close(commit=False)  # nothing handed out since the commit above
            raise StopIteration
        return batch

    def __enter__(self) -> "TopicStream":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(commit=exc_type is None)

    def commit(self) -> None:
        """Commit the end offsets of the micro-batch handed out last (if not yet committed)."""
        batch, self._pending = self._pending, None
        if batch is None:
            return
        # Only partitions still this member's: a rebalance during the processing gave the others
        # to a member that reads them again from the last commit (at least once), and a commit
        # naming them would be refused whole.
        owned = self._consumer.assignment()
        offsets = {TopicPartition(r.topic, r.partition): OffsetAndMetadata(r.end, "") for r in batch.ranges}
        offsets = {tp: o for tp, o in offsets.items() if tp in owned}
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group moved on (a rebalance, or processing past max.poll.interval.ms): the new
            # owners read these records again; the stream goes on with what it is given next.
            log.warning("micro-batch %s was processed but its offsets could not be committed (%s); "
                        "its records will be read again", batch.id, exc)

    def close(self, commit: bool = True) -> None:
        """Leave the group; with ``commit``, commit the last micro-batch first."""
        if self._closed:
            return
        try:
            if commit:
                self.commit()
        finally:
            self._closed = True
            self._consumer.close(autocommit=False)

    # -- planning -------------------------------------------------------------------------------

    def _owned(self) -> list[TopicPartition]:
        self._consumer.poll(timeout_ms=0)  # keeps the membership: joins, rebalances, heartbeats
        return sorted(tp for tp in self._consumer.assignment() if tp.topic == self.topic)

    def _start_positions(self, owned: list[TopicPartition]) -> list[PartitionRange] | None:
        """Positions of newly owned partitions; the pending plan found with them, if this
        member owns all of it."""
        new = [tp for tp in owned if tp.partition not in self._positions]
        if not new:
            return None
        plans = {}
        begin = end = None
        for tp in new:
            got = self._consumer.committed(tp, metadata=True)
            if got is None:
                if begin is None:
                    begin = self._consumer.beginning_offsets(new)
                    end = self._consumer.end_offsets(new)
                self._positions[tp.partition] = (end if self._auto_reset == "latest" else begin)[tp]
                continue
            self._positions[tp.partition] = got.offset
            try:
                plan = json.loads(got.metadata or "{}").get(_PLAN_KEY)
            except (ValueError, AttributeError):
                plan = None
            if plan:
                plans.setdefault(plan["id"], {})[tp.partition] = (got.offset, plan["end"], plan["parts"])
        owned_parts = {tp.partition for tp in owned}
        for pid, found in plans.items():
            parts = set(next(iter(found.values()))[2])
            if parts <= owned_parts and parts <= set(found):
                meta, _ = self.cluster.topic(self.topic)
                ranges = [PartitionRange(self.topic, p, found[p][0], found[p][1], meta.leader_node(p))
                          for p in sorted(parts)]
                if batch_id(self.group_id, ranges) == pid:
                    return ranges
        return None

    def _next_batch(self) -> MicroBatch | None:
        waited_from = time.monotonic()
        while True:
            # (records that are there are handed out after max_wait_s, before this can run out)
            idle = time.monotonic() - waited_from - self.max_wait_s
            if self.idle_timeout_s is not None and idle > self.idle_timeout_s:
                return None
            owned = self._owned()
            replay = self._start_positions(owned)
            if replay:
                return self._hand_out(replay, replayed=True)
            if owned:
                ends = self._consumer.end_offsets(owned)
                available = {tp.partition: max(ends[tp] - self._positions[tp.partition], 0) for tp in owned}
                total = sum(available.values())
                if total >= self.max_records or (total and time.monotonic() - waited_from >= self.max_wait_s):
                    take = allot(available, self.max_records)
                    meta, _ = self.cluster.topic(self.topic)
                    ranges = [PartitionRange(self.topic, p, self._positions[p], self._positions[p] + n,
                                             meta.leader_node(p)) for p, n in sorted(take.items()) if n]
                    return self._hand_out(ranges, replayed=False)
            time.sleep(min(0.05, self.max_wait_s or 0.05))  # new records arrive, or the group assigns

    def _hand_out(self, ranges: list[PartitionRange], *, replayed: bool) -> MicroBatch:
        bid = batch_id(self.group_id, ranges)
        parts = [r.partition for r in ranges]
        # The plan goes with the start offsets: a member resuming after a crash hands the same out.
        self._consumer.commit({
            TopicPartition(self.topic, r.partition): OffsetAndMetadata(
                r.start, json.dumps({_PLAN_KEY: {"id": bid, "end": r.end, "parts": parts}}))
            for r in ranges})
        for r in ranges:
            self._positions[r.partition] = r.end
        dataset = dataset_of_ranges(ranges, cluster=self.cluster, columns=self.columns, filter=self.filter,
                                    max_records_per_task=self.max_records_per_task)
        self._pending = MicroBatch(bid, ranges, dataset, replayed)
        return self._pending


def stream_topic(topic: str, group_id: str, max_records: int = 100_000, max_wait_s: float = 1.0,
                 columns=None, filter=None, *, cluster=None, auto_offset_reset: str = "earliest",
                 max_records_per_task: int = DEFAULT_RECORDS_PER_TASK, idle_timeout_s: float | None = None,
                 **consumer_options) -> TopicStream:
    """``topic`` as an endless stream of :class:`MicroBatch` (each a bounded ray.data.Dataset),
    for consumer group ``group_id``; use it as ``with stream_topic(...) as stream: for batch in
    stream: ...``.

    A micro-batch is handed out once ``max_records`` records are there, or once ``max_wait_s``
    has passed with at least one; it holds at most ``max_records`` (shared fairly between the
    partitions this member owns). Its offsets are committed when the next one is asked for,
    when the ``with`` block is left without an exception, or on ``commit()`` (module docs:
    at least once; exactly once into a topic with ``write_topic(..., write_id=batch.id)``).
    ``auto_offset_reset``: where a partition without a committed offset starts ("earliest",
    "latest"); ``idle_timeout_s``: end the iteration once no record came for that long (None:
    never, a stream); ``consumer_options`` (``session_timeout_ms`` ...) go to the group Consumer.
    """
    return TopicStream(topic, group_id=group_id, max_records=max_records, max_wait_s=max_wait_s, columns=columns,
                       filter=filter, cluster=cluster, auto_offset_reset=auto_offset_reset,
                       max_records_per_task=max_records_per_task, idle_timeout_s=idle_timeout_s,
                       **consumer_options)
