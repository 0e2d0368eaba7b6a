"""PartitionLog: the append-only log of one partition, as a directory of segments.

Layout of a partition directory::

    00000000000000000000.arrows / .index / .timeindex    sealed segments
    00000000000000052000.arrows / .index / .timeindex    the active segment (last)
    producer_state.json                                  idempotence snapshot, written at roll
    .clean_shutdown                                      present only after close()
    .lock                                                flock'ed by the open log (dir_lock.py)

Invariants: offsets are dense from ``log_start_offset`` (the first segment's
base) to ``log_end_offset - 1``; segments are contiguous (segment_list.py); every
acknowledged batch was written to the OS before ``append`` returned (and fsynced
first under ``flush.policy=batch``). Opening recovers whatever state the directory is in
(log_loader.py: what is checked at open, and how producer state is rebuilt).
No batch is served before its CRC passed, and damaged batches with valid ones
after them stay in place as holes whose offsets are never reused (scan.py).
One PartitionLog at a time owns the directory: a second one, in any process,
raises LogDirLockedError. A write that fails (a full disk: ENOSPC; EIO...) keeps
nothing and raises LogWriteError/DiskFullError (segment.py: appends are all or
nothing; a roll creates the new segment before it seals the old one); the
upkeep in ``tick`` (index writes, rolls) logs such failures and tries again, and
retention, which frees space, still runs. Under ``flush.policy=interval`` the tick
fsyncs what was written (and the segments rolled) since the last one; what it could
not fsync stays pending until an fsync succeeds (retried by every tick), and the
failure is logged and raised, once, as LogWriteError by the next ``flush()`` (or
append under ``flush.policy=batch``, which then writes nothing): log_sync.py.

Thread-safety: ``append``, ``tick``, ``roll`` and ``close`` take the log's lock;
``read`` takes it only to snapshot the segment list and the high watermark, then
reads memory-mapped files without it, so a long read never blocks appends (log_read.py).
``wait_for`` lets a long-poll sleep until an append passes an offset.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from ..clock import Clock, SystemClock
from ..config import TopicConfig
from ..messages import AppendResult
from ..errors import CorruptRecordError, LogWriteError, RaykaError
from . import codec, reframe
from .epoch_cache import EpochCache
from .log_loader import CLEAN_SHUTDOWN, PRODUCER_SNAPSHOT, lock_and_load
from .log_read import check_range, merge_run, offset_for_time, read_segments
from .log_sync import PendingSync
from .producer_state import BatchRecord
from .read_result import ReadResult
from .records import prepare_batch, stamp_offsets
from . import schema_versions as schema_versions_file
from .retention import active_expired, roll_due
from .schema_versions import SchemaSet
from .segment_list import SegmentList
from .tail_cache import TAIL_CACHE_BYTES

__all__ = ["PartitionLog", "AppendResult", "ReadResult", "DEFAULT_MAX_BYTES"]

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
# A sealed segment nobody read for this long is unmapped, so the mapped (resident) pages of a
# partition stay around the segments being read now, not the whole log.
_RELEASE_AFTER_MS = 1_000


class PartitionLog:
    """The log of one partition. Opening it recovers from whatever state the directory is in."""

    def __init__(
        self,
        directory: str | Path,
        *,
        config: TopicConfig | None = None,
        value_schema: pa.Schema | None = None,
        schema_versions: dict[int, pa.Schema] | None = None,
        clock: Clock = SystemClock(),
    ):
        self.directory = Path(directory)
        self.config = config or TopicConfig()
        # Every value-schema version this log may hold (schema_versions.py): those given (a typed
        # topic's whole history, else ``value_schema`` alone) and those kept in schemas.json.
        self._schemas, unsaved = schema_versions_file.open_set(self.directory, value_schema, schema_versions)
        self._clock = clock
        self._lock = threading.RLock()
        self._appended = threading.Condition(self._lock)
        self._encode_buffer = codec.EncodeBuffer()  # used under the lock, by one append at a time
        self._closed = False
        self._sync = PendingSync(self.directory, self._lock, clock())
        self._dir_lock, loaded = lock_and_load(self.directory, self._schemas, self.config, clock())
        try:
            if unsaved:  # written only while holding the directory's lock
                schema_versions_file.save(self.directory, self._schemas.as_dict())
        except BaseException:
            self._dir_lock.release()
            raise
        self._segments = SegmentList(self.directory, loaded.segments, self.config.index_interval_bytes)
        self._producers = loaded.producers
        self.recovered_batches = loaded.recovered_batches
        self.truncated_bytes = loaded.truncated_bytes
        self.damaged_offsets: list[tuple[int, int]] = loaded.damaged_offsets  # (first, last) of each hole
        try:
            # Where each leader epoch starts (replication); in step with what the files hold.
            self._epochs = EpochCache.open(self.directory)
            self._epochs.truncate_from_end(self.log_end_offset)
            self._epochs.truncate_from_start(self.log_start_offset)
        except BaseException:
            self._dir_lock.release()
            raise

    # -- schema versions ----------------------------------------------------------------------

    @property
    def schema(self) -> pa.Schema:
        """The stored schema of the latest value-schema version this log knows."""
        return self._schemas.schema(self._schemas.latest)

    @property
    def schemas(self) -> SchemaSet:
        """Every schema version this log knows (schema_versions.py)."""
        return self._schemas

    @property
    def _schema_bytes(self) -> bytes:
        return self._schemas.message(self._schemas.latest)

    def add_schema_versions(self, value_schemas: dict[int, pa.Schema]) -> list[int]:
        """Learn schema versions registered since the log opened (kept in schemas.json first:
        LogWriteError with nothing learnt if that fails); the versions new to it."""
        with self._lock:
            return self._schemas.add(value_schemas, self.directory)

    # -- properties ---------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self._segments.log_start_offset

    @property
    def log_end_offset(self) -> int:
        """The offset the next record will get (Kafka's high watermark for a single replica)."""
        return self._segments.log_end_offset

    @property
    def size_bytes(self) -> int:
        return self._segments.size_bytes

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    # -- writing ------------------------------------------------------------------------------

    def append(self, batch: "pa.RecordBatch | pa.Table | reframe.ProducedBatch", *, producer_id: str | None = None,
               sequence: int = -1, leader_epoch: int = 0, schema_version: int | None = None) -> AppendResult:
        """Append a batch (columns value, and optional key, timestamp_ms, headers) as one unit.

        A :class:`reframe.ProducedBatch` (a producer's IPC stream, ``reframe.read_produced``) is
        validated like any batch and, when it arrived compressed with the topic's codec, stored
        with its compressed buffers as they came (only the columns made here are compressed).

        Raises RecordTooLargeError or SchemaMismatchError with nothing written.
        With ``producer_id``/``sequence``, a re-sent batch is answered from the
        producer state instead of being written twice. The batch carries ``leader_epoch``
        (replication); a newer one than the epoch cache knows starts there first.
        ``schema_version`` (None: the latest this log knows) is the value-schema version the
        batch is checked against and stored under (its segment's; schema_versions.py):
        SchemaMismatchError for a version the log does not know.

        A write that fails (a full disk, an I/O error, here or in the roll before it) raises
        LogWriteError (DiskFullError for ENOSPC/EDQUOT) with nothing of the batch kept: the
        segment is cut back to its last whole batch and no offset, producer sequence or
        cache moves, so a retry (same sequence) lands at the same offsets, once.
        """
        now = self._clock()
        version = self._schemas.check_append(schema_version, self.config.schema_compatibility)
        produced = batch if isinstance(batch, reframe.ProducedBatch) else None
        if produced is not None:
            batch = produced.batch  # validated as decoded: the stored columns it keeps are these arrays
        prepared = prepare_batch(
            batch, self._schemas.schema(version), now_ms=now, max_message_bytes=self.config.max_message_bytes,
            log_append_time=self.config.message_timestamp_type == "LogAppendTime",
        )
        with self._lock:
            self._check_open()
            if producer_id is not None and sequence >= 0:
                earlier = self._producers.check(producer_id, sequence, prepared.num_rows)
                if earlier is not None:
                    return AppendResult(earlier.base_offset, earlier.count, earlier.append_ms,
                                        self.log_start_offset, duplicate=True)
            base = self.log_end_offset
            if prepared.num_rows == 0:
                return AppendResult(base, 0, now, self.log_start_offset)
            stamped = stamp_offsets(prepared, base)
            schema_bytes = self._schemas.message(version)
            # A leader calls begin_epoch when it takes over, so this is rare; a log never led (no
            # entries) writing epoch 0 keeps no file (its batches' epoch is implied).
            if leader_epoch > self._epochs.latest_epoch and (leader_epoch > 0 or len(self._epochs)):
                self._epochs.assign(leader_epoch, base)  # LogWriteError: nothing of the batch written
            encoded = self._encode(stamped, produced, now, producer_id, sequence, leader_epoch, len(schema_bytes))
            self._write(encoded, now, f"appending offsets {base}..{base + prepared.num_rows - 1}",
                        schema_bytes=schema_bytes)
            self._appended.notify_all()
            return AppendResult(base, prepared.num_rows, now, self.log_start_offset)

    def _encode(self, stamped: pa.RecordBatch, produced: "reframe.ProducedBatch | None", now: int,
                producer_id: str | None, sequence: int, leader_epoch: int, schema_size: int) -> codec.EncodedBatch:
        return reframe.encode_stored(
            stamped, produced, schema_size=schema_size,
            max_timestamp_ms=pc.max(stamped.column(1)).as_py(), append_ms=now, producer_id=producer_id,
            sequence=sequence, leader_epoch=leader_epoch,
            # Read at each append: alter_topic_config's new codec applies to the next batch.
            options=codec.write_options(self.config.compression_type, self.config.compression_level),
            compression=self.config.compression_type,
            # Bulk batches are written out at once and never cached: encode them into a
            # reused buffer (first-touched memory is what a 16 MiB batch costs most here).
            scratch=self._encode_buffer if stamped.nbytes > TAIL_CACHE_BYTES else None)

    def _write(self, encoded: codec.EncodedBatch, now: int, what: str, *, schema_bytes: bytes) -> None:
        """Write one encoded batch at the log end (rolling first if due, or if the active segment
        holds another schema version than ``schema_bytes`` says) and record its producer
        sequence; all or nothing (LogWriteError with nothing kept). Caller holds the lock."""
        sync = self.config.flush_policy == "batch"
        header = encoded.header
        try:
            if sync:
                self._sync.raise_error()  # nothing of this batch is written
            self._maybe_roll(encoded.size, now, schema_bytes)
            self._segments.active.append(encoded, fsync=sync)
        except OSError as exc:
            raise LogWriteError.from_os_error(
                exc, self.directory, f"{what} ({encoded.size} bytes) to partition log {self.directory}") from exc
        if header.producer_id is not None and header.sequence >= 0:
            self._producers.update(header.producer_id, BatchRecord(header.sequence, header.base_offset,
                                                                   header.count, header.append_ms))
        self._sync.appended()
        # The batch itself is fsynced: acknowledge it even if its index entries must wait.
        if sync and self._segments.active.flush_indexes_if_possible():
            self._sync.synced(now)

    def _maybe_roll(self, incoming_bytes: int, now: int, schema_bytes: bytes) -> None:
        active = self._segments.active
        if active.file.schema_bytes != schema_bytes:  # a segment holds batches of one schema version
            if active.is_empty:
                self._segments.restart_active(schema_bytes, now)
            else:
                self._roll(now, schema_bytes)
            return
        if active.is_empty:
            return
        too_big = active.size + incoming_bytes > self.config.segment_bytes
        too_old = roll_due(active.is_empty, active.first_append_ms, now, self.config)
        if too_big or too_old:
            self._roll(now)

    def roll(self) -> None:
        """Seal the active segment and start a new one (no-op if it is empty)."""
        with self._lock:
            self._check_open()
            if not self._segments.active.is_empty:
                try:
                    self._roll(self._clock())
                except OSError as exc:
                    raise LogWriteError.from_os_error(exc, self.directory,
                                                      f"rolling partition log {self.directory}") from exc

    def _roll(self, now: int, schema_bytes: bytes | None = None) -> None:
        """Seal the active segment and start the next one. All or nothing: an OSError (the new
        file cannot be created or written, the old one's indexes cannot be written) leaves the
        active segment active and no new file behind."""
        # Under the interval policy the sealed segment is fsynced by the next tick, outside the
        # lock: up to flush.ms of writes to push to disk must not stall the appends waiting.
        # "batch" fsynced every batch already; "never" leaves writing back to the OS.
        sealed = self._segments.roll(self._clock(), fsync=self.config.flush_policy == "batch",
                                     schema_bytes=schema_bytes)
        self._sync.rolled(sealed, self.config)
        self._producers.expire(now)
        self._write_producer_snapshot(sealed.next_offset)
        self._sync.synced(now)

    def _write_producer_snapshot(self, upto_offset: int) -> None:
        try:
            self._producers.write_snapshot(self.directory / PRODUCER_SNAPSHOT, upto_offset)
        except OSError:
            # Not fatal: the previous snapshot stays valid below its own offset, and opening the
            # log rebuilds the state from the batch headers after it.
            log.warning("partition %s: writing the producer-state snapshot failed", self.directory,
                        exc_info=True)

    def flush(self) -> None:
        """fsync the active segment and its indexes now, and every sealed segment still waiting
        for its fsync (LogWriteError if that fails)."""
        with self._lock:
            self._check_open()
            try:
                self._sync.sync_sealed()
                self._segments.active.flush(fsync=True)
                self._sync.synced(self._clock())
            except OSError as exc:
                raise LogWriteError.from_os_error(exc, self.directory,
                                                  f"flushing partition log {self.directory}") from exc
            self._sync.raise_error()

    def tick(self) -> dict:
        """Periodic upkeep: interval fsync, roll by age, retention, unmapping idle segments."""
        with self._lock:
            if self._closed:
                return {}
            now = self._clock()
            to_sync = None
            if self._sync.active_due(now, self.config):
                # Write the index entries now, fsync after releasing the lock: an fsync can take
                # long on a busy disk, and appends must not wait for it.
                try:
                    self._segments.active.flush(fsync=False)
                    to_sync = self._segments.active
                except OSError:
                    log.warning("partition %s: writing index entries failed; retried at the next tick",
                                self.directory, exc_info=True)
            active = self._segments.active
            if roll_due(active.is_empty, active.first_append_ms, now, self.config):
                self._try_roll(now)
            deleted = self._apply_retention(now)
            self._segments.release_idle(now, _RELEASE_AFTER_MS)
            result = {"deleted_segments": deleted, "log_start_offset": self.log_start_offset}
            ticket = self._sync.ticket(to_sync, now)
        self._sync.run(ticket)  # outside the lock; what fails stays pending and is reported once
        return result

    def _try_roll(self, now: int) -> None:
        """A roll the tick wants; one that fails (a full disk) is retried by a later tick, and
        retention (which frees space) still runs."""
        try:
            self._roll(now)
        except OSError:
            log.warning("partition %s: rolling the active segment failed; retried later", self.directory,
                        exc_info=True)

    def _apply_retention(self, now: int) -> int:
        active = self._segments.active
        if active_expired(active.is_empty, active.max_timestamp_ms, now, self.config):
            self._try_roll(now)  # an expired active segment must roll before it can go
        return self._segments.apply_retention(now, self.config)

    # -- reading ------------------------------------------------------------------------------

    def read(self, offset: int, max_records: int = 100_000, max_bytes: int = DEFAULT_MAX_BYTES,
             upto: int | None = None, whole_batches: bool = False) -> ReadResult:
        """Records from ``offset`` on: at most ``max_records``, and at most ``max_bytes`` of
        messages unless the first record alone is larger (it then comes alone, so a reader
        always makes progress).

        ``offset == log_end_offset`` returns nothing (the caller may wait);
        outside ``[log_start_offset, log_end_offset]`` raises OffsetOutOfRangeError.
        Damaged offsets raise CorruptRecordError naming them and where to seek to, unless
        records before them were read: the read then stops just before them. ``upto`` (a
        replica's high watermark, a batch boundary) ends the read there, as if the log did.
        ``whole_batches`` (a follower's fetch, at a batch start): a first batch larger than
        ``max_bytes`` comes whole instead of re-encoded to fit, so the copy keeps the stored
        batch as it is (producer id, sequence, leader epoch), as Kafka's replica fetch does.
        """
        with self._lock:
            self._check_open()
            snapshot = self._segments.snapshot()
        check_range(offset, snapshot.start, snapshot.end)
        if upto is not None:
            max_records = min(max_records, upto - offset)
            if max_records <= 0:
                return ReadResult.empty(offset)
        try:
            return read_segments(snapshot, offset, max_records, max_bytes, schemas=self._schemas,
                                 directory=self.directory, now_ms=self._clock(), whole_batches=whole_batches)
        except FileNotFoundError:
            # Retention deleted a segment between the snapshot and the read.
            check_range(offset, self.log_start_offset, self.log_end_offset)
            raise
        except CorruptRecordError as exc:
            self._note_damage(exc)
            raise

    def _note_damage(self, exc: CorruptRecordError) -> None:
        """Add the hole a read just found to ``damaged_offsets`` (merged with what is known), so
        describe_topic lists it from the first read that met it, not only after a reopen."""
        if exc.first_offset is None or exc.next_offset is None or exc.next_offset <= exc.first_offset:
            return
        with self._lock:
            self.damaged_offsets = merge_run(self.damaged_offsets, exc.first_offset, exc.next_offset - 1)

    def wait_for(self, offset: int, timeout_s: float) -> bool:
        """Block until the log end passes ``offset`` or ``timeout_s`` passes; True if it did."""
        deadline = time.monotonic() + timeout_s
        with self._appended:
            while self.log_end_offset <= offset and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._appended.wait(remaining)
            return self.log_end_offset > offset

    def offset_for_time(self, timestamp_ms: int) -> int | None:
        """The earliest offset whose timestamp is >= ``timestamp_ms``; None if there is none."""
        with self._lock:
            self._check_open()
            snapshot = self._segments.snapshot()
        return offset_for_time(snapshot, timestamp_ms)

    @property
    def epoch_cache(self) -> EpochCache:
        """Leader epoch -> its first offset in this log (replicated_log.py, divergence.py)."""
        return self._epochs

    # -- memory -------------------------------------------------------------------------------

    def release_memory(self) -> None:
        """Drop what an idle partition holds in memory: the memory maps and indexes of sealed
        segments, the active segment's map and tail cache, and the reused encode buffer.
        All come back on use (the first read maps the file again)."""
        with self._lock:
            if self._closed:
                return
            self._segments.release_all()
            self._encode_buffer = codec.EncodeBuffer()

    # -- closing ------------------------------------------------------------------------------

    def close(self) -> None:
        """fsync everything, snapshot producer state, and mark the shutdown clean."""
        with self._lock:
            if self._closed:
                return
            active = self._segments.active
            try:
                self._sync.sync_sealed()
                active.seal()
                self._producers.write_snapshot(self.directory / PRODUCER_SNAPSHOT, active.next_offset)
                (self.directory / CLEAN_SHUTDOWN).touch()
            except OSError:
                # No clean-shutdown marker: the next open recovers the active segment in full.
                log.error("partition %s: closing cleanly failed; the next open recovers it", self.directory,
                          exc_info=True)
                active.close_file()
            self._closed = True
            self._dir_lock.release()
            self._appended.notify_all()

    def delete(self) -> None:
        """Close and remove the partition's directory."""
        with self._lock:
            self._closed = True
            self._segments.delete_all()
            self._appended.notify_all()
        shutil.rmtree(self.directory, ignore_errors=True)
        self._dir_lock.release()  # only now: a new owner must not see the files being removed

    def _check_open(self) -> None:
        if self._closed:
            raise RaykaError(f"partition log {self.directory} is closed")

    def __enter__(self) -> "PartitionLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
