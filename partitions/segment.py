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
always for the batch after a hole. The file ends at ``size`` before every append
(it is opened O_APPEND, and checked after each write): a write that fails
midway is cut off again before anything about the segment changes, so a full
disk never leaves partial bytes where the next batch would be written.

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

import errno
import logging
import os
import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import CorruptRecordError
from . import codec, recovery, segment_read
from .index import MIN_TIMESTAMP, OffsetIndex, TimeIndex
from .index_check import index_digest, index_problem
from .integrity import Hole
from .recovery import RecoveryReport
from .scan import SegmentScanner
from .segment_read import SegmentRead
from .tail_cache import TailCache

__all__ = ["LogSegment", "SegmentRead", "RecoveryReport", "SEGMENT_SUFFIX", "segment_name"]

log = logging.getLogger(__name__)

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
        self._index_lock = threading.Lock()  # release() and the reload of what it dropped
        self.index_digest: int | None = None  # of the entries checked at open or held at release()
        self.last_read_ms: int | None = None
        self._tail = TailCache()
        self._torn = False  # a failed write left bytes past ``size`` that could not be cut yet

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int,
               now_ms: int) -> "LogSegment":
        """A new, empty segment file (and empty indexes). Raises OSError with nothing left behind."""
        seg = cls(directory, base_offset, schema_bytes, index_interval_bytes)
        # O_APPEND: every write lands at the end of the file whatever happened to an earlier one.
        fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            _write_all(fd, [schema_bytes])
            seg.offset_index.clear()
            seg.time_index.clear()
        except BaseException:
            os.close(fd)
            for path in (seg.path, seg.offset_index.path, seg.time_index.path):
                path.unlink(missing_ok=True)
            raise
        seg._fd = fd
        seg.first_append_ms = now_ms
        return seg

    @classmethod
    def load(cls, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int,
             *, recover: bool, active: bool, clean: bool = False,
             clean_end: int | None = None, next_base: int | None = None) -> tuple["LogSegment", RecoveryReport]:
        """Open an existing segment. ``recover`` scans and validates every batch (recovery.py).
        ``clean``: the log was closed cleanly (no torn tail is possible); ``clean_end`` the log
        end recorded at that close, if known; ``next_base`` the next segment's base offset (where a
        sealed segment must end)."""
        seg = cls(directory, base_offset, schema_bytes, index_interval_bytes)
        report = None
        if not recover:
            report = recovery.load_fast(seg, verify=active, next_base=next_base)
        if report is None:
            # Only the active segment can have a torn tail to cut; a sealed one was fsynced when it
            # rolled (or, under the interval policy, by the tick after), so damage at its end is
            # kept in place (the log reports the gap) rather than cutting away the acknowledged
            # batches behind it.
            report = recovery.recover(seg, truncate=active and not clean, clean=active and clean,
                                      clean_end=clean_end)
        if active:
            seg._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
            # Appends land at the end of the file, so it must end where the log does: bytes past
            # ``size`` (never served) are cut before the first append writes anything.
            seg._torn = os.fstat(seg._fd).st_size != seg.size
        return seg, report

    def seal(self, fsync: bool = True) -> None:
        """Make the segment read-only: write its indexes, fsync (unless the caller does it
        later with :meth:`fsync`), close the file. Raises OSError with the file still open
        (and the segment active) if a write fails."""
        if self._fd is not None:
            self._repair()
        self.flush(fsync=fsync)
        self.close_file()

    def close_file(self) -> None:
        """Close the file descriptor (without writing anything): no more appends."""
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
        """Write pending index entries (and fsync data and indexes, with ``fsync``). An OSError
        leaves the index files as they were; the entries stay pending for the next flush."""
        self.flush_indexes(fsync=fsync)
        if fsync and self._fd is not None:
            os.fsync(self._fd)

    def flush_indexes(self, fsync: bool) -> None:
        self.offset_index.flush(fsync=fsync)
        self.time_index.flush(fsync=fsync)

    def flush_indexes_if_possible(self) -> bool:
        """Write and fsync the pending index entries; on an OSError (a full disk) log it and
        leave them pending for the next flush, seal or close (index files are derived data:
        a missing entry costs a longer scan, and recovery rebuilds them). True if written."""
        try:
            self.flush_indexes(fsync=True)
            return True
        except OSError as exc:
            log.warning("segment %s: writing its indexes failed (%s); retried later", self.path, exc)
            return False

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
        Safe beside concurrent reads: a read that already took the index pair or the map
        keeps using it; one that finds the index dropped reloads it (:meth:`ensure_index`,
        under the same lock, so a reload never meets a release halfway).
        """
        if self._fd is None:
            self.drop_map()
            with self._index_lock:
                if self._index_loaded:
                    self.index_digest = index_digest(self.offset_index, self.time_index)
                self._index_loaded = False
                self.offset_index.drop()
                self.time_index.drop()

    def ensure_index(self) -> None:
        """Reload the indexes dropped by :meth:`release` (they must be the entries checked
        when the segment was opened: a sealed segment's index does not change)."""
        if self._index_loaded:
            return
        with self._index_lock:
            if self._index_loaded:  # another reader reloaded it meanwhile
                return
            loaded = self.offset_index.load() and self.time_index.load()
            if not loaded or (index_digest(self.offset_index, self.time_index) != self.index_digest
                              and index_problem(self, self.view(self.size), self.size) is not None):
                self.offset_index.drop()
                self.time_index.drop()
                raise CorruptRecordError(
                    f"the index files of sealed segment {self.path} changed on disk since the partition "
                    "opened; restart the partition (its indexes are then checked and rebuilt)")
            self.index_digest = index_digest(self.offset_index, self.time_index)
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

    def append(self, encoded: codec.EncodedBatch, *, fsync: bool = False) -> int:
        """Write one encoded batch (and fsync it, with ``fsync``); return its byte position.

        All or nothing: if a write or the fsync fails (any OSError: ENOSPC, EIO, EDQUOT...),
        the bytes already written are cut off again and the OSError propagates with nothing
        about the segment changed (size, next offset, indexes, tail cache, verified ranges).
        If even the cut fails, the next append (or seal) retries it before writing anything.
        """
        if self._fd is None:
            raise AssertionError(f"segment {self.path.name} is sealed")
        header = encoded.header
        if header.base_offset != self.next_offset:
            raise AssertionError(f"append at {header.base_offset}, segment expects {self.next_offset}")
        self._repair()
        position = self.size
        try:
            _write_all(self._fd, [encoded.head, encoded.body])
            # With O_APPEND the descriptor's offset is the file's end after the write: the batch
            # must have landed exactly at ``position``, or it is not where reads will look for it.
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
            if end != position + encoded.size:
                raise OSError(errno.EIO, f"segment {self.path.name} ends at byte {end} after a write of "
                              f"{encoded.size} bytes at {position}; the write is undone")
            if fsync:
                os.fsync(self._fd)
        except OSError:
            self._torn = True
            self.drop_map()
            try:
                self._repair()
            except OSError:
                pass  # retried by the next append; reads never look past ``size``
            raise
        if self.first_append_ms is None:
            self.first_append_ms = header.append_ms
        self.index_batch(header, position, encoded.size)
        self.scanner.verified.add(position, self.size)  # its CRC was computed from these very bytes
        if encoded.transient:
            self._tail.clear()  # its bytes are about to be reused; the cache must stay contiguous
        else:
            self._tail.add(header.base_offset, header.next_offset, position, encoded.head, encoded.body)
        return position

    def _repair(self) -> None:
        """Cut bytes a failed write left past ``size`` (no-op unless a write failed)."""
        if self._torn:
            os.ftruncate(self._fd, self.size)
            self._torn = False

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
        """Account for a bounded hole kept in place (recovery.py).

        A hole gets no index entry (entries point only at valid batches, so they can be
        checked at open: index_check.py); a lookup of its offsets scans from the entry
        before it and finds it. The batch after a hole always gets an entry, so a lookup
        past the hole never has to step over it."""
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
        while entry is None and not self._index_loaded:  # released between the two: reload
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
