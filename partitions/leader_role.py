"""A replica while it leads its partition: the ReplicaSet under a lock, and the waits on it.

One :class:`LeaderRole` exists per leader epoch of a replica (partitions/replica_set.py
holds the rules: follower log ends, ISR, high watermark, acks). This class adds what
several threads of the partition actor need around those rules:

- appends report the new log end (:meth:`on_append`); follower fetches report their
  fetch offset (:meth:`on_follower_fetch`); both may move the high watermark (HW), and
  every move wakes the threads waiting in :meth:`wait_acked` (acks="all" appends) and
  :meth:`wait_for_hw` (consumer long-polls);
- ISR changes are proposed by one thread (the actor's ISR loop): :meth:`isr_request`
  gives the change to send (a new one, or the pending one again when the last answer was
  unknown), :meth:`isr_committed` / :meth:`isr_rejected` / :meth:`adopt` take the answer;
- :meth:`resign` ends the role (another replica leads, or the coordinator fenced this
  one): every waiter wakes with NotLeaderError, and the role refuses everything after;
- :meth:`damaged_read` says what a consumer whose read met damaged offsets in this
  leader's log gets: NotLeaderError (retriable) while another in-sync replica holds those
  offsets and for :data:`DAMAGE_HANDOVER_MS` after the damage was first met, as the
  controller meanwhile moves the leadership to an undamaged in-sync replica (the
  consumer's retry reads there); after that, the CorruptRecordError itself.

An append's acks="all" wait ends with the HW past it, or NotEnoughReplicasError when it
committed with fewer in-sync replicas than ``min.insync.replicas``, or, at its timeout,
NotEnoughReplicasError too (retriable: an idempotent producer's retry of the same batch
is answered from the producer state, then waits again). Pure: no Ray; the clock is
injected (coordinator.clock, milliseconds).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ..coordinator.election import AlterPartitionRequest, PartitionState
from ..coordinator.clock import SystemClock
from ..errors import CorruptRecordError, NotEnoughReplicasError, NotLeaderError
from ..messages import ReplicaFetchRequest, ReplicaFetchResponse
from .divergence import diverging_epoch
from .replica_set import ReplicaSet, check_leader_epoch

__all__ = ["LeaderRole", "serve_replica_fetch", "INLINE_PAYLOAD_BYTES", "DAMAGE_HANDOVER_MS"]

#: A follower fetch answer smaller than this is joined into one bytes object (inline in Ray's reply).
INLINE_PAYLOAD_BYTES = 64 * 1024
#: How long a leader that met damaged offsets answers reads of them retriably, waiting for the
#: controller (a check every 0.5 s) to hand the leadership to an undamaged in-sync replica.
DAMAGE_HANDOVER_MS = 10_000


class LeaderRole:
    """Leadership of one partition by replica ``replica_id`` for ``state.leader_epoch``.

    ``log_end`` is the log's end when it took over (the start of its epoch in the epoch
    cache), ``high_watermark`` the HW it knew as a follower (0 after a restart: the HW then
    rises as the followers fetch).
    """

    def __init__(self, state: PartitionState, replica_id: int, log_end: int, high_watermark: int, *,
                 min_insync_replicas: int = 1, lag_time_max_ms: int = 30_000,
                 clock: Callable[[], int] | None = None):
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._clock = clock or SystemClock()
        self._damage_met_ms: int | None = None  # when a read first met damage in this role
        self._set = ReplicaSet(state, replica_id, log_end, min(high_watermark, log_end), log_end,
                               min_insync_replicas=min_insync_replicas, lag_time_max_ms=lag_time_max_ms,
                               clock=self._clock)
        self.replica_id = replica_id
        self.leader_epoch = state.leader_epoch
        self._resigned: str | None = None
        self._isr_resend = False  # the pending ISR change's answer was lost: send it again

    # -- what it knows ---------------------------------------------------------------------

    @property
    def high_watermark(self) -> int:
        return self._set.high_watermark

    @property
    def isr(self) -> tuple[int, ...]:
        return self._set.isr

    @property
    def replicas(self) -> tuple[int, ...]:
        return self._set.replicas

    @property
    def partition_epoch(self) -> int:
        return self._set.partition_epoch

    @property
    def resigned(self) -> bool:
        return self._resigned is not None

    def follower_leo(self, replica: int) -> int:
        with self._lock:
            return self._set.follower(replica).leo

    # -- requests ----------------------------------------------------------------------------

    def check_request(self, leader_epoch: int, what: str) -> None:
        """Fence a client request naming ``leader_epoch`` (-1: unchecked)."""
        check_leader_epoch(self.leader_epoch, leader_epoch, serving=self._resigned is None, what=what)

    def check_acks_all(self) -> None:
        """Refuse an acks="all" append before it is written (NotEnoughReplicasError)."""
        with self._lock:
            self._check_leading()
            self._set.check_acks_all()

    def on_append(self, log_end: int) -> None:
        with self._lock:
            if self._resigned is None and log_end > self._set.log_end:
                self._set.on_append(log_end)
                self._changed.notify_all()

    def on_follower_fetch(self, replica: int, fetch_offset: int) -> None:
        """A follower fetched from ``fetch_offset`` (its log end; checked for divergence first)."""
        with self._lock:
            self._check_leading()
            if self._set.on_follower_fetch(replica, fetch_offset):
                self._changed.notify_all()

    def wait_acked(self, last_offset: int, timeout_s: float) -> None:
        """Block until the append ending at ``last_offset`` is below the HW (acks="all")."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                self._check_leading()
                if self._set.acked(last_offset):
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    isr = list(self._set.maximal_isr)
                    raise NotEnoughReplicasError(
                        f"offset {last_offset} was written by the leader but not copied by every in-sync replica "
                        f"(ISR {isr}) within {timeout_s:g}s; it is not visible to consumers yet. The send is "
                        "retried until delivery_timeout_ms (an idempotent producer writes no duplicate)")
                self._changed.wait(remaining)

    def wait_for_hw(self, offset: int, timeout_s: float) -> bool:
        """Block until the HW passes ``offset`` (a consumer long-poll), the role ends, or
        ``timeout_s``; True if the HW passed it."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._set.high_watermark <= offset and self._resigned is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return self._set.high_watermark > offset

    def wait_for_news(self, offset: int, known_hw: int, timeout_s: float) -> None:
        """Block until the log end passes ``offset``, the HW passes ``known_hw`` (a follower that
        serves consumer reads must learn it soon), the role ends, or ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while (self._set.log_end <= offset and self._set.high_watermark <= known_hw
                   and self._resigned is None):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                self._changed.wait(remaining)

    def damaged_read(self, exc: CorruptRecordError) -> Exception:
        """The error to answer a consumer whose read met damaged offsets (``exc``) in this leader's
        log. Reads stop at the HW, below which every ISR member holds every record: with another
        in-sync replica, NotLeaderError (retriable) for DAMAGE_HANDOVER_MS from the first damaged
        read, while the controller hands the leadership to an undamaged one; else ``exc``."""
        with self._lock:
            now = self._clock()
            if self._damage_met_ms is None:
                self._damage_met_ms = now
            others = [r for r in self._set.isr if r != self.replica_id]
            if not others or now - self._damage_met_ms > DAMAGE_HANDOVER_MS:
                return exc
        return NotLeaderError(
            f"this leader's copy is damaged ({exc}); in-sync replica(s) {others} hold those offsets and "
            "the leadership moves to an undamaged one: ask the coordinator for the partition's leader and retry")

    # -- ISR changes (one thread) -------------------------------------------------------------

    def isr_request(self) -> AlterPartitionRequest | None:
        """The ISR change to send now: the pending one again if its answer was lost, else a new
        one (shrinks first), else None."""
        with self._lock:
            if self._resigned is not None:
                return None
            if self._isr_resend and self._set.pending is not None:
                return self._set.pending
            self._isr_resend = False
            return self._set.next_isr_change()

    def isr_committed(self, state: PartitionState) -> None:
        """The coordinator's state after the change (or a newer one): adopt it."""
        with self._lock:
            self._isr_resend = False
            if self._resigned is None and self._set.adopt(state):
                self._changed.notify_all()

    def isr_unknown(self) -> None:
        """The change's answer was lost: it may have been made; send it again, never revert."""
        with self._lock:
            self._isr_resend = True

    def isr_rejected(self) -> None:
        with self._lock:
            self._isr_resend = False
            self._set.on_isr_rejected()

    def adopt(self, state: PartitionState) -> None:
        """A newer state of the partition with this replica still leading at this epoch."""
        self.isr_committed(state)

    def resign(self, why: str) -> None:
        """Stop leading: waiters and later calls get NotLeaderError saying ``why``."""
        with self._lock:
            if self._resigned is None:
                self._resigned = why
            self._changed.notify_all()

    def _check_leading(self) -> None:
        if self._resigned is not None:
            raise NotLeaderError(f"this replica no longer leads the partition ({self._resigned}); ask the "
                                 "coordinator for the partition's leader and retry")


