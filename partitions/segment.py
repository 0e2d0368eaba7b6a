"""One segment of a partition log: an Arrow IPC stream file and its two sparse indexes.

Files, named by the segment's base offset (20 digits, so names sort by offset)::

    00000000000000001200.arrows     IPC stream: schema message, then record-batch messages
    00000000000000001200.index      sparse offset index (see index.py)
    00000000000000001200.timeindex  sparse time index

Invariants: the batches of a segment hold dense offsets from ``base_offset`` to
``next_offset - 1``, each batch's header CRC matches (codec.py), and ``size`` is
the length of whole messages in the file. Only the active (last) segment of a
log has an open file descriptor and grows; a sealed segment is never written
again, only deleted whole by retention. After an unclean shutdown
:meth:`LogSegment.recover` keeps every whole, valid batch and truncates the file
at the first torn or corrupt one.

Not thread-safe for writers: :class:`PartitionLog` serialises appends. Reads
may run concurrently with an append; they only see bytes below the ``limit``
the log hands them.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..errors import CorruptRecordError
from . import codec
from .index import MIN_TIMESTAMP, OffsetIndex, TimeIndex
from .tail_cache import TailCache

__all__ = ["LogSegment", "SegmentRead", "RecoveryReport", "SEGMENT_SUFFIX", "segment_name"]

log = logging.getLogger(__name__)

SEGMENT_SUFFIX = ".arrows"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


@dataclass
class SegmentRead:
    """Whole messages covering the requested offsets: ``buffer`` is a zero-copy slice of the file."""

    buffer: pa.Buffer | None
    records: int  # records at or after the requested offset
    next_offset: int  # offset after the last record in buffer
    bytes: int = 0


@dataclass
class RecoveryReport:
    """What recovery of one segment found."""

    batches: int = 0
    truncated_bytes: int = 0
    headers: list = field(default_factory=list)  # BatchHeader of every kept batch, in order


class LogSegment:
    """A segment file with its indexes. Create with :meth:`create` or :meth:`load`."""

    def __init__(self, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int):
        self.directory = Path(directory)
        self.base_offset = base_offset
        name = segment_name(base_offset)
        self.path = self.directory / (name + SEGMENT_SUFFIX)
        self.offset_index = OffsetIndex(self.directory / (name + INDEX_SUFFIX))
        self.time_index = TimeIndex(self.directory / (name + TIMEINDEX_SUFFIX))
        self._schema_bytes = schema_bytes
        self._interval = index_interval_bytes
        self.size = len(schema_bytes)
        self.next_offset = base_offset
        self.max_timestamp_ms = MIN_TIMESTAMP
        self.first_append_ms: int | None = None
        self.last_append_ms: int | None = None
        self._since_index = 0
        self._verified_end = len(schema_bytes)
        self._fd: int | None = None
        self._map: pa.Buffer | None = None
        self._map_lock = threading.Lock()
        self._index_loaded = True
        self.last_read_ms: int | None = None
        self._tail = TailCache()

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int,
               now_ms: int) -> "LogSegment":
        seg = cls(directory, base_offset, schema_bytes, index_interval_bytes)
        seg._fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        _write_all(seg._fd, [schema_bytes])
        seg.offset_index.clear()
        seg.time_index.clear()
        seg.first_append_ms = now_ms
        return seg

    @classmethod
    def load(cls, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int,
             *, recover: bool, active: bool) -> tuple["LogSegment", RecoveryReport]:
        """Open an existing segment. ``recover`` scans and validates every batch."""
        seg = cls(directory, base_offset, schema_bytes, index_interval_bytes)
        report = None
        if not recover:
            report = seg._load_fast(verify=active)
        if report is None:
            # Only the active segment can have a torn tail to cut; a sealed one was fsynced when it
            # rolled, so damage there is kept in place (reads of it fail their checksum) rather
            # than cutting away the acknowledged batches behind it.
            report = seg.recover(truncate=active)
        if active:
            seg._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        return seg, report

    def _load_fast(self, verify: bool = True) -> RecoveryReport | None:
        """Trust the indexes; scan only the tail after the last entry. None if anything is off."""
        if not (self.offset_index.load() and self.time_index.load()):
            return None
        if len(self.offset_index) != len(self.time_index):
            return None
        file_size = self.path.stat().st_size
        start = self.offset_index.values[-1] if len(self.offset_index) else len(self._schema_bytes)
        if start > file_size:
            return None
        report = RecoveryReport()
        try:
            view = self._view(file_size)
            if view.slice(0, len(self._schema_bytes)).to_pybytes() != self._schema_bytes:
                return None
            expected = self.offset_index.keys[-1] if len(self.offset_index) else self.base_offset
            max_ts = self.time_index.keys[-1] if len(self.time_index) else MIN_TIMESTAMP
            for msg in codec.iter_messages(view, start, file_size):
                if verify:
                    msg.verify()
                if msg.header.base_offset != expected:
                    return None
                expected = msg.header.next_offset
                max_ts = max(max_ts, msg.header.max_timestamp_ms)
                report.headers.append(msg.header)
                self.last_append_ms = msg.header.append_ms
        except CorruptRecordError:
            return None
        self.size = file_size
        self.next_offset = expected
        self.max_timestamp_ms = max_ts
        self._since_index = file_size - start
        self._verified_end = file_size if verify else start
        self.first_append_ms = self._first_append_ms()
        report.batches = len(report.headers)
        return report

    def recover(self, truncate: bool = True) -> RecoveryReport:
        """Scan every batch; keep the whole valid ones, truncate at the first that is not.

        Rebuilds both indexes. A file too short to hold the schema is rewritten
        empty; a file whose schema differs is refused (it is not this log's).
        With ``truncate=False`` (sealed segments) nothing is cut: checksums are left
        to the reads, and the segment ends at the last batch whose framing parses.
        """
        report = RecoveryReport()
        file_size = self.path.stat().st_size
        schema_size = len(self._schema_bytes)
        if file_size < schema_size:
            log.warning("segment %s torn before its schema ended; rewriting it empty", self.path)
            with open(self.path, "wb") as f:
                f.write(self._schema_bytes)
            report.truncated_bytes = file_size
            file_size = schema_size
        view = self._view(file_size)
        if view.slice(0, schema_size).to_pybytes() != self._schema_bytes:
            raise CorruptRecordError(
                f"segment {self.path} does not start with this topic's schema; move it aside "
                "if it is not part of the log"
            )
        self.offset_index.clear()
        self.time_index.clear()
        self.size, self.next_offset = schema_size, self.base_offset
        self.max_timestamp_ms, self._since_index = MIN_TIMESTAMP, 0
        position = schema_size
        while position < file_size:
            try:
                msg = codec.read_message_at(view, position)
                if truncate:
                    msg.verify()
                if msg.header.base_offset != self.next_offset:
                    raise CorruptRecordError(
                        f"batch at byte {position} starts at offset {msg.header.base_offset}, "
                        f"expected {self.next_offset}"
                    )
            except CorruptRecordError as exc:
                if not truncate:
                    log.error("sealed segment %s: %s; the %d bytes from there are unreadable",
                              self.path.name, exc, file_size - position)
                    break
                report.truncated_bytes += file_size - position
                log.warning("segment %s: %s; truncating %d bytes", self.path.name, exc, file_size - position)
                os.truncate(self.path, position)
                self._map = None
                break
            self._index(msg.header, position, msg.size)
            report.headers.append(msg.header)
            position += msg.size
        self.offset_index.flush(fsync=True)
        self.time_index.flush(fsync=True)
        self._verified_end = self.size if truncate else len(self._schema_bytes)
        self.first_append_ms = report.headers[0].append_ms if report.headers else None
        self.last_append_ms = report.headers[-1].append_ms if report.headers else None
        report.batches = len(report.headers)
        return report

    def _first_append_ms(self) -> int | None:
        if self.next_offset == self.base_offset:
            return None
        view = self._view(self.size)
        return codec.read_message_at(view, len(self._schema_bytes)).header.append_ms

    def seal(self) -> None:
        """Make the segment durable and read-only: fsync data and indexes, close the file."""
        self.flush(fsync=True)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._tail.clear()

    def close(self) -> None:
        self.seal()

    def delete(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for path in (self.path, self.offset_index.path, self.time_index.path):
            path.unlink(missing_ok=True)
        self._map = None

    def flush(self, fsync: bool) -> None:
        self.offset_index.flush(fsync=fsync)
        self.time_index.flush(fsync=fsync)
        if fsync and self._fd is not None:
            os.fsync(self._fd)

    def fsync(self) -> None:
        """fsync data and indexes without writing anything (safe beside a concurrent append)."""
        fd = self._fd
        if fd is not None:
            try:
                os.fsync(fd)
            except OSError:  # sealed (and so fsynced) meanwhile
                pass
        self.offset_index.fsync()
        self.time_index.fsync()

    def release(self) -> None:
        """Drop the memory map and the in-memory indexes of a sealed segment (reloaded on use)."""
        if self._fd is None:
            with self._map_lock:
                self._map = None
            self.offset_index.keys, self.offset_index.values = type(self.offset_index.keys)("q"), type(
                self.offset_index.values)("q")
            self.time_index.keys, self.time_index.values = type(self.time_index.keys)("q"), type(
                self.time_index.values)("q")
            self._index_loaded = False

    def _ensure_index(self) -> None:
        if not self._index_loaded:
            if not (self.offset_index.load() and self.time_index.load()):
                raise CorruptRecordError(f"index of sealed segment {self.path.name} is unreadable")
            self._index_loaded = True

    # -- writing ------------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return self.next_offset == self.base_offset

    def append(self, encoded: codec.EncodedBatch) -> int:
        """Write one encoded batch; return its byte position."""
        if self._fd is None:
            raise AssertionError(f"segment {self.path.name} is sealed")
        header = encoded.header
        if header.base_offset != self.next_offset:
            raise AssertionError(f"append at {header.base_offset}, segment expects {self.next_offset}")
        position = self.size
        _write_all(self._fd, [encoded.head, encoded.body])
        if self.first_append_ms is None:
            self.first_append_ms = header.append_ms
        self._index(header, position, encoded.size)
        self._verified_end = self.size
        self._tail.add(header.base_offset, header.next_offset, position, encoded.head, encoded.body)
        return position

    def _index(self, header: codec.BatchHeader, position: int, size: int) -> None:
        if self.is_empty or self._since_index >= self._interval:
            self.offset_index.append(header.base_offset, position)
            self.time_index.append(self.max_timestamp_ms, header.base_offset)
            self._since_index = 0
        self._since_index += size
        self.size = position + size
        self.next_offset = header.next_offset
        self.max_timestamp_ms = max(self.max_timestamp_ms, header.max_timestamp_ms)
        self.last_append_ms = header.append_ms

    # -- reading ------------------------------------------------------------------------------

    def _view(self, limit: int) -> pa.Buffer:
        with self._map_lock:
            if self._map is None or self._map.size < limit:
                mm = pa.memory_map(str(self.path), "r")
                self._map = mm.read_buffer(mm.size())
                mm.close()
            return self._map

    def _position_of(self, offset: int) -> int:
        self._ensure_index()
        entry = self.offset_index.floor(offset)
        return entry[1] if entry else len(self._schema_bytes)

    def read(self, offset: int, max_records: int, max_bytes: int, limit: int) -> SegmentRead:
        """Whole batches holding ``offset`` onwards, up to the limits, below byte ``limit``.

        Always returns at least the batch holding ``offset`` (if it is below
        ``limit``), so a consumer makes progress even past ``max_bytes``. Every
        batch served has passed its CRC check.
        """
        if offset >= self.next_offset or limit <= len(self._schema_bytes):
            return SegmentRead(None, 0, offset)
        cached = self._tail.read(offset, max_records, max_bytes, limit)
        if cached is not None:
            return SegmentRead(cached.buffer, cached.records, cached.next_offset, cached.bytes)
        view = self._view(limit)
        start = end = None
        records = 0
        next_offset = offset
        for msg in codec.iter_messages(view, self._position_of(offset), limit):
            header = msg.header
            if header.next_offset <= offset:
                continue
            self._verify(msg)
            if start is None:
                start = msg.position
            elif records >= max_records or (msg.position + msg.size - start) > max_bytes:
                break
            end = msg.position + msg.size
            records += header.next_offset - max(offset, header.base_offset)
            next_offset = header.next_offset
        if start is None:
            return SegmentRead(None, 0, offset)
        return SegmentRead(view.slice(start, end - start), records, next_offset, end - start)

    def _verify(self, msg: codec.Message) -> None:
        if msg.position < self._verified_end:
            return
        msg.verify()
        if msg.position == self._verified_end:
            self._verified_end = msg.position + msg.size

    def offset_for_time(self, timestamp_ms: int, limit: int) -> int | None:
        """The first offset whose timestamp is >= ``timestamp_ms``, or None if none here."""
        if self.max_timestamp_ms < timestamp_ms or self.is_empty:
            return None
        self._ensure_index()
        entry = self.time_index.below(timestamp_ms)
        start_offset = entry[1] if entry else self.base_offset
        view = self._view(limit)
        for msg in codec.iter_messages(view, self._position_of(start_offset), limit):
            if msg.header.max_timestamp_ms < timestamp_ms:
                continue
            self._verify(msg)
            batch = codec.decode(msg, _ts_schema(view))
            ts = batch.column(1).to_numpy()
            hit = int(np.argmax(ts >= timestamp_ms))
            return msg.header.base_offset + hit
        return None

    def batch_headers(self, limit: int):
        """Headers of every batch, in order (used to rebuild producer state)."""
        view = self._view(limit)
        return [m.header for m in codec.iter_messages(view, len(self._schema_bytes), limit)]


def _ts_schema(view: pa.Buffer) -> pa.Schema:
    import pyarrow.ipc as ipc

    return ipc.read_schema(view)


def _write_all(fd: int, buffers: list) -> None:
    views = [memoryview(b).cast("B") for b in buffers]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
