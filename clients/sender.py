"""The sender thread of a Producer: hands batches to partition actors, retries, completes futures.

A Sender is given the producer's :class:`~rayka.clients.produce_queue.ProduceQueue` (the
batches and counters the two share, under its lock) and the producer's metadata lookups; it
keeps nothing else of the producer. One thread runs :meth:`Sender.run`; completions arrive on
Ray's callback threads (``_done``).

Pipelining: a send_table() chunk sent with acks="all" and idempotence is written first (the
partition answers once it holds it) and then waits for the in-sync replicas in a second call
(``wait_acked``), so the next chunk's write travels while the followers copy this one. Writes
stay one at a time per partition, in sequence order; at most :data:`MAX_ACKING` chunks wait
per partition. A pipelined chunk that fails goes back to the front of its partition's queue
and the partition stalls: nothing more is written there until nothing of it travels, then the
chunks go again in sequence order (each under the producer id it was numbered with), so a
retry never lands after a later chunk, and a written one is answered as a duplicate.
"""

from __future__ import annotations

import itertools
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

#: Pipelined chunks written and waiting for acks="all", per partition, at most (Kafka allows
#: up to 5 requests in flight per connection with idempotence).
MAX_ACKING = 4
_NUMBERED = itertools.count()  # the order chunks take sequence numbers in, across producer ids


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

    def _pipelined(self, batch: ProduceBatch) -> bool:
        return batch.pipelined and self.acks == -1 and self.idempotent

    def _stalled(self, tp: tuple[str, int]) -> bool:
        """A pipelined chunk of ``tp`` failed: no write there until nothing of it travels."""
        if tp not in self._q.stalled:
            return False
        if tp in self._q.inflight or self._q.acking.get(tp):
            return True
        self._q.stalled.discard(tp)
        return False

    def _ready(self, now: float) -> tuple[list[ProduceBatch], float | None]:
        """Batches to send now (one write per partition), and how long until the next may be ready."""
        out = []
        wake = None
        for tp in list(self._q.queued):
            if tp in self._q.inflight or self._stalled(tp):
                continue
            queue = self._q.queued[tp]
            batch = queue[0]
            if self._q.acking.get(tp) and (not self._pipelined(batch) or len(self._q.acking[tp]) >= MAX_ACKING):
                continue  # woken when a waiting chunk settles
            if batch.retry_at > now:
                wake = batch.retry_at - now if wake is None else min(wake, batch.retry_at - now)
                continue
            queue.pop(0)
            if not queue:
                del self._q.queued[tp]
            out.append(batch)
            self._q.inflight[tp] = batch
        for tp, batch in list(self._q.open.items()):
            if tp in self._q.inflight or self._q.acking.get(tp) or self._stalled(tp):
                continue
            queued = self._q.queued.get(tp)
            if queued and queued[0].sequence >= 0:
                continue  # a pipelined chunk's retry goes first
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
                    if (self._q.closing and not self._q.open and not self._q.queued and not self._q.inflight
                            and not self._q.acking):
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
                known = self._cached_topic(batch.topic)
                payload = batch.build(getattr(known, "ipc_options", None))  # the topic's compression
                batch.table = payload  # keep the built payload for retries
                batch.sequence = self._q.sequences.get(tp, 0)
                self._q.sequences[tp] = batch.sequence + 1
                batch.producer_id = self._producer_id(tp)
                batch.numbered = next(_NUMBERED)
                batch.deadline = time.monotonic() + self.delivery_timeout_s
                batch.attempts = 0
            batch.attempts += 1
            # Every third retry asks the coordinator again: a partition actor re-created under
            # its name (after its node or the cluster came back) has a new handle.
            # A leader change (NotLeaderError, FencedLeaderEpochError) asks at once.
            refresh = batch.attempts > 1 and (batch.attempts % 3 == 0 or batch.leader_moved)
            batch.leader_moved = False
            handle = self._topic(batch.topic, refresh=refresh).handles[batch.partition]
            if self._pipelined(batch):
                call = handle.append(batch.table, batch.producer_id, batch.sequence, -1, wait_acks=False)
            else:
                call = handle.append(batch.table, self._producer_id(tp), batch.sequence if self.idempotent else -1,
                                     -1 if self.acks == -1 else 1)
        except BaseException as exc:  # noqa: BLE001 - the batch's futures carry the error
            if self._pipelined(batch):
                self._pipeline_failed(batch, _as_rayka(exc))
            else:
                self._done(batch, None, _as_rayka(exc))
            return
        if self._pipelined(batch):
            call.on_done(lambda result, error: self._written(batch, handle, result, error))
            return
        call.on_done(lambda result, error: self._done(batch, result, error))
        if self.acks == 0:
            batch.complete(-1, -1)

    def _written(self, batch: ProduceBatch, handle, result, error: BaseException | None) -> None:
        """A pipelined chunk's write answered: it waits for its replicas, and the partition may
        take the next write."""
        if error is not None:
            self._pipeline_failed(batch, error)
            return
        tp = (batch.topic, batch.partition)
        with self._q.cv:
            if self._q.inflight.get(tp) is batch:
                del self._q.inflight[tp]
            self._q.acking.setdefault(tp, []).append(batch)
            self._q.cv.notify_all()
        if not result.count:
            self._acked(batch, result, None)
            return
        try:
            call = handle.wait_acked(result.last_offset, result.leader_epoch)
        except BaseException as exc:  # noqa: BLE001
            self._pipeline_failed(batch, _as_rayka(exc))
            return
        call.on_done(lambda _, error: self._acked(batch, result, error))

    def _acked(self, batch: ProduceBatch, result, error: BaseException | None) -> None:
        """A pipelined chunk's replicas answered: settle the chunks acknowledged, oldest first."""
        if error is not None:
            self._pipeline_failed(batch, error)
            return
        with self._q.cv:
            batch.acked = result
            done = self._take_acked_locked((batch.topic, batch.partition))
        for b in done:
            self._settle(b, None, b.acked)

    def _take_acked_locked(self, tp: tuple[str, int]) -> list[ProduceBatch]:
        queue = self._q.acking.get(tp, [])
        done = []
        while queue and queue[0].acked is not None:
            done.append(queue.pop(0))
        if not queue:
            self._q.acking.pop(tp, None)
        return done

    def _pipeline_failed(self, batch: ProduceBatch, error: BaseException) -> None:
        """A pipelined chunk's write or wait failed: back to the front of its partition's queue
        (which stalls until nothing of it travels), or done for good."""
        tp = (batch.topic, batch.partition)
        retriable = self._retriable(batch, error)
        with self._q.cv:
            if self._q.inflight.get(tp) is batch:
                del self._q.inflight[tp]
            acking = self._q.acking.get(tp, [])
            if batch in acking:
                acking.remove(batch)
            done = self._take_acked_locked(tp)
            # Stalled even when it fails for good: the chunks behind it drain before the next write
            # (under a new producer id), so a retry of theirs cannot land after it.
            self._q.stalled.add(tp)
            if retriable:
                log.info("append to %s-%d failed (%s); retrying", batch.topic, batch.partition, error)
                self._q.metrics.retried(batch.topic)
                batch.retry_at = time.monotonic() + self.retry_backoff_s * min(batch.attempts, 10)
                queue = self._q.queued.setdefault(tp, [])
                # After the chunks numbered before it, before every later one: by when each took its
                # number, not its sequence, as a chunk retried under an old producer id must still
                # land before one numbered later under a new id.
                at = 0
                while at < len(queue) and queue[at].sequence >= 0 and queue[at].numbered < batch.numbered:
                    at += 1
                queue.insert(at, batch)
            self._q.cv.notify_all()
        for b in done:
            self._settle(b, None, b.acked)
        if not retriable:
            self._done(batch, None, error)  # not retriable (or past its deadline): settles it

    def _retriable(self, batch: ProduceBatch, error: BaseException | None) -> bool:
        retriable = error is not None and getattr(error, "retriable", False)
        if isinstance(error, (NotLeaderError, FencedLeaderEpochError, PartitionUnavailableError)):
            batch.leader_moved = True
            topic = self._cached_topic(batch.topic)
            # A leader whose node is gone: another replica is elected; ask the coordinator again.
            retriable = retriable or bool(topic is not None and topic.replicated)
        return retriable and time.monotonic() < batch.deadline

    def _done(self, batch: ProduceBatch, result, error: BaseException | None) -> None:
        """Completion of one append (runs on a Ray callback thread or the sender): its
        AppendResult, or the rayka error it failed with."""
        if self._retriable(batch, error):
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
            if self._q.inflight.get(tp) is batch:  # a pipelined chunk settles after the next write left
                del self._q.inflight[tp]
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
            # A pipelined chunk queued again for a retry may be written already: it stays.
            unsent = [b for b in self._q.unsent_locked() if b.sequence < 0]
            self._q.open.clear()
            kept = {tp: [b for b in q if b.sequence >= 0] for tp, q in self._q.queued.items()}
            self._q.queued = {tp: q for tp, q in kept.items() if q}
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
