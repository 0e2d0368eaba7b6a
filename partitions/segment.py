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
wrote. The work is split by concern, each part owning its state:

- segment_file.py: the file's name, its schema message and its memory map;
- index.py: the two indexes (:class:`SegmentIndex`: where entries are due, unloading);
- scan.py: the walk through the batches, CRC-checked, and the holes found (the
  damage policy: holes kept in place, torn tails);
- recovery.py: opening the file (trusting its indexes, or rescanning it), which
  returns a :class:`SegmentLoad` this class applies to itself;
- segment_read.py: bounded reads and time lookups;
- this module: the segment's end (size, next offset, times), appends, and the life
  cycle (create, load, seal, release, delete).

Not thread-safe for writers: :class:`PartitionLog` serialises appends. Reads
may run concurrently with an append; they only see bytes below the ``limit``
the log hands them.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pyarrow as pa

from . import codec, recovery, segment_read
from .index import MIN_TIMESTAMP, OffsetIndex, SegmentIndex, TimeIndex
from .index_check import index_problem
from .read_result import ReadResult
from .recovery import RecoveryReport, SegmentLoad
from .scan import SegmentScanner
from .segment_file import SEGMENT_SUFFIX, SegmentFile, segment_name
from .tail_cache import TailCache

__all__ = ["LogSegment", "RecoveryReport", "SEGMENT_SUFFIX", "segment_name", "write_all"]

