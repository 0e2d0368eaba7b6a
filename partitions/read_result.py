"""ReadResult: what a read of a partition log returns, and of one of its segments or tail caches.

``buffers`` hold IPC record-batch messages back to back, in offset order, each
message whole and with its own ``rayka.batch`` header and CRC (codec.py), so a reader
decodes them with :func:`rayka.partitions.codec.iter_messages` exactly as it would a
segment file after its schema:

- whole stored messages: zero-copy slices of a segment's memory map (consecutive
  ones in one slice), or one fresh buffer of the newest messages (tail_cache.py);
- *compacted slices*: for a batch at an edge of the request (partly before
  ``offset``, past ``max_records``, or alone over ``max_bytes``), a fresh message
  holding just the rows wanted (codec.encode_slice; it carries no producer id).

A segment (or its tail cache) answers with the messages alone; the log joins the
answers of its segments and adds what only it knows: the schema to decode with, and
the log's start and end when the read began (segment_read.py, log_read.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

__all__ = ["ReadResult"]


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Stored messages holding offsets ``offset .. next_offset - 1``.

    ``records`` (``next_offset - offset``) is at most the ``max_records`` asked for, and
    ``bytes`` (the size of ``buffers``) at most ``max_bytes``, unless the first record alone
    is larger (it then comes alone, so a reader always makes progress). Readers may still
    skip records before ``offset`` (older rayka versions shipped them). ``schema``,
    ``log_start_offset`` and ``high_watermark`` are set by :meth:`PartitionLog.read`, and
    None / -1 in the answer of one segment.
    """

    offset: int
    buffers: tuple
    records: int
    next_offset: int
    bytes: int = 0
    schema: pa.Schema | None = None
    log_start_offset: int = -1
    high_watermark: int = -1
    schema_version: int = 0  # of ``schema`` (schema_versions.py; 0: an untyped topic)

    @classmethod
    def empty(cls, offset: int) -> "ReadResult":
        """Nothing from ``offset`` on (yet)."""
        return cls(offset, (), 0, offset)
