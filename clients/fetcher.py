"""Fetcher: keeps one long-poll fetch in flight per partition and buffers what comes back.

A fetch (``PartitionClient.fetch``, clients/stubs.py) answers a
:class:`rayka.messages.FetchResponse`: stored messages (Arrow IPC: inline bytes
when small, else buffers zero-copy out of the object store), and the partition's
schema once, with the first fetch. The fetcher decodes them
into record batches, slices off what lies before the requested offset, and
queues them per partition. As soon as a fetch
returns, the next one for that partition is sent, so the partition actor reads
ahead while the user processes records. Buffers are bounded: a partition with
``max_buffered_records`` records, or one fetch's worth of bytes
(``max_partition_bytes``), waiting gets no new fetch until they are consumed.

Each partition stands alone, so one in trouble never holds back the others:

- *Unavailable* (its actor died, is restarting, or cannot run because its node is
  gone): the partition is marked ``unavailable`` with the reason, retried with a
  backoff growing to ``MAX_RETRY_BACKOFF_S`` (asking the coordinator for a fresh
  handle each time), and the others go on. A fetch that succeeds clears the mark.
- *A follower that cannot serve* (with ``client_rack``, clients/read_replicas.py): the
  partition reads from its leader at once, with no backoff and without a mark, until
  the next choice of its read replica; nothing a follower answers resets a position.
- *Damaged* (a fetch raised CorruptRecordError): fetching it stops and the error
  waits on the partition; ``due_error()`` hands it out only once every record
  before the damage was taken, i.e. when the position has reached it. A seek
  clears it.

Not thread-safe (like Kafka's consumer): one thread drives a Consumer.
"""

from __future__ import annotations

import logging
import time
from collections import deque

import pyarrow as pa
import pyarrow.ipc as ipc

from rayka.clients.stubs import wait_first
from rayka.clients.types import TopicPartition
from rayka.errors import (CorruptRecordError, FencedLeaderEpochError, LogOpenError, NotLeaderError,
                          OffsetOutOfRangeError, PartitionUnavailableError, RaykaError)
from rayka.partitions import codec

__all__ = ["Fetcher", "PartitionState", "FetchMetrics"]

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 0.1
MAX_RETRY_BACKOFF_S = 2.0


class FetchMetrics:
    """Counters of what the fetches brought (Consumer.metrics() reports them)."""

    __slots__ = ("fetches", "fetch_errors", "records_fetched", "bytes_fetched", "batches_fetched",
                 "records_fetched_from_followers", "read_replica_fallbacks")

    def __init__(self) -> None:
        self.fetches = self.fetch_errors = 0
        self.records_fetched = self.bytes_fetched = self.batches_fetched = 0
        self.records_fetched_from_followers = self.read_replica_fallbacks = 0


class PartitionState:
    """Fetch state of one assigned partition."""

    __slots__ = ("tp", "handle", "position", "fetch_offset", "inflight", "inflight_offset", "buffered",
                 "buffered_records", "buffered_bytes", "paused", "high_watermark", "log_start_offset",
                 "retry_at", "schema", "lookup", "lookup_since", "unavailable", "failures", "error",
                 "error_offset", "open_error", "read_handle", "read_replica", "rechoose_at", "inflight_follower",
                 "served_by", "ends")

    def __init__(self, tp: TopicPartition, handle):
        self.tp = tp
        self.handle = handle  # the partition's PartitionClient (clients/stubs.py)
        self.position: int | None = None  # next offset to hand to the user
        self.fetch_offset: int | None = None  # next offset to ask the partition for
        self.inflight = None  # the fetch in flight (a stubs.Pending)
        self.inflight_offset = -1
        self.buffered: deque[pa.RecordBatch] = deque()
        self.buffered_records = 0
        self.buffered_bytes = 0  # estimated from the batches' sizes; bounds memory with the count
        self.paused = False
        self.high_watermark = -1
        self.log_start_offset = -1
        self.retry_at = 0.0
        self.schema: pa.Schema | None = None  # the partition's log schema, asked for on the first fetch
        self.lookup = None  # an offsets() call in flight to give the partition its first position
        self.lookup_since = 0.0
        self.unavailable: str | None = None  # why the partition cannot be reached now (None: it can)
        self.failures = 0  # consecutive failed calls, for the retry backoff
        self.error: CorruptRecordError | None = None  # damage found at error_offset, raised when reached
        self.error_offset = -1
        self.open_error: str | None = None  # the LogOpenError last raised for this partition (once each)
        self.read_handle = None  # a follower's PartitionClient to fetch from (client_rack), None: ``handle``
        self.read_replica: int | None = None  # the replica chosen to read from (read_replicas.py)
        self.rechoose_at = 0.0  # when to choose the read replica again
        self.inflight_follower = False  # the fetch in flight went to ``read_handle``
        self.served_by: int | None = None  # the replica that answered the last fetch
        # Pushed-down fetches: where each buffered batch's fetch ended (a filter drops records,
        # so the position after a batch is the fetch's next_offset, not its last offset + 1).
        self.ends: deque[int] = deque()

    def seek(self, offset: int) -> None:
        self.position = self.fetch_offset = offset
        self.buffered.clear()
        self.ends.clear()
        self.buffered_records = self.buffered_bytes = 0
        self.inflight = None  # a fetch still travelling is now stale; its answer is dropped
        self.lookup = None  # so is a position look-up: the user's seek wins
        self.error = None

    def take(self, limit: int) -> list[pa.RecordBatch]:
        """Up to ``limit`` buffered records, advancing the position."""
        out = []
        while self.buffered and limit > 0:
            batch = self.buffered[0]
            end = None
            if batch.num_rows <= limit:
                self.buffered.popleft()
                end = self.ends.popleft() if self.ends else None
            else:
                self.buffered[0] = batch.slice(limit)
                batch = batch.slice(0, limit)
            out.append(batch)
            limit -= batch.num_rows
            # Bytes leave in proportion to records: exact enough for a bound, no per-slice sizing.
            self.buffered_bytes -= self.buffered_bytes * batch.num_rows // self.buffered_records
            self.buffered_records -= batch.num_rows
            self.position = end if end is not None else batch.column(0)[-1].as_py() + 1
        if not self.buffered_records:
            self.buffered_bytes = 0
        return out


