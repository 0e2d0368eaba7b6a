"""One segment of a partition log: an Arrow IPC stream file and its two sparse indexes.

Files, named by the segment's base offset (20 digits, so names sort by offset)::

    00000000000000001200.arrows     IPC stream: schema message, then record-batch messages
    00000000000000001200.index      sparse offset index (see index.py)
    00000000000000001200.timeindex  sparse time index

Invariants: the batches of a segment hold dense offsets from ``base_offset`` to
``next_offset - 1``, and ``size`` is the length of whole messages in the file.
Only the active (last) segment of a log has an open file descriptor and grows; a
sealed segment is never written again, only deleted whole by retention. An index
entry is added for the first batch, then one per ``index_interval_bytes``, and
always for the batch after a hole.

Integrity: no batch is served unless its CRC passed since this object opened the
file. Appended batches pass by construction, recovery checks every batch it
scans, and any other batch is checked on its first read and remembered, so
re-reading hot data costs nothing extra. The tail cache holds bytes this object
wrote. The work is split by concern:

- scan.py: finding the batch at a byte position, CRC-checked, or the hole there
  (the damage policy: holes kept in place, torn tails);
- recovery.py: opening the file (trusting its indexes, or rescanning it);
- segment_read.py: bounded reads and time lookups;
- this module: the file itself, appends, the indexes and the life cycle
  (create, load, seal, release, delete). ``view``, ``index_floor``,
  ``index_batch``, ``index_hole``, ``reset`` and ``scanner`` are the package's
  internal interface for the other three.

Not thread-safe for writers: :class:`PartitionLog` serialises appends. Reads
may run concurrently with an append; they only see bytes below the ``limit``
the log hands them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import CorruptRecordError
from . import codec, recovery, segment_read
from .index import MIN_TIMESTAMP, OffsetIndex, TimeIndex
from .integrity import Hole
from .recovery import RecoveryReport
from .scan import SegmentScanner
from .segment_read import SegmentRead
from .tail_cache import TailCache

__all__ = ["LogSegment", "SegmentRead", "RecoveryReport", "SEGMENT_SUFFIX", "segment_name"]

SEGMENT_SUFFIX = ".arrows"
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"


def segment_name(base_offset: int) -> str:
    return f"{base_offset:020d}"


class LogSegment:
    """A segment file with its indexes. Create with :meth:`create` or :meth:`load`."""

    def __init__(self, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int):
        self.directory = Path(directory)
        self.base_offset = base_offset
        name = segment_name(base_offset)
        self.path = self.directory / (name + SEGMENT_SUFFIX)
        self.offset_index = OffsetIndex(self.directory / (name + INDEX_SUFFIX))
        self.time_index = TimeIndex(self.directory / (name + TIMEINDEX_SUFFIX))
        self.schema_bytes = schema_bytes
        self.schema_size = len(schema_bytes)
        self.schema = ipc.read_schema(pa.py_buffer(schema_bytes))
        self._interval = index_interval_bytes
        self.size = len(schema_bytes)
        self.next_offset = base_offset
        self.max_timestamp_ms = MIN_TIMESTAMP
        self.first_append_ms: int | None = None
        self.last_append_ms: int | None = None
        self.bytes_since_index = 0
        self.scanner = SegmentScanner(self.path, self.offset_index)
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
        """Open an existing segment. ``recover`` scans and validates every batch (recovery.py)."""
        seg = cls(directory, base_offset, schema_bytes, index_interval_bytes)
        report = None
        if not recover:
            report = recovery.load_fast(seg, verify=active)
        if report is None:
            # Only the active segment can have a torn tail to cut; a sealed one was fsynced when it
            # rolled (or, under the interval policy, by the tick after), so damage at its end is
            # kept in place (the log reports the gap) rather than cutting away the acknowledged
            # batches behind it.
            report = recovery.recover(seg, truncate=active)
        if active:
            seg._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        return seg, report

    def seal(self, fsync: bool = True) -> None:
        """Make the segment read-only: write its indexes, fsync (unless the caller does it
        later with :meth:`fsync`), close the file."""
        self.flush(fsync=fsync)
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
        self.scanner.clear()

    def flush(self, fsync: bool) -> None:
        self.offset_index.flush(fsync=fsync)
        self.time_index.flush(fsync=fsync)
        if fsync and self._fd is not None:
            os.fsync(self._fd)

    def fsync(self) -> None:
        """fsync data and indexes without writing anything (safe beside a concurrent append, and
        after the segment was sealed or deleted)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)  # fsync of any descriptor flushes the file
        except FileNotFoundError:  # deleted by retention meanwhile: nothing to make durable
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self.offset_index.fsync()
        self.time_index.fsync()

    def release(self) -> None:
        """Drop the memory map and the in-memory indexes of a sealed segment (reloaded on use).

        What is known about the file's integrity stays: a sealed file does not change.
        """
        if self._fd is None:
            self.drop_map()
            self.offset_index.keys, self.offset_index.values = type(self.offset_index.keys)("q"), type(
                self.offset_index.values)("q")
            self.time_index.keys, self.time_index.values = type(self.time_index.keys)("q"), type(
                self.time_index.values)("q")
            self._index_loaded = False

    def ensure_index(self) -> None:
        """Reload the indexes dropped by :meth:`release`."""
        if not self._index_loaded:
            if not (self.offset_index.load() and self.time_index.load()):
                raise CorruptRecordError(f"index of sealed segment {self.path.name} is unreadable")
            self._index_loaded = True

    def reset(self) -> None:
        """Forget everything known about the file's batches, before a rescan (recovery.py)."""
        self.offset_index.clear()
        self.time_index.clear()
        self.scanner.clear()
        self.size, self.next_offset = self.schema_size, self.base_offset
        self.max_timestamp_ms, self.bytes_since_index = MIN_TIMESTAMP, 0

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
        self.index_batch(header, position, encoded.size)
        self.scanner.verified.add(position, self.size)  # its CRC was computed from these very bytes
        if encoded.transient:
            self._tail.clear()  # its bytes are about to be reused; the cache must stay contiguous
        else:
            self._tail.add(header.base_offset, header.next_offset, position, encoded.head, encoded.body)
        return position

    def index_batch(self, header: codec.BatchHeader, position: int, size: int) -> None:
        """Account for the batch stored at ``position``: indexes, size, next offset, times."""
        if self.is_empty or self.bytes_since_index >= self._interval:
            self.offset_index.append(header.base_offset, position)
            self.time_index.append(self.max_timestamp_ms, header.base_offset)
            self.bytes_since_index = 0
        self.bytes_since_index += size
        self.size = position + size
        self.next_offset = header.next_offset
        self.max_timestamp_ms = max(self.max_timestamp_ms, header.max_timestamp_ms)
        self.last_append_ms = header.append_ms

    def index_hole(self, hole: Hole) -> None:
        """Account for a bounded hole kept in place (recovery.py)."""
        if self.is_empty or self.bytes_since_index >= self._interval:
            self.offset_index.append(hole.first_offset, hole.position)
            self.time_index.append(self.max_timestamp_ms, hole.first_offset)
        # The batch after a hole always gets an index entry, so a lookup past the hole never
        # has to step over it.
        self.bytes_since_index = self._interval
        self.size = hole.position + hole.size
        self.next_offset = hole.next_offset

    # -- finding and reading batches -----------------------------------------------------------

    def view(self, limit: int) -> pa.Buffer:
        """The file mapped, at least ``limit`` bytes of it (remapped when it has grown)."""
        with self._map_lock:
            if self._map is None or self._map.size < limit:
                mm = pa.memory_map(str(self.path), "r")
                self._map = mm.read_buffer(mm.size())
                mm.close()
            return self._map

    def drop_tail_cache(self) -> None:
        """Forget the cached newest messages (an idle partition gives the memory back)."""
        self._tail.clear()

    def drop_map(self) -> None:
        with self._map_lock:
            self._map = None

    def index_floor(self, offset: int) -> tuple[int, int]:
        """(byte position, base offset) of the last indexed batch at or before ``offset``."""
        self.ensure_index()
        entry = self.offset_index.floor(offset)
        return (entry[1], entry[0]) if entry else (self.schema_size, self.base_offset)

    def read(self, offset: int, max_records: int, max_bytes: int, limit: int, *,
             must_progress: bool = True) -> SegmentRead:
        """Records from ``offset`` on, below byte ``limit``, within ``max_records``/``max_bytes``
        (bounds and format: segment_read.py). Served from the tail cache when it holds them."""
        if offset >= self.next_offset or limit <= self.schema_size or max_records <= 0:
            return SegmentRead((), 0, offset)
        cached = self._tail.read(offset, max_records, max_bytes, limit)
        if cached is not None:
            buffers = () if cached.buffer is None else (cached.buffer,)
            return SegmentRead(buffers, cached.records, cached.next_offset, cached.bytes)
        return segment_read.read_stored(self, offset, max_records, max_bytes, limit, must_progress)

    def offset_for_time(self, timestamp_ms: int, limit: int) -> int | None:
        """The first readable offset whose timestamp is >= ``timestamp_ms``, or None if none here."""
        return segment_read.offset_for_time(self, timestamp_ms, limit)

    def checked_headers(self, from_offset: int) -> tuple[list, list]:
        """(headers, holes) of the batches from ``from_offset`` on, every header's batch
        CRC-checked (recovery.py): what producer state may be rebuilt from."""
        return recovery.checked_headers(self, from_offset)


def _write_all(fd: int, buffers: list) -> None:
    views = [memoryview(b).cast("B") for b in buffers]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
