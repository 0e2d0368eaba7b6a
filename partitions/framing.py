"""What the bytes of a damaged segment still say: candidate batch starts, declared sizes, row counts.

Nothing here trusts a checksum; callers check every candidate with the CRC
(scan.py) or use the numbers only as bounds (recovery.py). The layout read is
Arrow's IPC encapsulated message (``0xFFFFFFFF``, int32 metadata length, a
``Message`` flatbuffer, the body) and rayka's ``rayka.batch`` header text, which
sits inside that flatbuffer (codec.py):

- :func:`candidate_starts` yields, in file order, every byte position after a
  point that could start a batch: each occurrence of the header mark
  ``rayka:v`` is preceded, within the same message's metadata, by the message's
  continuation marker, and no other mark lies between the two (user data lives in
  bodies, after the metadata). So a forward scan for the next valid batch tries a
  few positions per batch, whatever the values hold.
- :func:`declared_size` is a message's size as its framing declares it (metadata
  length plus the flatbuffer's ``bodyLength``), reading the flatbuffer by hand so
  that a damaged continuation marker or body does not hide it.
- :func:`row_count_bound` is an upper bound of the records a damaged message held:
  the largest of its header's ``count`` and its RecordBatch ``length`` that is
  possible for its size (every record takes at least :data:`MIN_RECORD_BYTES`), or
  that maximum when neither can be read. One damaged field cannot make it too low.
"""

from __future__ import annotations

import re
from typing import Iterator

import pyarrow as pa

__all__ = ["MIN_RECORD_BYTES", "candidate_starts", "declared_size", "row_count_bound"]

# An offset and a timestamp (two int64 columns, never compressed): the least bytes a record
# takes in a batch body. Bounds how many offsets a damaged run of bytes can have held.
MIN_RECORD_BYTES = 16

_MARK = b"rayka:v"
_CONTINUATION = b"\xff\xff\xff\xff"
_CHUNK = 4 * 1024 * 1024
# How far before its header mark a message may start: its metadata flatbuffer holds a node and
# two or three buffer entries per column (about 64 bytes a column), so 1 MiB covers ~16k columns.
_BACK = 1024 * 1024
_COUNT_RE = re.compile(rb"rayka:v\d;crc=[0-9a-f-]{8};base=-?\d+;count=(\d+);")


def candidate_starts(view: pa.Buffer, after: int, limit: int) -> Iterator[int]:
    """Positions in ``(after, limit)`` where a batch could start, in increasing order."""
    previous_mark = after
    chunk_start = after + 1
    while chunk_start < limit:
        chunk_end = min(limit, chunk_start + _CHUNK)
        lo = max(after + 1, chunk_start - _BACK)
        data = view.slice(lo, min(limit, chunk_end + len(_MARK) - 1) - lo).to_pybytes()
        at = data.find(_MARK, chunk_start - lo)
        while 0 <= at < chunk_end - lo:
            mark = lo + at
            floor = max(previous_mark + 1, lo) - lo
            j = data.rfind(_CONTINUATION, floor, max(floor, at - 8))
            found = []
            while j >= 0:
                meta_len = int.from_bytes(data[j + 4 : j + 8], "little") if j + 8 <= len(data) else 0
                if j + 8 + meta_len > at:  # this message's metadata holds the mark
                    found.append(lo + j)
                j = data.rfind(_CONTINUATION, floor, j + 3) if j > floor else -1
            yield from reversed(found)
            previous_mark = mark
            at = data.find(_MARK, at + 1)
        chunk_start = chunk_end


def declared_size(view: pa.Buffer, position: int, limit: int) -> int | None:
    """Bytes of the message at ``position`` as its length word and flatbuffer declare them, or
    None if they cannot be read (a torn head, zeros, garbage). The continuation marker is not
    required: a damaged marker does not change where the message ends."""
    if limit - position < 8:
        return None
    meta_len = int.from_bytes(view.slice(position + 4, 4).to_pybytes(), "little", signed=True)
    if meta_len < 8 or meta_len % 8 or meta_len > _BACK or position + 8 + meta_len > limit:
        return None
    meta = view.slice(position + 8, meta_len).to_pybytes()
    body_len = _message_field(meta, 3, 8)  # Message.bodyLength
    if body_len is None or body_len < 0 or body_len % 8:
        return None
    return 8 + meta_len + body_len


def row_count_bound(view: pa.Buffer, position: int, size: int) -> int:
    """At most how many records the (damaged) message at ``position`` of ``size`` bytes held."""
    most = max(1, size // MIN_RECORD_BYTES)
    meta = view.slice(position, min(size, 8 + _BACK)).to_pybytes()
    candidates = []
    m = _COUNT_RE.search(meta)
    if m is not None:
        candidates.append(int(m[1]))
    length = _record_batch_length(meta[8:])
    if length is not None:
        candidates.append(length)
    plausible = [c for c in candidates if 0 < c <= most]
    return max(plausible) if plausible else most


def _record_batch_length(meta: bytes) -> int | None:
    table = _root(meta)
    if table is None:
        return None
    header = _field_pos(meta, table, 2)  # Message.header (the RecordBatch table)
    if header is None or header + 4 > len(meta):
        return None
    rb = header + int.from_bytes(meta[header : header + 4], "little")
    pos = _field_pos(meta, rb, 0)  # RecordBatch.length
    if pos is None or pos + 8 > len(meta):
        return None
    return int.from_bytes(meta[pos : pos + 8], "little", signed=True)


def _message_field(meta: bytes, index: int, width: int) -> int | None:
    table = _root(meta)
    if table is None:
        return None
    pos = _field_pos(meta, table, index)
    if pos is None:
        return 0  # absent: the flatbuffer default
    if pos + width > len(meta):
        return None
    return int.from_bytes(meta[pos : pos + width], "little", signed=True)


def _root(meta: bytes) -> int | None:
    if len(meta) < 8:
        return None
    table = int.from_bytes(meta[0:4], "little")
    return table if 4 <= table <= len(meta) - 4 else None


def _field_pos(meta: bytes, table: int, index: int) -> int | None:
    """Byte position of field ``index`` of the flatbuffer table at ``table`` (None: absent or
    out of bounds)."""
    if table < 0 or table + 4 > len(meta):
        return None
    vtable = table - int.from_bytes(meta[table : table + 4], "little", signed=True)
    if vtable < 0 or vtable + 4 > len(meta):
        return None
    vt_size = int.from_bytes(meta[vtable : vtable + 2], "little")
    slot = 4 + 2 * index
    if slot + 2 > vt_size or vtable + slot + 2 > len(meta):
        return None
    offset = int.from_bytes(meta[vtable + slot : vtable + slot + 2], "little")
    return table + offset if offset else None
