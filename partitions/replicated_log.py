"""ReplicaLog: a partition log as one replica of a replicated partition.

What replication adds to the storage engine (log.py), as a subclass that uses the log's
own lock, segments, producer state and epoch cache:

- the leader epoch: :meth:`begin_epoch` when the replica takes the lead (the epoch cache
  records where the epoch starts; every batch it then appends carries the epoch), and
  :meth:`end_offset_for`, the leader's answer to a follower's "where does my epoch end";
- a follower's copy: :meth:`append_replicated` writes the leader's stored batches verbatim
  (CRC-checked, at this log's end; offsets, timestamps, leader epochs, producer ids and
  sequences kept, so duplicate detection survives a failover);
- truncation: :meth:`truncate_to` cuts a divergent tail and :meth:`truncate_fully`
  empties the log to start at an offset, both on the files, which the log then loads
  again (log_truncate.py says how that stays crash-safe).
"""

from __future__ import annotations

import pyarrow as pa

from ..errors import LogWriteError, OffsetOutOfRangeError
from . import codec
from .epoch_cache import EpochEndOffset
from .log import PartitionLog
from .log_loader import load_log
from .log_sync import PendingSync
from .log_truncate import cut_tail, empty_log
from .segment_list import SegmentList

__all__ = ["ReplicaLog"]


class ReplicaLog(PartitionLog):
    """A PartitionLog that can lead (epochs) and follow (verbatim copies, truncation)."""

    @property
    def latest_epoch(self) -> int:
        return self._epochs.latest_epoch

    def end_offset_for(self, epoch: int) -> EpochEndOffset:
        with self._lock:
            return self._epochs.end_offset_for(epoch, self.log_end_offset)

    def begin_epoch(self, epoch: int) -> None:
        """This replica leads from now on at ``epoch``: it starts at the log end (if newer)."""
        with self._lock:
            if epoch > self._epochs.latest_epoch:
                self._epochs.assign(epoch, self.log_end_offset)

    def append_replicated(self, buffers, schema_version: int | None = None) -> int:
        """Append a leader's stored batches verbatim (a follower's copy); returns the new log end.

        ``buffers``: bytes or a buffer, or a list of them, each holding record-batch messages
        back to back as the leader's ``read`` gave them. Each must pass its CRC and start at
        this log's end (CorruptRecordError / OffsetOutOfRangeError otherwise, with that batch
        not written; the batches before it in the call stay). Offsets, timestamps, leader
        epochs and producer ids and sequences are kept, so this replica's producer state
        detects duplicates after a failover. A failed write raises LogWriteError as append does.
        ``schema_version``: the value-schema version of the leader's segment they come from (None:
        the latest this log knows), kept here too (schema_versions.py; SchemaMismatchError for a
        version this log does not know).
        """
        schema_bytes = self._schemas.message(self._schemas.check(schema_version))
        if not isinstance(buffers, (list, tuple)):
            buffers = [buffers]
        with self._lock:
            self._check_open()
            try:
                for buf in buffers:
                    buf = buf if isinstance(buf, pa.Buffer) else pa.py_buffer(buf)
                    for msg in codec.iter_messages(buf):
                        self._append_copy(buf, msg, schema_bytes)
            finally:
                self._appended.notify_all()
            return self.log_end_offset

    def _append_copy(self, buf: pa.Buffer, msg: codec.Message, schema_bytes: bytes) -> None:
        header = msg.header
        msg.verify()
        end = self.log_end_offset
        if header.base_offset != end:
            raise OffsetOutOfRangeError(
                f"a copied batch starts at offset {header.base_offset}, but partition log {self.directory} ends at "
                f"{end}: batches are copied in order from the log end", log_start_offset=self.log_start_offset,
                log_end_offset=end)
        now = self._clock()
        body = msg.message.body
        encoded = codec.EncodedBatch(buf.slice(msg.position, msg.size - body.size).to_pybytes(), body, header,
                                     buf.slice(msg.position, msg.size))
        if header.leader_epoch > self._epochs.latest_epoch:
            self._epochs.assign(header.leader_epoch, header.base_offset)
        self._write(encoded, now, f"copying offsets {header.base_offset}..{header.last_offset}",
                    schema_bytes=schema_bytes)

    def truncate_to(self, offset: int) -> int:
        """Remove every record at and after ``offset`` (a follower's divergent tail), rounded down
        to the start of the batch holding it; returns the new log end (log_truncate.py: crash-safe).
        At or past the log end nothing is cut; below the log start the log is emptied to start
        at ``offset``. The epoch cache forgets the epochs starting at or past the new end."""
        with self._lock:
            self._check_open()
            if offset >= self.log_end_offset:
                self._epochs.truncate_from_end(offset)
                return self.log_end_offset
            if offset <= self.log_start_offset:
                self._reopen(lambda segs: empty_log(self.directory, segs, offset, self._schema_bytes,
                                                    self.config.index_interval_bytes, self._clock()))
                self._epochs.clear()
                return self.log_end_offset
            self._reopen(lambda segs: cut_tail(self.directory, segs, offset))
            self._epochs.truncate_from_end(self.log_end_offset)
            return self.log_end_offset

    def truncate_fully(self, start_offset: int) -> None:
        """Delete every record and start the log empty at ``start_offset`` (a replica copying a leader
        whose log starts past its own end); epoch cache and producer state emptied."""
        with self._lock:
            self._check_open()
            self._reopen(lambda segs: empty_log(self.directory, segs, start_offset, self._schema_bytes,
                                                self.config.index_interval_bytes, self._clock()))
            self._epochs.clear()

    def _reopen(self, change) -> None:
        """Run ``change(segments)`` on the files, then load them again (under the lock, which the
        log keeps holding, like its directory lock)."""
        try:
            change(list(self._segments))
            loaded = load_log(self.directory, self._schemas, self.config, self._clock())
        except OSError as exc:
            raise LogWriteError.from_os_error(exc, self.directory,
                                              f"truncating partition log {self.directory}") from exc
        self._sync = PendingSync(self.directory, self._lock, self._clock())
        self._segments = SegmentList(self.directory, loaded.segments, self.config.index_interval_bytes)
        self._producers = loaded.producers
        self.damaged_offsets = loaded.damaged_offsets
        self._appended.notify_all()
