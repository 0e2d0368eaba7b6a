"""Checking a segment's loaded ``.index`` and ``.timeindex`` against the segment file.

An index is derived data, so one that fails here is rebuilt from the segment
(recovery.py) rather than trusted: a wrong position would kill the partition at
open (negative), hide every record after it (past the end), or make intact
batches look damaged (shifted). What a loaded pair must satisfy (index.py has the
layout; entries are written only for valid batches, see LogSegment.index_batch):

- both have the same entries: the time index's offsets are the offset index's keys;
- offsets strictly increase from the segment's base offset; positions strictly
  increase, from the end of the schema message to before the end of the file;
- each position holds the start of a batch whose header names that offset: the
  continuation marker, a metadata length inside the file, and the ``rayka.batch``
  header text with ``base=`` that offset. This reads one header per entry (no CRC,
  no body: a few microseconds each), so a one-byte change in either column is found;
- time entries: the first is the minimum timestamp (nothing precedes the first
  batch), they never decrease, and each is at least the newest timestamp of the
  batch the previous entry points at (that batch lies before it).

What these checks cannot see: a time entry lowered to a value still between its
neighbours' bounds. ``offset_for_time`` starts one entry earlier than the index
says (segment_read.py), so one damaged entry cannot make a lookup start past its answer.
"""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING

import pyarrow as pa

from ..errors import CorruptRecordError
from . import codec
from .index import MIN_TIMESTAMP, PairIndex

if TYPE_CHECKING:
    from .segment import LogSegment

__all__ = ["index_problem", "index_digest"]


def index_problem(seg: "LogSegment", view: pa.Buffer, file_size: int) -> str | None:
    """Why the loaded indexes of ``seg`` cannot be trusted, or None if they pass."""
    offsets, times = seg.offset_index, seg.time_index
    n = len(offsets)
    if len(times) != n:
        return f"the .index has {n} entries and the .timeindex {len(times)}"
    if list(times.values) != list(offsets.keys):
        return "the .timeindex and .index entries name different offsets"
    if n == 0:
        return None
    keys, positions = offsets.keys, offsets.values
    if keys[0] < seg.base_offset or positions[0] < seg.schema_size or positions[-1] >= file_size:
        return (f"an entry lies outside the segment (first {keys[0]}@{positions[0]}, last "
                f"{keys[-1]}@{positions[-1]}, file of {file_size} bytes)")
    if times.keys[0] != MIN_TIMESTAMP:
        return f"the first .timeindex entry is {times.keys[0]}, not the minimum timestamp"
    for i in range(1, n):
        if keys[i] <= keys[i - 1] or positions[i] <= positions[i - 1]:
            return f"entries {i - 1} and {i} are out of order"
        if times.keys[i] < times.keys[i - 1]:
            return f".timeindex entries {i - 1} and {i} decrease"
    for i in range(n):
        try:
            header = codec.header_at(view, positions[i], file_size)
        except CorruptRecordError as exc:
            return f"entry {i} ({keys[i]}@{positions[i]}) points at no batch header: {exc}"
        if header.base_offset != keys[i]:
            return f"entry {i} says offset {keys[i]} is at byte {positions[i]}; the batch there starts at {header.base_offset}"
        if i + 1 < n and times.keys[i + 1] < header.max_timestamp_ms:
            return (f".timeindex entry {i + 1} ({times.keys[i + 1]}) is older than the batch before it "
                    f"({header.max_timestamp_ms})")
    return None


def index_digest(*indexes: PairIndex) -> int:
    """A CRC of the in-memory entries, to tell a reloaded index from the one checked."""
    crc = 0
    for index in indexes:
        crc = zlib.crc32(index.values, zlib.crc32(index.keys, crc))
    return crc
