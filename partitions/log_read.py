"""Reading a partition log: one request served across its segments, from a snapshot.

:meth:`PartitionLog.read` takes a :class:`SegmentsSnapshot` under the log's lock (the
segment list, each segment's size and next offset, the log's start and end) and reads
the memory-mapped files without the lock (:func:`read_segments`), so a long read never
blocks appends and sees only what was written when it began. A request goes on into
the next segment while the limits allow and the segment was read to its end. Damage
(scan.py) stops a read just before it when records came first; else the read raises
CorruptRecordError naming the offsets and where to seek to. A gap between two
segments (a damaged sealed segment ended early) reads the same way.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path


from ..errors import CorruptRecordError, OffsetOutOfRangeError
from .read_result import ReadResult
from .segment import LogSegment

__all__ = ["SegmentsSnapshot", "read_segments", "offset_for_time", "check_range", "merge_run"]


@dataclass(frozen=True, slots=True)
class SegmentsSnapshot:
    """The segments of a log as a read found them (taken under the log's lock)."""

    segments: tuple[LogSegment, ...]
    bases: tuple[int, ...]
    limits: tuple[int, ...]  # each segment's size: reads see no byte past it
    ends: tuple[int, ...]  # each segment's next offset
    start: int  # log start offset
    end: int  # log end offset

    @classmethod
    def of(cls, segments: list[LogSegment], bases: list[int]) -> "SegmentsSnapshot":
        return cls(tuple(segments), tuple(bases), tuple(s.size for s in segments),
                   tuple(s.next_offset for s in segments), segments[0].base_offset, segments[-1].next_offset)


def read_segments(snapshot: SegmentsSnapshot, offset: int, max_records: int, max_bytes: int, *,
                  schemas, directory: Path, now_ms: int, whole_batches: bool = False) -> ReadResult:
    """Records from ``offset`` (in range) on, across the segments of ``snapshot``, within
    ``max_records`` and ``max_bytes`` (bounds: PartitionLog.read), all of one schema version: the
    read stops before a segment of another (``schemas``, a SchemaSet, names the version of the
    segments' schema messages; the result's ``schema`` and ``schema_version``). Marks each segment read at
    ``now_ms`` (idle ones are unmapped by the tick). FileNotFoundError if retention deleted a
    segment meanwhile; CorruptRecordError for damage at ``offset``."""
    segments, ends = snapshot.segments, snapshot.ends
    buffers = []
    records = total = 0
    next_offset = offset
    i = max(bisect.bisect_right(snapshot.bases, offset) - 1, 0)
    schema_bytes = segments[i].file.schema_bytes  # a log has at least one segment
    while i < len(segments) and records < max_records and next_offset < snapshot.end:
        seg = segments[i]
        if seg.file.schema_bytes != schema_bytes:
            if records:
                break  # one answer, one schema: the next read starts in this segment
            schema_bytes = seg.file.schema_bytes  # the first segment had nothing past ``offset``
        if next_offset < seg.base_offset:  # a hole left by a damaged segment
            if records:
                break
            raise CorruptRecordError(
                f"offsets {next_offset}..{seg.base_offset - 1} of {directory} are unreadable "
                f"(a damaged segment); seek to {seg.base_offset} to read on",
                first_offset=segments[i - 1].next_offset if i else next_offset,
                next_offset=seg.base_offset)
        seg.last_read_ms = now_ms
        try:
            got = seg.read(next_offset, max_records - records, max_bytes, snapshot.limits[i],
                           must_progress=not records, whole_batches=whole_batches)
        except CorruptRecordError:
            if records:  # serve what came before the damage; the next read reports it
                break
            raise
        buffers += got.buffers
        records += got.records
        next_offset = got.next_offset
        total += got.bytes
        max_bytes -= got.bytes
        if max_bytes <= 0 or next_offset < ends[i]:  # a limit (or damage) stopped it here
            break
        i += 1
    version = schemas.version_of(schema_bytes)
    return ReadResult(offset, tuple(buffers), records, next_offset, total, schema=schemas.schema(version),
                      log_start_offset=snapshot.start, high_watermark=snapshot.end, schema_version=version)


def offset_for_time(snapshot: SegmentsSnapshot, timestamp_ms: int) -> int | None:
    """The earliest offset whose timestamp is >= ``timestamp_ms``; None if there is none."""
    for seg, limit in zip(snapshot.segments, snapshot.limits):
        hit = seg.offset_for_time(timestamp_ms, limit)
        if hit is not None:
            return hit
    return None


def check_range(offset: int, start: int, end: int) -> None:
    """OffsetOutOfRangeError unless ``start <= offset <= end``."""
    if offset < start or offset > end:
        raise OffsetOutOfRangeError(
            f"offset {offset} is out of range; valid offsets are {start}..{end} "
            f"(log start {start}, log end {end}); seek to one of them or use auto_offset_reset",
            log_start_offset=start, log_end_offset=end,
        )


def merge_run(runs: list[tuple[int, int]], first: int, last: int) -> list[tuple[int, int]]:
    """``runs`` of (first, last) offsets with ``first..last`` added, sorted and merged where
    they overlap (one run found twice)."""
    merged: list[tuple[int, int]] = []
    for a, b in sorted(list(runs) + [(first, last)]):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
