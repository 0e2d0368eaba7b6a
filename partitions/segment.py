"""One segment of a partition log: an Arrow IPC stream file and its two sparse indexes.

Files, named by the segment's base offset (20 digits, so names sort by offset)::

    00000000000000001200.arrows     IPC stream: schema message, then record-batch messages
    00000000000000001200.index      sparse offset index (see index.py)
    00000000000000001200.timeindex  sparse time index

Invariants: the batches of a segment hold dense offsets from ``base_offset`` to
``next_offset - 1``, and ``size`` is the length of whole messages in the file.
Only the active (last) segment of a log has an open file descriptor and grows; a
sealed segment is never written again, only deleted whole by retention.

Integrity (integrity.py): no batch is served unless its CRC passed since this
object opened the file. Appended batches pass by construction, recovery checks
every batch it scans, and any other batch is checked on its first read and
remembered, so re-reading hot data costs nothing extra. The tail cache holds
bytes this object wrote.

Damage policy, the same for the active and sealed segments:

- A *hole*: one or more batches whose framing (IPC length prefix, metadata, body
  length) is intact but whose header or CRC fails, followed by a whole, valid
  batch. It stays in the file; its offsets (up to the valid batch's base offset)
  are never reused; reads of it raise CorruptRecordError naming them and the
  offset to seek to. Reads stop before it when they already hold records.
- A *torn tail*: damage with no valid batch after it (a batch cut short by a
  crash, garbage at the end, or framing broken so that the next batch cannot be
  found). :meth:`LogSegment.recover` truncates it from the active segment; a
  sealed segment just ends before it (the log reports the gap to the next one).

Why holes rather than Kafka's truncate-at-first-corruption: truncating would drop
the acknowledged batches behind the damage and hand their offsets to new records,
so a consumer that had read or committed past them would skip the new records
without knowing.

Reads are bounded (:meth:`LogSegment.read`): whole stored messages are served
zero-copy from the memory map; a batch at an edge of the request (partly before
``offset``, past ``max_records``, or alone over ``max_bytes``) is served as a
compacted slice, a fresh message with its own header and CRC.

Not thread-safe for writers: :class:`PartitionLog` serialises appends. Reads
may run concurrently with an append; they only see bytes below the ``limit``
the log hands them.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from bisect import bisect_right
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import CorruptRecordError
from . import codec
from .index import MIN_TIMESTAMP, OffsetIndex, TimeIndex
from .integrity import Hole, VerifiedRanges
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
    """Messages covering the requested offsets, in order: zero-copy slices of the file and
    compacted slices of edge batches, each buffer whole messages back to back."""

    buffers: tuple
    records: int  # records at or after the requested offset
    next_offset: int  # offset after the last record in buffers
    bytes: int = 0


@dataclass
class RecoveryReport:
    """What recovery of one segment found."""

    batches: int = 0
    truncated_bytes: int = 0
    headers: list = field(default_factory=list)  # BatchHeader of every kept batch, in order
    holes: list = field(default_factory=list)  # Hole of every damaged run kept in place


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
        self._schema_size = len(schema_bytes)
        self._schema = ipc.read_schema(pa.py_buffer(schema_bytes))
        self._interval = index_interval_bytes
        self.size = len(schema_bytes)
        self.next_offset = base_offset
        self.max_timestamp_ms = MIN_TIMESTAMP
        self.first_append_ms: int | None = None
        self.last_append_ms: int | None = None
        self._since_index = 0
        self._verified = VerifiedRanges()
        self._holes: dict[int, Hole] = {}  # bounded holes found so far, by byte position
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
            # rolled, so damage at its end is kept in place (the log reports the gap) rather than
            # cutting away the acknowledged batches behind it.
            report = seg.recover(truncate=active)
        if active:
            seg._fd = os.open(seg.path, os.O_WRONLY | os.O_APPEND)
        return seg, report

    def _load_fast(self, verify: bool = True) -> RecoveryReport | None:
        """Trust the indexes; scan only the tail after the last entry. None if anything is off.

        Batches before the last index entry are not read here: their CRCs are checked
        on their first read.
        """
        if not (self.offset_index.load() and self.time_index.load()):
            return None
        if len(self.offset_index) != len(self.time_index):
            return None
        file_size = self.path.stat().st_size
        start = self.offset_index.values[-1] if len(self.offset_index) else self._schema_size
        if start > file_size:
            return None
        report = RecoveryReport()
        try:
            view = self._view(file_size)
            if view.slice(0, self._schema_size).to_pybytes() != self._schema_bytes:
                return None
            expected = self.offset_index.keys[-1] if len(self.offset_index) else self.base_offset
            max_ts = self.time_index.keys[-1] if len(self.time_index) else MIN_TIMESTAMP
            for msg in codec.iter_messages(view, start, file_size):
                if verify:
                    msg.verify()
                    self._verified.add(msg.position, msg.position + msg.size)
                if msg.header.base_offset != expected:
                    return None
                expected = msg.header.next_offset
                max_ts = max(max_ts, msg.header.max_timestamp_ms)
                report.headers.append(msg.header)
                self.last_append_ms = msg.header.append_ms
        except CorruptRecordError:
            self._verified.clear()
            return None
        self.size = file_size
        self.next_offset = expected
        self.max_timestamp_ms = max_ts
        self._since_index = file_size - start
        self.first_append_ms = self._first_append_ms()
        report.batches = len(report.headers)
        return report

    def recover(self, truncate: bool = True) -> RecoveryReport:
        """Scan and CRC-check every batch; rebuild both indexes; keep holes, cut a torn tail.

        A file too short to hold the schema is rewritten empty; a file whose schema
        differs is refused (it is not this log's). With ``truncate=False`` (sealed
        segments) nothing is cut: the segment ends before its damaged tail.
        """
        report = RecoveryReport()
        file_size = self._ensure_schema(report)
        view = self._view(file_size)
        self.offset_index.clear()
        self.time_index.clear()
        self._verified.clear()
        self._holes.clear()
        self.size, self.next_offset = self._schema_size, self.base_offset
        self.max_timestamp_ms, self._since_index = MIN_TIMESTAMP, 0
        position = self._schema_size
        while position < file_size:
            try:
                step = self._batch_at(view, position, self.next_offset, file_size)
            except CorruptRecordError as exc:  # a valid batch out of sequence: nothing to trust after it
                step = Hole(position, file_size - position, self.next_offset, None)
                log.warning("segment %s: %s", self.path.name, exc)
            if isinstance(step, Hole) and not step.bounded:
                self._cut_tail(position, file_size, truncate, report)
                break
            if isinstance(step, Hole):
                self._index_hole(step)
                report.holes.append(step)
            else:
                self._index(step.header, position, step.size)
                report.headers.append(step.header)
            position += step.size
        self.offset_index.flush(fsync=True)
        self.time_index.flush(fsync=True)
        self.first_append_ms = report.headers[0].append_ms if report.headers else None
        self.last_append_ms = report.headers[-1].append_ms if report.headers else None
        report.batches = len(report.headers)
        return report

    def _ensure_schema(self, report: RecoveryReport) -> int:
        """The file's size after making sure it starts with this log's schema message."""
        file_size = self.path.stat().st_size
        if file_size < self._schema_size:
            log.warning("segment %s torn before its schema ended; rewriting it empty", self.path)
            with open(self.path, "wb") as f:
                f.write(self._schema_bytes)
            self._map = None
            report.truncated_bytes = file_size
            return self._schema_size
        if self._view(file_size).slice(0, self._schema_size).to_pybytes() != self._schema_bytes:
            raise CorruptRecordError(
                f"segment {self.path} does not start with this topic's schema; move it aside "
                "if it is not part of the log"
            )
        return file_size

    def _cut_tail(self, position: int, file_size: int, truncate: bool, report: RecoveryReport) -> None:
        if not truncate:
            log.error("sealed segment %s: the %d bytes from byte %d (offsets from %d) are unreadable",
                      self.path.name, file_size - position, position, self.next_offset)
            return
        log.warning("segment %s: torn tail from byte %d (offset %d); truncating %d bytes",
                    self.path.name, position, self.next_offset, file_size - position)
        report.truncated_bytes += file_size - position
        os.truncate(self.path, position)
        with self._map_lock:
            self._map = None

    def _first_append_ms(self) -> int | None:
        if self.is_empty:
            return None
        try:
            return codec.read_message_at(self._view(self.size), self._schema_size).header.append_ms
        except CorruptRecordError:  # a damaged first batch (a hole): its time is unknown
            return self.last_append_ms

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
        self._verified.clear()
        self._holes.clear()

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
        """Drop the memory map and the in-memory indexes of a sealed segment (reloaded on use).

        What is known about the file's integrity stays: a sealed file does not change.
        """
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
        self._verified.add(position, self.size)  # its CRC was computed from these very bytes
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

    def _index_hole(self, hole: Hole) -> None:
        if self.is_empty or self._since_index >= self._interval:
            self.offset_index.append(hole.first_offset, hole.position)
            self.time_index.append(self.max_timestamp_ms, hole.first_offset)
        # The batch after a hole always gets an index entry, so a lookup past the hole never
        # has to step over it.
        self._since_index = self._interval
        self.size = hole.position + hole.size
        self.next_offset = hole.next_offset

    # -- finding batches ----------------------------------------------------------------------

    def _view(self, limit: int) -> pa.Buffer:
        with self._map_lock:
            if self._map is None or self._map.size < limit:
                mm = pa.memory_map(str(self.path), "r")
                self._map = mm.read_buffer(mm.size())
                mm.close()
            return self._map

    def _index_floor(self, offset: int) -> tuple[int, int]:
        """(byte position, base offset) of the last indexed batch at or before ``offset``."""
        self._ensure_index()
        entry = self.offset_index.floor(offset)
        return (entry[1], entry[0]) if entry else (self._schema_size, self.base_offset)

    def _batch_at(self, view: pa.Buffer, position: int, expected: int, limit: int) -> codec.Message | Hole:
        """The CRC-checked batch at ``position`` (which must start at offset ``expected``), or the
        hole that starts there. Raises CorruptRecordError for a valid batch out of sequence
        (a damaged index points somewhere wrong)."""
        hole = self._holes.get(position)
        if hole is not None:
            return hole
        try:
            msg = codec.read_message_at(view, position)
            end = position + msg.size
            if end > limit:
                raise CorruptRecordError(f"batch at byte {position} runs past byte {limit}")
            if not self._verified.covers(position, end):
                msg.verify()
                self._verified.add(position, end)
        except CorruptRecordError:
            return self._find_hole(view, position, expected, limit)
        if msg.header.base_offset != expected:
            raise CorruptRecordError(
                f"segment {self.path.name}: batch at byte {position} starts at offset "
                f"{msg.header.base_offset}, expected {expected}; if its .index is damaged, delete "
                "the segment's .index and .timeindex files and reopen to rebuild them")
        return msg

    def _find_hole(self, view: pa.Buffer, position: int, expected: int, limit: int) -> Hole:
        """Step over damaged batches by their framing until a valid batch; bounded holes are kept."""
        end = position
        while end < limit:
            try:
                size = codec.message_size_at(view, end)
            except CorruptRecordError:
                break  # the framing is broken too: the next batch cannot be found from here
            if end + size > limit:
                break
            end += size
            nxt = self._valid_at(view, end, expected, limit)
            if nxt is not None:
                hole = Hole(position, end - position, expected, nxt.header.base_offset)
                self._holes[position] = hole
                log.error("segment %s: offsets %d..%d (bytes %d..%d) failed their checksum; kept in "
                          "place, reads of them raise CorruptRecordError", self.path, hole.first_offset,
                          hole.next_offset - 1, position, end - 1)
                return hole
        return Hole(position, end - position, expected, None)

    def _valid_at(self, view: pa.Buffer, position: int, after: int, limit: int) -> codec.Message | None:
        """The batch at ``position`` if it is whole, passes its CRC and starts past offset ``after``."""
        if position >= limit:
            return None
        try:
            msg = codec.read_message_at(view, position)
            if position + msg.size > limit or msg.header.base_offset <= after:
                return None
            msg.verify()
        except CorruptRecordError:
            return None
        self._verified.add(position, position + msg.size)
        return msg

    def _bounded(self, hole: Hole, limit: int) -> Hole:
        """A hole with known offsets: an unbounded one (found by a read, nothing valid after it
        by framing) ends at the next index entry, or at the end of the segment."""
        if hole.bounded:
            return hole
        i = bisect_right(self.offset_index.values, hole.position)
        if i < len(self.offset_index):
            return Hole(hole.position, self.offset_index.values[i] - hole.position, hole.first_offset,
                        self.offset_index.keys[i])
        return Hole(hole.position, limit - hole.position, hole.first_offset, self.next_offset)

    def _hole_error(self, hole: Hole) -> CorruptRecordError:
        return CorruptRecordError(
            f"offsets {hole.first_offset}..{hole.next_offset - 1} of {self.path} failed their checksum "
            f"(bytes {hole.position}..{hole.position + hole.size - 1} are damaged on disk; they are "
            f"never served); seek to {hole.next_offset} to read on"
        )

    # -- reading ------------------------------------------------------------------------------

    def read(self, offset: int, max_records: int, max_bytes: int, limit: int, *,
             must_progress: bool = True) -> SegmentRead:
        """Records from ``offset`` on, below byte ``limit``, within ``max_records``/``max_bytes``.

        Exact bounds: ``records <= max_records``; ``bytes <= max_bytes``, except that with
        ``must_progress`` at least one record is returned (a single record larger than
        ``max_bytes`` comes alone). Whole batches that fit are zero-copy slices of the
        map; past the first batch only whole batches are added for ``max_bytes`` (the next
        read starts there), while a batch that would overshoot ``max_records`` is sliced to
        fill it. Every batch served passed its CRC; a hole raises CorruptRecordError,
        unless records before it were found (the read then stops there).
        """
        if offset >= self.next_offset or limit <= self._schema_size or max_records <= 0:
            return SegmentRead((), 0, offset)
        cached = self._tail.read(offset, max_records, max_bytes, limit)
        if cached is not None:
            buffers = () if cached.buffer is None else (cached.buffer,)
            return SegmentRead(buffers, cached.records, cached.next_offset, cached.bytes)
        view = self._view(limit)
        out = _Gather(view, offset)
        position, expected = self._index_floor(offset)
        while position < limit and out.records < max_records:
            step = self._batch_at(view, position, expected, limit)
            if isinstance(step, Hole):
                step = self._bounded(step, limit)
                if step.next_offset > offset:
                    if out.records:
                        break
                    raise self._hole_error(step)
                expected = step.next_offset
            else:
                h = step.header
                expected = h.next_offset
                if expected <= offset:
                    pass  # before the requested offset, in the index interval
                elif (h.base_offset >= offset and out.records + h.count <= max_records
                      and out.bytes + step.size <= max_bytes):
                    out.whole(step)  # the common case, inline: a whole batch within the limits
                elif not self._take(out, step, offset, max_records, max_bytes, must_progress):
                    break
            position += step.size
        return out.result()

    def _take(self, out: "_Gather", msg: codec.Message, offset: int, max_records: int, max_bytes: int,
              must_progress: bool) -> bool:
        """Add ``msg`` (whole, or a compacted slice of it) to ``out``; False if the read ends here
        (the batch did not fit, or only its first records did)."""
        h = msg.header
        skip = max(offset, h.base_offset) - h.base_offset
        rows = min(h.count - skip, max_records - out.records)
        room = max_bytes - out.bytes
        first = must_progress and not out.records
        if skip == 0 and rows == h.count and msg.size <= room:
            out.whole(msg)
            return True
        if msg.size > room and not first:
            return False  # only the first batch of a read is cut down to max_bytes
        piece = self._compact(msg, skip, rows, room if first else None)
        if piece.size > room and not first:
            return False
        out.piece(piece)
        return piece.header.next_offset == h.next_offset

    def _compact(self, msg: codec.Message, skip: int, rows: int, room: int | None) -> codec.EncodedBatch:
        """Rows ``skip .. skip + rows - 1`` of ``msg`` as a new message, shrunk until it fits
        ``room`` bytes (if given) or holds one row: a proportional guess, then halving."""
        for attempt in itertools.count():
            piece = codec.encode_slice(msg, self._schema, schema_size=self._schema_size, start=skip, rows=rows)
            if room is None or piece.size <= room or rows == 1:
                return piece
            guess = rows * room // piece.size if attempt == 0 else rows // 2
            rows = max(1, min(rows - 1, guess))
        raise AssertionError("unreachable")

    def offset_for_time(self, timestamp_ms: int, limit: int) -> int | None:
        """The first readable offset whose timestamp is >= ``timestamp_ms``, or None if none here.

        Starts at the time index's entry (one interval of batches to scan at most);
        holes are stepped over, their timestamps being unknown.
        """
        if self.max_timestamp_ms < timestamp_ms or self.is_empty:
            return None
        self._ensure_index()
        entry = self.time_index.below(timestamp_ms)
        view = self._view(limit)
        position, expected = self._index_floor(entry[1] if entry else self.base_offset)
        while position < limit:
            step = self._batch_at(view, position, expected, limit)
            if isinstance(step, Hole):
                step = self._bounded(step, limit)
                expected = step.next_offset
            elif step.header.max_timestamp_ms >= timestamp_ms:
                ts = codec.decode(step, self._schema).column(1).to_numpy()
                return step.header.base_offset + int(np.argmax(ts >= timestamp_ms))
            else:
                expected = step.header.next_offset
            position += step.size
        return None

    def batch_headers(self, limit: int) -> list:
        """Headers of every batch whose header parses, in order (to rebuild producer state).

        Reads headers only, no CRCs: this runs at open, over a whole segment.
        """
        view = self._view(limit)
        headers, position = [], self._schema_size
        while position < limit:
            hole = self._holes.get(position)
            if hole is not None:
                position += hole.size
                continue
            try:
                msg = codec.read_message_at(view, position)
            except CorruptRecordError:  # a damaged header: step over it by its framing, if whole
                try:
                    position += codec.message_size_at(view, position)
                except CorruptRecordError:
                    break
                continue
            headers.append(msg.header)
            position += msg.size
        return headers


class _Gather:
    """The pieces of one read in offset order: zero-copy runs of whole stored messages, and
    compacted slices (fresh buffers)."""

    def __init__(self, view: pa.Buffer, offset: int):
        self.view = view
        self.parts: list[pa.Buffer] = []
        self.run: tuple[int, int] | None = None  # [start, end) of the current zero-copy run
        self.records = 0
        self.bytes = 0
        self.next_offset = offset

    def whole(self, msg: codec.Message) -> None:
        start, end = msg.position, msg.position + msg.size
        if self.run is not None and self.run[1] == start:
            self.run = (self.run[0], end)
        else:
            self._close_run()
            self.run = (start, end)
        self._count(msg.header, msg.size)

    def piece(self, encoded: codec.EncodedBatch) -> None:
        self._close_run()
        self.parts.append(encoded.message)
        self._count(encoded.header, encoded.size)

    def _count(self, header: codec.BatchHeader, size: int) -> None:
        self.records += header.next_offset - max(header.base_offset, self.next_offset)
        self.bytes += size
        self.next_offset = header.next_offset

    def _close_run(self) -> None:
        if self.run is not None:
            start, end = self.run
            self.parts.append(self.view.slice(start, end - start))
            self.run = None

    def result(self) -> SegmentRead:
        self._close_run()
        return SegmentRead(tuple(self.parts), self.records, self.next_offset, self.bytes)


def _write_all(fd: int, buffers: list) -> None:
    views = [memoryview(b).cast("B") for b in buffers]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]