def serve_replica_fetch(plog, leader: LeaderRole, request: ReplicaFetchRequest) -> ReplicaFetchResponse:
    """The leader's answer to a follower's fetch: fenced by epoch, checked for divergence
    (divergence.diverging_epoch), counted as the follower's log end (which may move the HW),
    then the stored messages from the fetch offset verbatim, long-polling at the log end. Every
    answer carries the leader's committed ISR: a follower serves consumer reads only while in it."""
    leader.check_request(request.leader_epoch, "replica fetch")
    offset = request.fetch_offset
    start, end = plog.log_start_offset, plog.log_end_offset
    diverging = diverging_epoch(plog.epoch_cache, end, offset, request.last_fetched_epoch)
    if diverging is not None:
        return ReplicaFetchResponse(b"", leader.high_watermark, start, end, diverging=tuple(diverging), isr=leader.isr)
    if not start <= offset <= end:
        return ReplicaFetchResponse(b"", leader.high_watermark, start, end, out_of_range=True, isr=leader.isr)
    leader.on_follower_fetch(request.replica_id, offset)
    if offset >= end and request.max_wait_ms > 0:
        if request.high_watermark >= 0:  # it serves reads: a new HW is news too (KIP-392)
            leader.wait_for_news(offset, request.high_watermark, request.max_wait_ms / 1000.0)
        else:
            plog.wait_for(offset, request.max_wait_ms / 1000.0)
    if plog.closed or offset >= plog.log_end_offset:
        return ReplicaFetchResponse(b"", leader.high_watermark, plog.log_start_offset, plog.log_end_offset,
                                    isr=leader.isr)
    # Whole stored batches: a batch cut to fit max_bytes would be re-encoded (a copy) without its
    # producer id, sequence and leader epoch, and take two fetches (so two round trips per acks="all" append).
    result = plog.read(offset, max_records=1 << 40, max_bytes=request.max_bytes, whole_batches=True)
    size = sum(buf.size for buf in result.buffers)
    payload = b"".join(result.buffers) if size < INLINE_PAYLOAD_BYTES else tuple(result.buffers)
    version = result.schema_version
    value = plog.schemas.serialized(version) if version > 1 and result.records else None
    return ReplicaFetchResponse(payload, leader.high_watermark, result.log_start_offset, plog.log_end_offset,
                                isr=leader.isr, schema_version=version, value_schema=value)
