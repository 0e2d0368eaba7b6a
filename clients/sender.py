"""The sender thread of a Producer: hands batches to partition actors, retries, completes futures.

A Sender is given the producer's :class:`~rayka.clients.produce_queue.ProduceQueue` (the
batches and counters the two share, under its lock) and the producer's metadata lookups; it
keeps nothing else of the producer. One thread runs :meth:`Sender.run`; completions arrive on
Ray's callback threads (``_done``).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

from rayka.clients.accumulator import ProduceBatch
from rayka.clients.produce_queue import ProduceQueue
from rayka.clients.stubs import unwrap
from rayka.errors import (FencedLeaderEpochError, NotLeaderError, PartitionUnavailableError, ProducerClosedError,
                          RaykaError, RecordTooLargeError)

__all__ = ["Sender"]

log = logging.getLogger(__name__)


class Sender:
    """Ships a Producer's batches: takes them from ``queue`` when due, appends each to its
    partition, retries, splits a batch refused as too large, and settles it.

    ``config`` is the producer's ProducerConfig; ``producer_id`` its idempotence id (None when
    not idempotent); ``topic(name, refresh=False)`` returns the producer's topic metadata (a
    ``_Topic`` with ``handles`` and ``max_message_bytes``), asking the coordinator when not known
    or ``refresh``; ``cached_topic(name)`` returns it only if already known, else None.
    """

    def __init__(self, queue: ProduceQueue, config, *, producer_id: str | None,
                 topic: Callable[..., Any], cached_topic: Callable[[str], Any]):
        self._q = queue
        self.linger_s = config.linger_ms / 1000.0
        self.batch_size = config.batch_size
        self.acks = config.acks
        self.idempotent = config.idempotent
        self.producer_id = producer_id
        self.delivery_timeout_s = config.delivery_timeout_ms / 1000.0
        self.retry_backoff_s = config.retry_backoff_ms / 1000.0
        self._topic = topic
        self._cached_topic = cached_topic

    def _ready(self, now: float) -> tuple[list[ProduceBatch], float | None]:
        """Batches to send now (one per idle partition), and how long until the next may be ready."""
        out = []
        wake = None
        for tp in list(self._q.queued):
            if tp not in self._q.inflight:
                queue = self._q.queued[tp]
                batch = queue.pop(0)
                if not queue:
                    del self._q.queued[tp]
                out.append(batch)
                self._q.inflight[tp] = batch
        for tp, batch in list(self._q.open.items()):
            if tp in self._q.inflight:
                continue
            due = batch.created + self.linger_s
            if self._q.flushing or self._q.closing or batch.nbytes >= self.batch_size or due <= now:
                del self._q.open[tp]
                self._q.inflight[tp] = batch
                out.append(batch)
            else:
                wake = due - now if wake is None else min(wake, due - now)
        return out, wake

    def run(self) -> None:
        while True:
            with self._q.cv:
                while True:
                    batches, wake = self._ready(time.monotonic())
                    if batches:
                        break
                    if self._q.closing and not self._q.open and not self._q.queued and not self._q.inflight:
                        return
                    self._q.cv.wait(wake)
            for batch in batches:
                self._submit(batch)

    def _producer_id(self, tp: tuple[str, int]) -> str | None:
        epoch = self._q.epochs.get(tp, 0)
        if self.producer_id is None or not epoch:
            return self.producer_id
        return f"{self.producer_id}.{epoch}"

    def _submit(self, batch: ProduceBatch) -> None:
        tp = (batch.topic, batch.partition)
        try:
            if batch.sequence < 0:
                # Built before it takes a number: a batch that cannot be built must not leave
                # a gap in the sequence (the partition would refuse every later batch).
                payload = batch.build()
                batch.table = payload  # keep the built payload for retries
                batch.sequence = self._q.sequences.get(tp, 0)
                self._q.sequences[tp] = batch.sequence + 1
                batch.deadline = time.monotonic() + self.delivery_timeout_s
                batch.attempts = 0
            batch.attempts += 1
            # Every third retry asks the coordinator again: a partition actor re-created under
            # its name (after its node or the cluster came back) has a new handle.
            # A leader change (NotLeaderError, FencedLeaderEpochError) asks at once.
            refresh = batch.attempts > 1 and (batch.attempts % 3 == 0 or batch.leader_moved)
            batch.leader_moved = False
            handle = self._topic(batch.topic, refresh=refresh).handles[batch.partition]
            call = handle.append(batch.table, self._producer_id(tp), batch.sequence if self.idempotent else -1,
                                 -1 if self.acks == -1 else 1)
        except BaseException as exc:  # noqa: BLE001 - the batch's futures carry the error
            self._done(batch, None, _as_rayka(exc))
            return
        call.on_done(lambda result, error: self._done(batch, result, error))
        if self.acks == 0:
            batch.complete(-1, -1)

    def _done(self, batch: ProduceBatch, result, error: BaseException | None) -> None:
        """Completion of one append (runs on a Ray callback thread or the sender): its
        AppendResult, or the rayka error it failed with."""
        retriable = error is not None and getattr(error, "retriable", False)
        if isinstance(error, (NotLeaderError, FencedLeaderEpochError, PartitionUnavailableError)):
            batch.leader_moved = True
            topic = self._cached_topic(batch.topic)
            # A leader whose node is gone: another replica is elected; ask the coordinator again.
            retriable = retriable or bool(topic is not None and topic.replicated)
        if retriable and time.monotonic() < batch.deadline:
            log.info("append to %s-%d failed (%s); retrying", batch.topic, batch.partition, error)
            with self._q.cv:
                self._q.metrics.retried(batch.topic)
            threading.Timer(self.retry_backoff_s * min(batch.attempts, 10), self._retry, (batch,)).start()
            return
        if isinstance(error, RecordTooLargeError) and error.max_message_bytes:
            topic = self._cached_topic(batch.topic)
            if topic is not None and error.max_message_bytes < topic.max_message_bytes:
                topic.max_message_bytes = error.max_message_bytes  # later sends check the partition's limit
        if (isinstance(error, RecordTooLargeError) and batch.sizes and batch.splits < 3
                and not batch.event.is_set()):
            # Checked against a limit that was lowered since (alter_topic_config): split by the
            # partition's limit, off this callback thread (it asks the coordinator).
            threading.Thread(target=self._split, args=(batch, error), name="rayka-producer-split",
                             daemon=True).start()
            return
        self._settle(batch, error, result)

    def _settle(self, batch: ProduceBatch, error: BaseException | None, result) -> None:
        """Account for a batch done for good, then complete or fail its futures."""
        with self._q.cv:
            tp = (batch.topic, batch.partition)
            if error is not None and batch.sequence >= 0:
                self.restart_sequence(tp)
            self._q.inflight.pop(tp, None)
            self._q.buffered -= batch.nbytes
            if error is None:
                self._q.metrics.sent(batch.topic, batch.count, batch.nbytes)
            else:
                self._q.metrics.failed(batch.topic, batch.count)
            # Out of _inflight but its callbacks have yet to run: a flush from now on waits for it.
            self._q.completing.add(batch)
            self._q.cv.notify_all()
        try:
            if not batch.event.is_set():
                if error is not None:
                    batch.fail(error)
                elif result is None:
                    batch.complete(-1, -1)  # every record failed on its own (see _split)
                else:
                    batch.complete(result.base_offset, result.log_append_time_ms)
        finally:
            with self._q.cv:
                self._q.completing.discard(batch)

    def _split(self, batch: ProduceBatch, error: RecordTooLargeError) -> None:
        """The partition refused a batch whose records all passed send()'s size check: the
        topic's max.message.bytes was lowered since. As Kafka does, split the batch: the records
        over the new limit fail with RecordTooLargeError, the others are sent again (under a new
        sequence, as after any failure: the refused batch was not written)."""
        limit = error.max_message_bytes
        try:
            t = self._topic(batch.topic, refresh=True)
            limit = min(limit, t.max_message_bytes) if limit else t.max_message_bytes
            t.max_message_bytes = limit  # the partition's own limit holds until the metadata says so too
        except BaseException:  # noqa: BLE001 - the limit in the error is enough
            pass
        if not limit:
            self._settle(batch, error, None)
            return
        with self._q.cv:
            tp = (batch.topic, batch.partition)
            if max(batch.sizes) <= limit:
                kept = None  # nothing is over the limit: splitting cannot help
            else:
                if batch.sequence >= 0:
                    self.restart_sequence(tp)
                dropped = batch.split(limit, lambda size: RecordTooLargeError(
                    f"record of {size} bytes is over topic {batch.topic!r}'s max.message.bytes ({limit}), "
                    "lowered after it was sent; the other records of its batch were sent again. Split it "
                    "or raise the topic's max.message.bytes", max_message_bytes=limit))
                self._q.metrics.failed(batch.topic, len(dropped))
                batch.count = kept = len(batch.sizes)
        if kept is None:
            self._settle(batch, error, None)
        elif kept == 0:
            self._settle(batch, None, None)
        else:
            self._submit(batch)

    def abandon_unsent(self, timeout: float) -> None:
        """close(timeout) ran out: fail what was never handed to a partition (no sequence taken)."""
        with self._q.cv:
            self._q.closing = True
            unsent = self._q.unsent_locked()
            self._q.open.clear()
            self._q.queued.clear()
            for batch in unsent:
                self._q.buffered -= batch.nbytes
                self._q.metrics.failed(batch.topic, batch.count)
            self._q.cv.notify_all()
        error = ProducerClosedError(
            f"the producer was closed with timeout={timeout}s before this record was sent; it was not "
            "written. Close with a longer timeout (or none) to wait for every record"
        )
        for batch in unsent:
            batch.fail(error)

    def _retry(self, batch: ProduceBatch) -> None:
        self._submit(batch)

    def restart_sequence(self, tp: tuple[str, int]) -> None:
        """After a numbered batch failed for good (caller holds the lock), restart the sequence.

        Whether the partition wrote it is not always known (a refused batch was not written; a
        call that timed out may have been), so the next batch to this partition starts a new
        sequence under a new producer id, as Kafka bumps the producer epoch. Reusing the number
        could make the partition take the next batch for a duplicate of this one and drop it;
        keeping it could leave a gap that the partition refuses forever.
        """
        self._q.epochs[tp] = self._q.epochs.get(tp, 0) + 1
        self._q.sequences[tp] = 0


def _as_rayka(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, (RaykaError, TypeError, ValueError)) else unwrap(exc)
