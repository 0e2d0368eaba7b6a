"""Checking a segment's loaded ``.index`` and ``.timeindex`` against the segment file.

An index is derived data, so one that fails here is rebuilt from the segment
(recovery.py) rather than trusted: a wrong position would kill the partition at
open (negative), hide every record after it (past the end), or make intact
batches look damaged (shifted). What a loaded pair must satisfy (index.py has the
layout; entries are written only for valid batches, see SegmentIndex.add_batch):

- both have the same entries: the time index's offsets are the offset index's keys;
- offsets strictly increase from the segment's base offset; positions strictly
  increase, from the end of the schema message to before the end of the file;
- each position holds the start of a batch that begins at that offset: the IPC
  continuation marker, a metadata length inside the file, and, as the first eight
  bytes of the body, the batch's first offset (the body starts with the ``offset``
  column's values: an int64 column without nulls has no validity bytes). All of it
  is checked for every entry at once with numpy over the memory map (no CRC, no
  flatbuffer parse), so a one-byte change in either column is found for well under
  a microsecond an entry;
- time entries: the first is the minimum timestamp (nothing precedes the first
  batch) and they never decrease.

What these checks cannot see: a time entry changed to a value still between its
neighbours. Raised, it only makes a lookup start earlier; lowered, it could make one
start past its answer, so ``offset_for_time`` starts one entry earlier than the
index says (segment_read.py): with the entries in order, one damaged entry cannot
make a lookup miss.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from .index import MIN_TIMESTAMP, SegmentIndex

__all__ = ["index_problem"]


def index_problem(index: SegmentIndex, base_offset: int, schema_size: int, view: pa.Buffer,
                  file_size: int) -> str | None:
    """Why the loaded ``index`` of the segment at ``base_offset`` (whose file, ``file_size`` bytes
    mapped in ``view``, starts with a schema message of ``schema_size`` bytes) cannot be trusted,
    or None if it passes."""
    offsets, times = index.offsets, index.times
    n = len(offsets)
    if len(times) != n:
        return f"the .index has {n} entries and the .timeindex {len(times)}"
    if n == 0:
        return None
    keys = np.frombuffer(offsets.keys, dtype=np.int64)
    positions = np.frombuffer(offsets.values, dtype=np.int64)
    stamps = np.frombuffer(times.keys, dtype=np.int64)
    if not np.array_equal(np.frombuffer(times.values, dtype=np.int64), keys):
        return "the .timeindex and .index entries name different offsets"
    if keys[0] < base_offset or positions[0] < schema_size or positions[-1] > file_size - 16:
        return (f"an entry lies outside the segment (first {keys[0]}@{positions[0]}, last "
                f"{keys[-1]}@{positions[-1]}, file of {file_size} bytes)")
    if (keys[1:] <= keys[:-1]).any() or (positions[1:] <= positions[:-1]).any():
        return "the entries are out of order"
    if stamps[0] != MIN_TIMESTAMP or (stamps[1:] < stamps[:-1]).any():  # (np.diff would overflow)
        return "the .timeindex times are not the minimum timestamp and then non-decreasing"
    data = np.frombuffer(view, dtype=np.uint8, count=file_size)
    heads = data[positions[:, None] + np.arange(8)]
    if not (heads[:, :4] == 0xFF).all():
        return f"entry {_first(~(heads[:, :4] == 0xFF).all(axis=1))} points at no message start"
    meta_len = heads[:, 4:].copy().view("<u4").ravel().astype(np.int64)
    body = positions + 8 + meta_len
    ends = np.append(positions[1:], file_size)
    bad = (meta_len <= 0) | (body + 8 > ends)
    if bad.any():
        return f"entry {_first(bad)} points at a message whose metadata runs past the next entry or the file"
    first_offsets = data[body[:, None] + np.arange(8)].copy().view("<i8").ravel()
    bad = first_offsets != keys
    if bad.any():
        i = _first(bad)
        return f"entry {i} says offset {keys[i]} is at byte {positions[i]}; the batch there starts at {first_offsets[i]}"
    return None


def _first(mask) -> int:
    return int(np.flatnonzero(mask)[0])
