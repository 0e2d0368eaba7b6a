"""A replica while it follows: the fetch loop that copies its leader's log.

One :class:`FollowerRole` exists per leader epoch a replica follows. Its thread
(:meth:`run`) fetches from the leader in batches, long-polling at the leader's log
end, with the follower's log end as the fetch offset and its latest epoch (Kafka's
fetch with a replica id, and KIP-595's diverging-epoch check inside the fetch):

- records: appended verbatim (``PartitionLog.append_replicated``), keeping their
  offsets, leader epochs and producer ids and sequences;
- a diverging epoch: the follower's tail was never the leader's; truncate by epoch
  (divergence.truncation_for) and fetch again, so a returning old leader drops exactly
  its divergent tail, never by the high watermark alone;
- out of range below the leader's log start (retention ran there): start the log
  again at the leader's start (a new or long-gone replica);
- damaged offsets in its own log (corrupt batches found when the log opened, or by a
  read since): before the next fetch, truncate to the first of them and copy everything
  from there again, rather than keep a hole the leader's copy can fill.

The leader's high watermark (HW) comes with every answer; the follower's is the
leader's as far as its own log goes (replica_set.follower_high_watermark), what a
read from this follower may serve (KIP-392): every offset below it is below the
leader's HW, so committed, and within this role the follower's log up to its end is
the leader's. Such reads are served only while :meth:`may_serve_reads`: the last
answer's committed ISR names this replica and it came within
``replica.lag.time.max.ms`` (a follower cut off from its leader stops serving rather
than serve a stale log for ever). For a while after it served a read
(:meth:`note_read`) its fetches carry the HW it knows, and the leader answers as soon as
its HW passes that, so a committed record reaches follower reads without waiting out
the leader's long-poll. Errors back off and retry for as long as the
role lasts: the leader may be restarting or deposed (the coordinator then gives this
replica a new role), or this replica's disk may be full (it falls out of the ISR,
the leader goes on). ``fetch`` is injected (the actor makes it a Ray call), so this
is pure and tested without Ray.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pyarrow as pa

from ..coordinator.clock import MonotonicClock
from ..coordinator.election import PartitionState
from ..errors import CorruptRecordError, NotLeaderError
from ..messages import ReplicaFetchRequest, ReplicaFetchResponse
from .divergence import out_of_range_reset, truncation_for
from .epoch_cache import EpochEndOffset
from .replica_set import follower_high_watermark

__all__ = ["FollowerRole", "FETCH_MAX_BYTES", "FETCH_MAX_WAIT_MS"]

log = logging.getLogger(__name__)

#: Bytes a follower asks for per fetch (Kafka's replica.fetch.max.bytes is 1 MiB; Arrow
#: batches are larger, and the bytes move zero-copy).
FETCH_MAX_BYTES = 16 * 1024 * 1024
#: How long a fetch at the leader's log end waits for new records (replica.fetch.wait.max.ms).
FETCH_MAX_WAIT_MS = 500
_BACKOFF_S = (0.05, 0.1, 0.2, 0.5, 1.0)
#: For how long after a consumer read a follower still asks its leader for HW moves at once.
READS_RECENT_MS = 10_000


class FollowerRole:
    """Replica ``replica_id`` following ``state.leader`` at ``state.leader_epoch``.

    ``plog`` is its PartitionLog; ``fetch(request) -> ReplicaFetchResponse`` asks the
    leader (raising what the leader or the transport raised); ``name`` is for logs;
    ``clock`` gives milliseconds (coordinator.clock).
    """

    def __init__(self, plog, state: PartitionState, replica_id: int,
                 fetch: Callable[[ReplicaFetchRequest], ReplicaFetchResponse], *, name: str = "",
                 max_bytes: int = FETCH_MAX_BYTES, max_wait_ms: int = FETCH_MAX_WAIT_MS,
                 clock: Callable[[], int] | None = None):
        self._log = plog
        self.state = state
        self.replica_id = replica_id
        self.leader_epoch = state.leader_epoch
        self._fetch = fetch
        self._name = name
        self._max_bytes, self._max_wait_ms = max_bytes, max_wait_ms
        self._stop = threading.Event()
        self._hw_moved = threading.Condition()
        self._hw = 0
        self._clock = clock or MonotonicClock()  # milliseconds (coordinator.clock)
        self._isr = tuple(state.isr)  # the controller's until the leader's first answer
        self._answered_at = self._clock()  # of the last answer from the leader (the role's start before one)
        self._read_at: int | None = None  # of the last consumer read served here
        self.fetches = 0
        self.last_error: BaseException | None = None

    @property
    def high_watermark(self) -> int:
        return self._hw

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """End the role; the loop returns after the fetch in flight (at most its wait)."""
        self._stop.set()
        with self._hw_moved:
            self._hw_moved.notify_all()

    def may_serve_reads(self, lag_time_max_ms: float) -> bool:
        """Whether consumer reads may come here (KIP-392): the role acts, this replica is in the
        leader's committed ISR as last heard, and the leader answered within ``lag_time_max_ms``
        (the leader's own bound for dropping a follower from the ISR; the role's start counts
        before the first answer). Until that answer the controller's ISR counts and the HW is 0,
        so a read waits for it."""
        if self._stop.is_set() or self.replica_id not in self._isr:
            return False
        return self._clock() - self._answered_at <= lag_time_max_ms

    def note_read(self) -> None:
        """A consumer reads here: for a while, fetches ask the leader to answer as soon as its HW
        moves (ReplicaFetchRequest.high_watermark), so new records reach those reads promptly."""
        self._read_at = self._clock()

    def wait_for_hw(self, offset: int, timeout_s: float) -> bool:
        """Block until this follower's HW passes ``offset`` (a follower read's long-poll), the role
        ends, or ``timeout_s``; True if the HW passed it."""
        with self._hw_moved:
            return self._hw_moved.wait_for(lambda: self._hw > offset or self._stop.is_set(), timeout_s) and \
                self._hw > offset

    def damaged_read(self, exc: CorruptRecordError) -> Exception:
        """The error for a consumer whose read from this follower (KIP-392) met damaged offsets
        (``exc``; the log noted them): NotLeaderError (retriable), as the next fetch copies them
        again from the leader (:meth:`_repair`)."""
        return NotLeaderError(f"this follower's copy is damaged ({exc}); it copies those offsets again from "
                              "the leader: retry, or read from the leader")

    def run(self) -> None:
        """Fetch and apply until :meth:`stop`."""
        failures = 0
        while not self._stop.is_set():
            try:
                self.step()
                failures, self.last_error = 0, None
            except Exception as exc:  # noqa: BLE001 - every failure backs off and retries
                if self._stop.is_set():
                    return
                if failures == 0 or failures % 20 == 0:
                    log.warning("follower %s (replica %d, epoch %d): fetch failed (%s: %s); retrying",
                                self._name, self.replica_id, self.leader_epoch, type(exc).__name__,
                                (str(exc).splitlines() or [""])[0])
                self.last_error = exc
                self._stop.wait(_BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)])
                failures += 1

    def step(self) -> int:
        """One fetch and what it brings; the number of records copied."""
        plog = self._log
        if plog.damaged_offsets:
            self._repair()
        reads = self._read_at is not None and self._clock() - self._read_at <= READS_RECENT_MS
        request = ReplicaFetchRequest(self.replica_id, plog.log_end_offset, plog.latest_epoch, self.leader_epoch,
                                      self._max_bytes, self._max_wait_ms, self._hw if reads else -1)
        answer = self._fetch(request)
        self.fetches += 1
        if self._stop.is_set():
            return 0  # a new role may already own the log
        if answer.isr:
            self._isr = tuple(answer.isr)
        self._answered_at = self._clock()
        if answer.diverging is not None:
            cut = truncation_for(plog.epoch_cache, plog.log_start_offset, plog.log_end_offset,
                                 EpochEndOffset(*answer.diverging))
            log.warning("follower %s (replica %d): log diverges from the leader's at epoch %d; truncating to %d",
                        self._name, self.replica_id, answer.diverging[0], cut.offset)
            plog.truncate_to(cut.offset)
            self._hw = min(self._hw, plog.log_end_offset)
            return 0
        if answer.out_of_range:
            start = out_of_range_reset(plog.log_end_offset, answer.log_start_offset, answer.log_end_offset)
            if start > plog.log_end_offset or plog.log_end_offset < answer.log_start_offset:
                log.warning("follower %s (replica %d): the leader's log starts at %d; starting this log there",
                            self._name, self.replica_id, start)
                plog.truncate_fully(start)
            return 0
        before = plog.log_end_offset
        if _has_bytes(answer.payload):
            version = answer.schema_version
            if answer.value_schema is not None and version not in plog.schemas:
                # A version registered since this replica opened: kept before its batches are.
                plog.add_schema_versions({version: pa.ipc.read_schema(pa.py_buffer(answer.value_schema))})
            plog.append_replicated(answer.payload, None if version < 0 else version)
        hw = max(self._hw, follower_high_watermark(answer.high_watermark, plog.log_end_offset))
        if hw != self._hw:
            with self._hw_moved:
                self._hw = hw
                self._hw_moved.notify_all()
        return plog.log_end_offset - before

    def _repair(self) -> None:
        """Cut the log at its first damaged offset (the rest is fetched again from the leader)."""
        plog = self._log
        first = min(first for first, _ in plog.damaged_offsets)
        log.warning("follower %s (replica %d): offsets from %d on are damaged here; copying them again from "
                    "the leader", self._name, self.replica_id, first)
        plog.truncate_to(first)
        plog.damaged_offsets = []
        with self._hw_moved:
            self._hw = min(self._hw, plog.log_end_offset)  # reads of it stop where its records do


def _has_bytes(payload) -> bool:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return len(payload) > 0
    return any(getattr(b, "size", len(b)) for b in payload)
