"""Bounded reads and time lookups of one segment, over its memory map.

What a read returns (:class:`SegmentRead`): ``buffers`` of IPC record-batch
messages back to back, in offset order, each message whole and with its own
``rayka.batch`` header and CRC (codec.py), so a reader decodes them with
``codec.iter_messages`` exactly as it would a segment file after its schema:

- whole stored messages, zero-copy slices of the segment's map (consecutive ones
  in one slice);
- *compacted slices*: for a batch at an edge of the request (partly before
  ``offset``, past ``max_records``, or alone over ``max_bytes``), a fresh message
  holding just the rows wanted (codec.encode_slice; it carries no producer id).

Invariants: ``records <= max_records``; ``bytes <= max_bytes``, except that with
``must_progress`` at least one record is returned (a single record larger than
``max_bytes`` comes alone). Every batch served passed its CRC (scan.py); a hole
raises CorruptRecordError unless records before it were found, and the read then
stops before it. Reads only see bytes below the ``limit`` they are given, so they
may run beside an append.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from . import codec
from .integrity import Hole

if TYPE_CHECKING:
    from .segment import LogSegment

__all__ = ["SegmentRead", "read_stored", "offset_for_time"]


@dataclass
class SegmentRead:
    """Messages covering the requested offsets, in order: zero-copy slices of the file and
    compacted slices of edge batches, each buffer whole messages back to back."""

    buffers: tuple
    records: int  # records at or after the requested offset
    next_offset: int  # offset after the last record in buffers
    bytes: int = 0


def read_stored(seg: "LogSegment", offset: int, max_records: int, max_bytes: int, limit: int,
                must_progress: bool) -> SegmentRead:
    """Records from ``offset`` on, read from the file (LogSegment.read has tried its tail cache).

    Whole batches that fit are zero-copy slices of the map; past the first batch only
    whole batches are added for ``max_bytes`` (the next read starts there), while a
    batch that would overshoot ``max_records`` is sliced to fill it.
    """
    view = seg.view(limit)
    out = _Gather(view, offset)
    position, expected = seg.index_floor(offset)
    while position < limit and out.records < max_records:
        step = seg.scanner.batch_at(view, position, expected, limit)
        if isinstance(step, Hole):
            step = seg.scanner.bounded(step, limit, seg.next_offset)
            if step.next_offset > offset:
                if out.records:
                    break
                raise seg.scanner.hole_error(step)
            expected = step.next_offset
        else:
            h = step.header
            expected = h.next_offset
            if expected <= offset:
                pass  # before the requested offset, in the index interval
            elif (h.base_offset >= offset and out.records + h.count <= max_records
                  and out.bytes + step.size <= max_bytes):
                out.whole(step)  # the common case, inline: a whole batch within the limits
            elif not _take(seg, out, step, offset, max_records, max_bytes, must_progress):
                break
        position += step.size
    return out.result()


def _take(seg: "LogSegment", out: "_Gather", msg: codec.Message, offset: int, max_records: int,
          max_bytes: int, must_progress: bool) -> bool:
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
    piece = _compact(seg, msg, skip, rows, room if first else None)
    if piece.size > room and not first:
        return False
    out.piece(piece)
    return piece.header.next_offset == h.next_offset


def _compact(seg: "LogSegment", msg: codec.Message, skip: int, rows: int, room: int | None) -> codec.EncodedBatch:
    """Rows ``skip .. skip + rows - 1`` of ``msg`` as a new message, shrunk until it fits
    ``room`` bytes (if given) or holds one row: a proportional guess, then halving."""
    for attempt in itertools.count():
        piece = codec.encode_slice(msg, seg.schema, schema_size=seg.schema_size, start=skip, rows=rows)
        if room is None or piece.size <= room or rows == 1:
            return piece
        guess = rows * room // piece.size if attempt == 0 else rows // 2
        rows = max(1, min(rows - 1, guess))
    raise AssertionError("unreachable")


def offset_for_time(seg: "LogSegment", timestamp_ms: int, limit: int) -> int | None:
    """The first readable offset whose timestamp is >= ``timestamp_ms``, or None if none here.

    Starts at the time index's entry before the one found (two intervals of batches to scan at most);
    holes are stepped over, their timestamps being unknown.
    """
    if seg.max_timestamp_ms < timestamp_ms or seg.is_empty:
        return None
    seg.ensure_index()
    # Start one entry before the last one older than the time: an entry whose time was lowered
    # on disk (within what index_check.py can see) then cannot make the scan start past the answer.
    # One pair, taken once: a concurrent release() replaces it whole.
    times, offsets = seg.time_index.pair
    i = bisect_left(times, timestamp_ms) - 2
    view = seg.view(limit)
    position, expected = seg.index_floor(offsets[i] if i >= 0 else seg.base_offset)
    while position < limit:
        step = seg.scanner.batch_at(view, position, expected, limit)
        if isinstance(step, Hole):
            step = seg.scanner.bounded(step, limit, seg.next_offset)
            expected = step.next_offset
        elif step.header.max_timestamp_ms >= timestamp_ms:
            ts = codec.decode(step, seg.schema).column(1).to_numpy()
            return step.header.base_offset + int(np.argmax(ts >= timestamp_ms))
        else:
            expected = step.header.next_offset
        position += step.size
    return None


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