class LogSegment:
    """A segment file with its indexes. Create with :meth:`create` or :meth:`load`."""

    def __init__(self, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int):
        self.file = SegmentFile(directory, base_offset, schema_bytes)
        self.base_offset = base_offset
        self.path = self.file.path
        self.schema_size = self.file.schema_size
        self.index = SegmentIndex(self.path, index_interval_bytes, self._index_problem)
        self.scanner = SegmentScanner(self.file, self.index)
        self.size = self.schema_size
        self.next_offset = base_offset
        self.max_timestamp_ms = MIN_TIMESTAMP
        self.first_append_ms: int | None = None
        self.last_append_ms: int | None = None
        self.last_read_ms: int | None = None
        self._fd: int | None = None
        self._tail = TailCache()
        self._torn = False  # a failed write left bytes past ``size`` that could not be cut yet

    @property
    def offset_index(self) -> OffsetIndex:
        return self.index.offsets

    @property
    def time_index(self) -> TimeIndex:
        return self.index.times

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int,
               now_ms: int) -> "LogSegment":
        """A new, empty segment file (and empty indexes). Raises OSError with nothing left behind."""
        seg = cls(directory, base_offset, schema_bytes, index_interval_bytes)
        # O_APPEND: every write lands at the end of the file whatever happened to an earlier one.
        fd = os.open(seg.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        try:
            write_all(fd, [schema_bytes])
            seg.index.clear()
        except BaseException:
            os.close(fd)
            seg.path.unlink(missing_ok=True)
            seg.index.delete()
            raise
        seg._fd = fd
        seg.first_append_ms = now_ms
        return seg

    @classmethod
    def adopt(cls, directory: Path, base_offset: int, schema_bytes: bytes, index_interval_bytes: int, fd: int,
              now_ms: int) -> "LogSegment":
        """The empty active segment whose file (just ``schema_bytes``) is open as ``fd`` (append
        mode), its indexes empty on disk (segment_list.restart_active). Does no I/O."""
        seg = cls(directory, base_offset, schema_bytes, index_interval_bytes)
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
        loaded = None
        if not recover:
            loaded = recovery.load_fast(seg.file, seg.index, verify=active, next_base=next_base)
        if loaded is None:
            # Only the active segment can have a torn tail to cut; a sealed one was fsynced when it
            # rolled (or, under the interval policy, by the tick after), so damage at its end is
            # kept in place (the log reports the gap) rather than cutting away the acknowledged
            # batches behind it.
            loaded = recovery.recover(seg.file, seg.index, seg.scanner, truncate=active and not clean,
                                      clean=active and clean, clean_end=clean_end)
        seg._apply(loaded)
        if active:
            seg._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
            # Appends land at the end of the file, so it must end where the log does: bytes past
            # ``size`` (never served) are cut before the first append writes anything.
            seg._torn = os.fstat(seg._fd).st_size != seg.size
        return seg, loaded.report

    def _apply(self, loaded: SegmentLoad) -> None:
        """Take what opening the file found (recovery.py) as this segment's end."""
        self.size, self.next_offset = loaded.size, loaded.next_offset
        self.max_timestamp_ms = loaded.max_timestamp_ms
        self.first_append_ms, self.last_append_ms = loaded.first_append_ms, loaded.last_append_ms
        if loaded.verified is not None:
            self.scanner.passed(*loaded.verified)

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
        self.path.unlink(missing_ok=True)
        self.index.delete()
        self.file.drop_map()
        self.scanner.clear()

    def flush(self, fsync: bool) -> None:
        """Write pending index entries (and fsync data and indexes, with ``fsync``). An OSError
        leaves the index files as they were; the entries stay pending for the next flush."""
        self.flush_indexes(fsync=fsync)
        if fsync and self._fd is not None:
            os.fsync(self._fd)

    def flush_indexes(self, fsync: bool) -> None:
        self.index.flush(fsync=fsync)

    def flush_indexes_if_possible(self) -> bool:
        """Write and fsync the pending index entries, or leave them pending if that fails
        (SegmentIndex.flush_if_possible). True if written."""
        return self.index.flush_if_possible()

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
        self.index.fsync()

    def release(self) -> None:
        """Drop the memory map and the in-memory indexes of a sealed segment (reloaded on use).

        What is known about the file's integrity stays: a sealed file does not change.
        Safe beside concurrent reads: a read that already took the index pair or the map
        keeps using it; one that finds the index unloaded reloads it (SegmentIndex.unload).
        """
        if self._fd is None:
            self.file.drop_map()
            self.index.unload()

    def _index_problem(self) -> str | None:
        """Why the index entries loaded now do not fit the file (index_check.py), or None."""
        return index_problem(self.index, self.base_offset, self.schema_size, self.view(self.size), self.size)

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
            write_all(self._fd, [encoded.head, encoded.body])
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
        self._index_batch(header, position, encoded.size)
        self.scanner.passed(position, self.size)  # its CRC was computed from these very bytes
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

    def _index_batch(self, header: codec.BatchHeader, position: int, size: int) -> None:
        """Account for the batch appended at ``position``: index, size, next offset, times."""
        self.index.add_batch(header.base_offset, position, size, self.max_timestamp_ms, first=self.is_empty)
        self.size = position + size
        self.next_offset = header.next_offset
        self.max_timestamp_ms = max(self.max_timestamp_ms, header.max_timestamp_ms)
        self.last_append_ms = header.append_ms

    # -- finding and reading batches -----------------------------------------------------------

    def view(self, limit: int) -> pa.Buffer:
        """The file mapped, at least ``limit`` bytes of it (remapped when it has grown)."""
        return self.file.view(limit)

    def drop_tail_cache(self) -> None:
        """Forget the cached newest messages (an idle partition gives the memory back)."""
        self._tail.clear()

    def drop_map(self) -> None:
        self.file.drop_map()

    def read(self, offset: int, max_records: int, max_bytes: int, limit: int, *,
             must_progress: bool = True, whole_batches: bool = False) -> ReadResult:
        """Records from ``offset`` on, below byte ``limit``, within ``max_records``/``max_bytes``
        (bounds: segment_read.py; format: read_result.py). Served from the tail cache when it
        holds them."""
        if offset >= self.next_offset or limit <= self.schema_size or max_records <= 0:
            return ReadResult.empty(offset)
        cached = self._tail.read(offset, max_records, max_bytes, limit)
        if cached is not None:
            return cached
        return segment_read.read_stored(self.file, self.scanner, offset, max_records, max_bytes, limit,
                                        self.next_offset, must_progress, whole_batches)

    def offset_for_time(self, timestamp_ms: int, limit: int) -> int | None:
        """The first readable offset whose timestamp is >= ``timestamp_ms``, or None if none here."""
        if self.max_timestamp_ms < timestamp_ms or self.is_empty:
            return None
        return segment_read.offset_for_time(self.file, self.scanner, self.index.time_pair(), timestamp_ms,
                                            limit, self.next_offset)

    def checked_headers(self, from_offset: int) -> tuple[list, list]:
        """(headers, holes) of the batches from ``from_offset`` on, every header's batch
        CRC-checked (recovery.py): what producer state may be rebuilt from."""
        limit = self.size
        return recovery.checked_headers(self.scanner, self.view(limit), from_offset, limit, self.next_offset)


def write_all(fd: int, buffers: list) -> None:
    """Write every byte of ``buffers`` to ``fd`` (``writev`` until nothing is left)."""
    views = [memoryview(b).cast("B") for b in buffers]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
