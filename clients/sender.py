"""The sender thread of a Producer: hands batches to partition actors, retries, completes futures.

Mixed into :class:`rayka.clients.producer.Producer`, whose state it shares under the
producer's lock (``_cv``): ``_open`` (a growing batch per partition), ``_queued``
(send_table chunks handed off), ``_inflight`` (one append per partition),
``_completing`` (acknowledged, callbacks still running). One thread runs ``_run``;
completions arrive on Ray's callback threads (``_done``).
"""

from __future__ import annotations

import logging
import threading
import time

from rayka.clients.accumulator import ProduceBatch
from rayka.clients.stubs import unwrap
from rayka.errors import (FencedLeaderEpochError, NotLeaderError, PartitionUnavailableError, ProducerClosedError,
                          RaykaError, RecordTooLargeError)

__all__ = ["Sender"]

log = logging.getLogger(__name__)


class Sender:
    """The sender half of Producer (a mixin: it has no state of its own)."""

    def _ready(self, now: float) -> tuple[list[ProduceBatch], float | None]:
        """Batches to send now (one per idle partition), and how long until the next may be ready."""
        out = []
        wake = None
        for tp in list(self._queued):
            if tp not in self._inflight:
                queue = self._queued[tp]
                batch = queue.pop(0)
                if not queue:
                    del self._queued[tp]
                out.append(batch)
                self._inflight[tp] = batch
        for tp, batch in list(self._open.items()):
            if tp in self._inflight:
                continue
            due = batch.created + self.linger_s
            if self._flushing or self._closing or batch.nbytes >= self.batch_size or due <= now:
                del self._open[tp]
                self._inflight[tp] = batch
                out.append(batch)
            else:
                wake = due - now if wake is None else min(wake, due - now)
        return out, wake

    def _run(self) -> None:
        while True:
            with self._cv:
                while True:
                    batches, wake = self._ready(time.monotonic())
                    if batches:
                        break
                    if self._closing and not self._open and not self._queued and not self._inflight:
                        return
                    self._cv.wait(wake)
            for batch in batches:
                self._submit(batch)

    def _producer_id(self, tp: tuple[str, int]) -> str | None:
        epoch = self._epochs.get(tp, 0)
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
                batch.sequence = self._sequences.get(tp, 0)
                self._sequences[tp] = batch.sequence + 1
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
            topic = self._topics.get(batch.topic)
            # A leader whose node is gone: another replica is elected; ask the coordinator again.
            retriable = retriable or bool(topic is not None and topic.replicated)
        if retriable and time.monotonic() < batch.deadline:
            log.info("append to %s-%d failed (%s); retrying", batch.topic, batch.partition, error)
            with self._cv:
                self._metrics.retried(batch.topic)
            threading.Timer(self.retry_backoff_s * min(batch.attempts, 10), self._retry, (batch,)).start()
            return
        if isinstance(error, RecordTooLargeError) and error.max_message_bytes:
            topic = self._topics.get(batch.topic)
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
        with self._cv:
            tp = (batch.topic, batch.partition)
            if error is not None and batch.sequence >= 0:
                self._restart_sequence(tp)
            self._inflight.pop(tp, None)
            self._buffered -= batch.nbytes
            if error is None:
                self._metrics.sent(batch.topic, batch.count, batch.nbytes)
            else:
                self._metrics.failed(batch.topic, batch.count)
            # Out of _inflight but its callbacks have yet to run: a flush from now on waits for it.
            self._completing.add(batch)
            self._cv.notify_all()
        try:
            if not batch.event.is_set():
                if error is not None:
                    batch.fail(error)
                elif result is None:
                    batch.complete(-1, -1)  # every record failed on its own (see _split)
                else:
                    batch.complete(result.base_offset, result.log_append_time_ms)
        finally:
            with self._cv:
                self._completing.discard(batch)

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
        with self._cv:
            tp = (batch.topic, batch.partition)
            if max(batch.sizes) <= limit:
                kept = None  # nothing is over the limit: splitting cannot help
            else:
                if batch.sequence >= 0:
                    self._restart_sequence(tp)
                dropped = batch.split(limit, lambda size: RecordTooLargeError(
                    f"record of {size} bytes is over topic {batch.topic!r}'s max.message.bytes ({limit}), "
                    "lowered after it was sent; the other records of its batch were sent again. Split it "
                    "or raise the topic's max.message.bytes", max_message_bytes=limit))
                self._metrics.failed(batch.topic, len(dropped))
                batch.count = kept = len(batch.sizes)
        if kept is None:
            self._settle(batch, error, None)
        elif kept == 0:
            self._settle(batch, None, None)
        else:
            self._submit(batch)

    def _abandon_unsent(self, timeout: float) -> None:
        """close(timeout) ran out: fail what was never handed to a partition (no sequence taken)."""
        with self._cv:
            self._closing = True
            unsent = list(self._open.values()) + [b for q in self._queued.values() for b in q]
            self._open.clear()
            self._queued.clear()
            for batch in unsent:
                self._buffered -= batch.nbytes
                self._metrics.failed(batch.topic, batch.count)
            self._cv.notify_all()
        error = ProducerClosedError(
            f"the producer was closed with timeout={timeout}s before this record was sent; it was not "
            "written. Close with a longer timeout (or none) to wait for every record"
        )
        for batch in unsent:
            batch.fail(error)

    def _retry(self, batch: ProduceBatch) -> None:
        self._submit(batch)

    def _restart_sequence(self, tp: tuple[str, int]) -> None:
        """After a numbered batch failed for good (caller holds the lock), restart the sequence.

        Whether the partition wrote it is not always known (a refused batch was not written; a
        call that timed out may have been), so the next batch to this partition starts a new
        sequence under a new producer id, as Kafka bumps the producer epoch. Reusing the number
        could make the partition take the next batch for a duplicate of this one and drop it;
        keeping it could leave a gap that the partition refuses forever.
        """
        self._epochs[tp] = self._epochs.get(tp, 0) + 1
        self._sequences[tp] = 0


def _as_rayka(exc: BaseException) -> BaseException:
    return exc if isinstance(exc, (RaykaError, TypeError, ValueError)) else unwrap(exc)