class Fetcher:
    """Drives fetches for a set of partitions; hands out decoded record batches."""

    def __init__(self, *, max_wait_ms: int, max_partition_records: int, max_partition_bytes: int,
                 max_buffered_records: int, on_out_of_range, refresh_handle=None, read_replicas=None,
                 columns=None, filter=None):
        self.max_wait_ms = max_wait_ms
        self.max_partition_records = max_partition_records
        self.max_partition_bytes = max_partition_bytes
        self.max_buffered_records = max_buffered_records
        self._on_out_of_range = on_out_of_range  # callback(state, error) -> None (resets or raises)
        self._refresh_handle = refresh_handle  # callback(tp) -> a fresh partition actor handle
        self._read_replicas = read_replicas  # a read_replicas.ReadReplicas (client_rack), or None: the leader
        # Pushed down into the partitions (None, None: the usual fetch, whole stored batches).
        self.columns, self.filter = (None if columns is None else list(columns)), filter
        self.schema_versions: dict[str, int] = {}  # typed topic -> the value-schema version read in
        self.pushdown = columns is not None or filter is not None
        self.pending_open_errors: list[LogOpenError] = []  # raised by poll(), one a call
        self.states: dict[TopicPartition, PartitionState] = {}
        self.metrics = FetchMetrics()
        self._rr = 0

    def fetchable(self) -> list[PartitionState]:
        return [s for s in self.states.values() if not s.paused and s.position is not None and s.error is None]

    def mark_unavailable(self, state: PartitionState, exc: BaseException) -> None:
        """The partition could not be reached: remember why, back off, and ask for a fresh
        handle (the actor may have been re-created under its name)."""
        state.failures += 1
        state.unavailable = str(exc)
        backoff = min(MAX_RETRY_BACKOFF_S, RETRY_BACKOFF_S * 2 ** (state.failures - 1))
        state.retry_at = time.monotonic() + backoff
        if self._refresh_handle is not None:
            try:
                state.handle = self._refresh_handle(state.tp)
                state.schema = None  # a re-created topic may have another schema
                state.rechoose_at = 0.0  # fresh metadata: the read replica is chosen again from it
            except Exception:  # noqa: BLE001 - the coordinator may be restarting too; retry later
                pass

    def log_open_failed(self, state: PartitionState, exc: LogOpenError) -> None:
        """The partition's files cannot be opened: it is unavailable (the others are read, it is
        retried after a backoff), and its LogOpenError is raised by the next poll, once for each
        failure (a partition nobody fixes must not stop the consumer poll after poll)."""
        self.mark_unavailable(state, exc)
        if state.open_error != str(exc):
            state.open_error = str(exc)
            self.pending_open_errors.append(exc)

    def take_open_error(self) -> LogOpenError | None:
        """The first LogOpenError not raised yet, if any."""
        return self.pending_open_errors.pop(0) if self.pending_open_errors else None

    @staticmethod
    def mark_available(state: PartitionState) -> None:
        if state.unavailable is not None:
            log.info("%s-%d is available again", state.tp.topic, state.tp.partition)
        state.unavailable = None
        state.failures = 0
        state.open_error = None

    def due_error(self) -> tuple[PartitionState, CorruptRecordError] | None:
        """The damage error of a partition whose position has reached it (every record before
        the damage handed out), if any: raising it now skips nothing."""
        for s in self.states.values():
            if s.error is not None and not s.paused and not s.buffered_records:
                return s, s.error
        return None

    def raise_due_error(self) -> None:
        """Raise :meth:`due_error`'s damage (naming the partition and position) if there is one.
        Every record before the damage was handed out first, so seeking past it (as the error
        says) skips only the damaged offsets; it is raised again on each poll until the user seeks."""
        due = self.due_error()
        if due is not None:
            state, exc = due
            raise CorruptRecordError(f"{state.tp.topic}-{state.tp.partition} at position {state.position}: {exc}",
                                     first_offset=exc.first_offset, next_offset=exc.next_offset)

    def lags(self) -> dict[TopicPartition, int | None]:
        """Per assigned partition, its high watermark minus its position as of its last fetch
        (None before the first, or without a position)."""
        return {tp: max(0, s.high_watermark - s.position) if s.position is not None and s.high_watermark >= 0
                else None for tp, s in self.states.items()}

    def send(self) -> None:
        """Start a fetch for every fetchable partition that has none in flight and room to buffer."""
        now = time.monotonic()
        for s in self.fetchable():
            room = s.buffered_records < self.max_buffered_records and s.buffered_bytes < self.max_partition_bytes
            if s.inflight is None and room and s.retry_at <= now:
                if self._read_replicas is not None and s.rechoose_at <= now:
                    self._read_replicas.choose(s, now)
                s.inflight_offset = s.fetch_offset
                s.inflight_follower = s.read_handle is not None
                args = (s.fetch_offset, self.max_partition_records, self.max_partition_bytes, self.max_wait_ms,
                        s.schema is None)
                handle = s.read_handle if s.inflight_follower else s.handle
                version = self.schema_versions.get(s.tp.topic)
                if self.pushdown or version is not None:
                    s.inflight = handle.fetch(*args, replica_read=s.inflight_follower, columns=self.columns,
                                              filter=self.filter, schema_version=version)
                elif s.inflight_follower:
                    s.inflight = handle.fetch(*args, replica_read=True)
                else:
                    s.inflight = handle.fetch(*args)

    def buffered(self) -> int:
        return sum(s.buffered_records for s in self.states.values() if not s.paused)

    def wait(self, timeout_s: float) -> int:
        """Wait up to ``timeout_s`` for fetches; absorb those that returned. Returns records added."""
        self.send()
        pending = {s.inflight: s for s in self.states.values() if s.inflight is not None}
        if not pending:
            # Nothing to wait on (no assignment, or every partition backing off after a
            # failure): let the caller's timeout pass in short steps.
            if timeout_s > 0:
                time.sleep(min(timeout_s, RETRY_BACKOFF_S / 2))
            return 0
        added = 0
        for call in wait_first(list(pending), max(timeout_s, 0)):
            state = pending[call]
            if state.inflight is not call:
                continue
            state.inflight = None
            added += self._absorb(state, call)
        self.send()
        return added

    def _absorb(self, state: PartitionState, call) -> int:
        self.metrics.fetches += 1
        if state.inflight_follower:
            try:
                answer = call.result()
            except RaykaError as exc:
                # Whatever the follower says (not in sync, offset outside its log, damage, gone), the
                # leader is asked instead; only the leader's answers reset positions or raise damage.
                self.metrics.fetch_errors += 1
                self.metrics.read_replica_fallbacks += 1
                self._read_replicas.fall_back(state, exc)
                return 0
            return self._take(state, answer)
        try:
            answer = call.result()
        except OffsetOutOfRangeError as exc:
            self.mark_available(state)
            self._on_out_of_range(state, exc)
            return 0
        except CorruptRecordError as exc:
            # Damage at the fetch offset. Records before it may still be buffered: they go to
            # the user first, and the error only when the position gets here (due_error).
            self.metrics.fetch_errors += 1
            self.mark_available(state)
            if state.fetch_offset == state.inflight_offset and not state.paused:
                state.error, state.error_offset = exc, state.inflight_offset
            return 0
        except (PartitionUnavailableError, NotLeaderError, FencedLeaderEpochError) as exc:
            # The actor died and Ray is restarting it, or its node is gone, or another replica
            # leads now: fetch again after a backoff from the leader the coordinator names, as
            # Kafka consumers do when a leader goes away; the others go on.
            self.metrics.fetch_errors += 1
            log.info("%s-%d: %s; retrying the fetch", state.tp.topic, state.tp.partition, exc)
            self.mark_unavailable(state, exc)
            return 0
        except LogOpenError as exc:
            self.metrics.fetch_errors += 1
            self.log_open_failed(state, exc)
            return 0
        return self._take(state, answer)

    def _take(self, state: PartitionState, answer) -> int:
        """Buffer the records of a fetch's ``answer``; the number added."""
        self.mark_available(state)
        state.served_by = answer.replica_id if answer.replica_id >= 0 else None
        if answer.schema is not None:
            state.schema = ipc.read_schema(pa.py_buffer(answer.schema))
        if state.paused or state.fetch_offset != state.inflight_offset:
            return 0
        state.high_watermark = answer.high_watermark
        state.log_start_offset = answer.log_start_offset
        if self.pushdown:
            return self._take_pushed(state, answer)
        start = answer.offset
        added = 0
        payload = answer.payload
        buffers = (pa.py_buffer(payload),) if isinstance(payload, bytes) else payload
        for buf in buffers:
            self.metrics.bytes_fetched += buf.size
            for msg in codec.iter_messages(buf):
                self.metrics.batches_fetched += 1
                batch = codec.decode(msg, state.schema)
                first = msg.header.base_offset
                if msg.header.next_offset <= start:
                    continue
                if first < start:
                    batch = batch.slice(start - first)
                state.buffered.append(batch)
                state.buffered_records += batch.num_rows
                state.buffered_bytes += batch.nbytes
                added += batch.num_rows
        if answer.records:
            state.fetch_offset = answer.next_offset
        self.metrics.records_fetched += added
        if state.inflight_follower:
            self.metrics.records_fetched_from_followers += added
        return added

    def _take_pushed(self, state: PartitionState, answer) -> int:
        """A pushed-down answer: messages of the kept rows (offsets may jump), or none, and
        ``next_offset`` past what the partition scanned, which the position reaches once the
        rows before it were handed out (a filter that keeps nothing still moves it on)."""
        start, nxt, added = answer.offset, answer.next_offset, 0
        payload = answer.payload
        batches = []
        for buf in (pa.py_buffer(payload),) if isinstance(payload, bytes) else payload:
            self.metrics.bytes_fetched += buf.size
            for msg in codec.iter_messages(buf):
                self.metrics.batches_fetched += 1
                batch = codec.decode(msg, state.schema)
                if batch.num_rows:
                    batches.append(batch)
        for i, batch in enumerate(batches):
            state.buffered.append(batch)
            # One message per stored batch: the last one's end is where the partition's scan ended.
            state.ends.append(nxt if i == len(batches) - 1 else batch.column(0)[-1].as_py() + 1)
            state.buffered_records += batch.num_rows
            state.buffered_bytes += batch.nbytes
            added += batch.num_rows
        if nxt > start:
            if not added:
                if state.ends:
                    state.ends[-1] = nxt  # handed out with the last buffered batch
                elif state.position == start:
                    state.position = nxt  # nothing kept, nothing waiting: the position moves at once
            state.fetch_offset = nxt
        self.metrics.records_fetched += added
        if state.inflight_follower:
            self.metrics.records_fetched_from_followers += added
        return added

    def drain(self, max_records: int) -> list[tuple[PartitionState, list[pa.RecordBatch]]]:
        """Take up to ``max_records`` buffered records, rotating fairly over partitions."""
        states = [s for s in self.states.values() if s.buffered_records and not s.paused]
        if not states:
            return []
        self._rr = (self._rr + 1) % len(states)
        states = states[self._rr:] + states[: self._rr]
        taken: dict[TopicPartition, list[pa.RecordBatch]] = {}  # in turn order; one entry a partition
        share = max(1, max_records // len(states))
        for s in states:
            if max_records <= 0:
                break
            batches = s.take(min(share, max_records) if len(states) > 1 else max_records)
            max_records -= sum(b.num_rows for b in batches)
            taken[s.tp] = batches
        for s in states:  # hand out what the fair share left over, after the same partition's first share
            if max_records <= 0:
                break
            if s.buffered_records:
                batches = s.take(max_records)
                max_records -= sum(b.num_rows for b in batches)
                taken.setdefault(s.tp, []).extend(batches)
        return [(self.states[tp], batches) for tp, batches in taken.items()]

    def deadline_wait(self, timeout_ms: float, want: int = 1) -> None:
        """Wait until ``want`` records are buffered, an error is due, or ``timeout_ms`` passes."""
        deadline = time.monotonic() + timeout_ms / 1000.0
        while self.buffered() < want and self.due_error() is None and not self.pending_open_errors:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.wait(0)
                return
            self.wait(remaining)
