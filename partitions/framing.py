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

from . import codec

__all__ = ["MIN_RECORD_BYTES", "candidate_starts", "declared_size", "row_count_bound", "malformed_extent",
           "checked_extent", "could_be_torn"]

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
    meta = _metadata_at(view, position, limit)
    if meta is None:
        return None
    body_len = _message_field(meta, 3, 8)  # Message.bodyLength
    if body_len is None or body_len < 0 or body_len % 8:
        return None
    return 8 + len(meta) + body_len


def malformed_extent(view: pa.Buffer, position: int, limit: int) -> int | None:
    """The size of the message at ``position`` if its length word is well-formed, the file holds
    all the metadata it declares, and that metadata is not a record batch's as rayka writes it
    (root or vtable unreadable, not a RecordBatch, no whole rayka header, or a ``bodyLength``
    that is not the padded end of its buffers). A write cut short leaves a correct prefix, so
    whole metadata that is malformed was damaged after it was written. The message is taken to
    end at the next possible batch start after its metadata, or at ``limit``. None otherwise."""
    meta = _metadata_at(view, position, limit)
    if meta is None or _well_formed(meta):
        return None
    meta_end = position + 8 + len(meta)
    for start in candidate_starts(view, meta_end - 1, limit):
        return start - position
    return limit - position


def _metadata_at(view: pa.Buffer, position: int, limit: int) -> bytes | None:
    """The metadata bytes of the message at ``position`` as its length word declares them, or None
    if that word is implausible (not a positive multiple of 8 within ``_BACK``) or the file holds
    less than it declares before ``limit``. The continuation marker before it is not read."""
    if limit - position < 8:
        return None
    meta_len = int.from_bytes(view.slice(position + 4, 4).to_pybytes(), "little", signed=True)
    if meta_len < 8 or meta_len % 8 or meta_len > _BACK or position + 8 + meta_len > limit:
        return None
    return view.slice(position + 8, meta_len).to_pybytes()


def checked_extent(view: pa.Buffer, position: int, limit: int, first: int, last: int):
    """(size, header) of a whole message at ``position`` whose 8-byte prefix (continuation
    marker and length word: all the CRC does not cover) is damaged, proven by its CRC: the first
    rayka header after ``position`` names a base offset in ``first..last``, and the metadata
    and body, placed by the flatbuffer's ``bodyLength`` against an end that is a possible batch
    start or ``limit``, pass that header's CRC. None if no such extent passes."""
    window = view.slice(position, min(limit - position, 8 + _BACK)).to_pybytes()
    found = codec.find_header(window)
    if found is None:
        return None
    at, header = found
    if not first <= header.base_offset <= last:
        return None
    body_len = _message_field(window[8:], 3, 8)  # the root is read from byte 8, whatever the length word
    if body_len is None or body_len < 0 or body_len % 8:
        return None
    for end in [*candidate_starts(view, position + at, limit), limit]:
        meta_len = end - position - 8 - body_len
        if meta_len < at or meta_len % 8 or meta_len > _BACK:
            continue
        metadata = view.slice(position + 8, meta_len).to_pybytes()
        if codec.checksum_passes(header, metadata, view.slice(position + 8 + meta_len, body_len)):
            return end - position, header
    return None


def could_be_torn(view: pa.Buffer, position: int, limit: int) -> bool:
    """Whether the bytes from ``position`` could start a write cut short: a message's first bytes
    (its continuation marker, or the start of it), or zeros (a file extended on disk before its
    data got there, as a power loss can leave it). Anything else no append writes."""
    head = view.slice(position, min(4, limit - position)).to_pybytes()
    return head == _CONTINUATION[: len(head)] or head == bytes(len(head))


def _well_formed(meta: bytes) -> bool:
    """Whether whole metadata bytes read as a RecordBatch message of rayka's: root, vtable and
    fields in bounds, header type RecordBatch, bodyLength the padded end of its buffers, and a
    whole rayka header text among them."""
    table = _root(meta)
    if table is None:
        return False
    kind = _message_field(meta, 1, 1)  # Message.header_type
    body_len = _message_field(meta, 3, 8)
    if kind != 3 or body_len is None or body_len < 0 or body_len % 8:  # 3: MessageHeader.RecordBatch
        return False
    ends = _buffer_ends(meta)
    if ends is None or (ends + 7) // 8 * 8 != body_len:
        return False
    return codec.find_header(meta) is not None


def _buffer_ends(meta: bytes) -> int | None:
    """The end of the last byte of the RecordBatch's buffers in the body, or None if unreadable."""
    table = _root(meta)
    if table is None:
        return None
    header = _field_pos(meta, table, 2)
    if header is None or header + 4 > len(meta):
        return None
    rb = header + int.from_bytes(meta[header : header + 4], "little")
    pos = _field_pos(meta, rb, 2)  # RecordBatch.buffers: a vector of Buffer {offset: long, length: long}
    if pos is None or pos + 4 > len(meta):
        return None
    vec = pos + int.from_bytes(meta[pos : pos + 4], "little")
    if vec + 4 > len(meta):
        return None
    count = int.from_bytes(meta[vec : vec + 4], "little")
    if vec + 4 + 16 * count > len(meta):
        return None
    end = 0
    for i in range(count):
        at = vec + 4 + 16 * i
        offset = int.from_bytes(meta[at : at + 8], "little", signed=True)
        length = int.from_bytes(meta[at + 8 : at + 16], "little", signed=True)
        if offset < 0 or length < 0:
            return None
        end = max(end, offset + length)
    return end


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
