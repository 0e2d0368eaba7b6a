"""Bounded reads and time lookups of one segment, over its memory map.

A read returns a :class:`~rayka.partitions.read_result.ReadResult` (the format of its
buffers is there): whole stored messages as zero-copy slices of the segment's map, and
compacted slices of the batches at the edges of the request. Both functions walk the
file with :meth:`SegmentScanner.batches_from <rayka.partitions.scan.SegmentScanner.batches_from>`,
from the index entry before what they look for.

Invariants: ``records <= max_records``; ``bytes <= max_bytes``, except that with
``must_progress`` at least one record is returned (a single record larger than
``max_bytes`` comes alone; with ``whole_batches``, a first stored batch larger than
``max_bytes`` comes alone and whole, never re-encoded: a follower's copy). Every batch
served passed its CRC (scan.py); a hole raises CorruptRecordError unless records before
it were found, and the read then stops before it. Reads only see bytes below the
``limit`` they are given, so they may run beside an append.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left

import numpy as np
import pyarrow as pa

from . import codec
from .integrity import Hole
from .read_result import ReadResult
from .scan import SegmentScanner
from .segment_file import SegmentFile

__all__ = ["read_stored", "offset_for_time"]


def read_stored(file: SegmentFile, scanner: SegmentScanner, offset: int, max_records: int, max_bytes: int,
                limit: int, end_offset: int, must_progress: bool, whole_batches: bool = False) -> ReadResult:
    """Records from ``offset`` on, read from the file below byte ``limit`` (LogSegment.read has
    tried its tail cache); ``end_offset`` is the segment's next offset. ``max_records`` > 0.

    Whole batches that fit are zero-copy slices of the map; past the first batch only
    whole batches are added for ``max_bytes`` (the next read starts there), while a
    batch that would overshoot ``max_records`` is sliced to fill it.
    """
    view = file.view(limit)
    out = _Gather(view, offset)
    for step in scanner.batches_from(view, offset, limit, end_offset):
        if isinstance(step, Hole):
            if step.next_offset > offset:
                if out.records:
                    break
                raise scanner.hole_error(step)
        else:
            h = step.header
            if h.next_offset <= offset:
                pass  # before the requested offset, in the index interval
            elif (h.base_offset >= offset and out.records + h.count <= max_records
                  and out.bytes + step.size <= max_bytes):
                out.whole(step)  # the common case, inline: a whole batch within the limits
            elif not _take(file, out, step, offset, max_records, max_bytes, must_progress, whole_batches):
                break
        if out.records >= max_records:  # before the walk reads (and CRC-checks) one more batch
            break
    return out.result()


def _take(file: SegmentFile, out: "_Gather", msg: codec.Message, offset: int, max_records: int,
          max_bytes: int, must_progress: bool, whole_batches: bool = False) -> bool:
    """Add ``msg`` (whole, or a compacted slice of it) to ``out``; False if the read ends here
    (the batch did not fit, or only its first records did)."""
    h = msg.header
    skip = max(offset, h.base_offset) - h.base_offset
    rows = min(h.count - skip, max_records - out.records)
    room = max_bytes - out.bytes
    first = must_progress and not out.records
    if skip == 0 and rows == h.count and (msg.size <= room or (first and whole_batches)):
        out.whole(msg)
        return True
    if msg.size > room and not first:
        return False  # only the first batch of a read is cut down to max_bytes
    piece = _compact(file, msg, skip, rows, room if first else None)
    if piece.size > room and not first:
        return False
    out.piece(piece)
    return piece.header.next_offset == h.next_offset


def _compact(file: SegmentFile, msg: codec.Message, skip: int, rows: int, room: int | None) -> codec.EncodedBatch:
    """Rows ``skip .. skip + rows - 1`` of ``msg`` as a new message, shrunk until it fits
    ``room`` bytes (if given) or holds one row: a proportional guess, then halving."""
    for attempt in itertools.count():
        piece = codec.encode_slice(msg, file.schema, schema_size=file.schema_size, start=skip, rows=rows)
        if room is None or piece.size <= room or rows == 1:
            return piece
        guess = rows * room // piece.size if attempt == 0 else rows // 2
        rows = max(1, min(rows - 1, guess))
    raise AssertionError("unreachable")


def offset_for_time(file: SegmentFile, scanner: SegmentScanner, time_pair: tuple, timestamp_ms: int,
                    limit: int, end_offset: int) -> int | None:
    """The first readable offset whose timestamp is >= ``timestamp_ms``, or None if none here
    (below byte ``limit``; ``end_offset`` is the segment's next offset). ``time_pair`` is the
    time index's (timestamps, offsets), taken once (SegmentIndex.time_pair).

    Starts at the time index's entry before the one found (two intervals of batches to scan at most);
    holes are stepped over, their timestamps being unknown.
    """
    # Start one entry before the last one older than the time: an entry whose time was lowered
    # on disk (within what index_check.py can see) then cannot make the scan start past the answer.
    times, offsets = time_pair
    i = bisect_left(times, timestamp_ms) - 2
    view = file.view(limit)
    for step in scanner.batches_from(view, offsets[i] if i >= 0 else file.base_offset, limit, end_offset):
        if not isinstance(step, Hole) and step.header.max_timestamp_ms >= timestamp_ms:
            ts = codec.decode(step, file.schema).column(1).to_numpy()
            return step.header.base_offset + int(np.argmax(ts >= timestamp_ms))
    return None


class _Gather:
    """The pieces of one read in offset order: zero-copy runs of whole stored messages, and
    compacted slices (fresh buffers)."""

    def __init__(self, view: pa.Buffer, offset: int):
        self.view = view
        self.offset = offset
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

    def result(self) -> ReadResult:
        self._close_run()
        return ReadResult(self.offset, tuple(self.parts), self.records, self.next_offset, self.bytes)
