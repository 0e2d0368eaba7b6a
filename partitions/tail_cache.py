"""TailCache: the newest messages of an active segment, kept in memory for followers.

A consumer that follows the end of a partition asks for what was appended a moment
ago; serving that from the messages just written avoids re-mapping a file that
grows with every append (which cost ~150 us a read). Entries are whole stored
messages, contiguous up to the end of the segment (an oversized batch empties the
cache rather than leave a gap), bounded by :data:`TAIL_CACHE_BYTES` and
:data:`TAIL_CACHE_BATCHES`. One writer (the log's append path) and any number of
readers: readers copy the deque (one C-level call, atomic under the GIL) and work
on the snapshot. A read answers as a segment read does (read_result.py).
"""

from __future__ import annotations

import itertools
from collections import deque
import pyarrow as pa

from .read_result import ReadResult

__all__ = ["TailCache", "TAIL_CACHE_BYTES", "TAIL_CACHE_BATCHES"]

TAIL_CACHE_BYTES = 4 * 1024 * 1024
TAIL_CACHE_BATCHES = 256


class TailCache:
    """(base_offset, next_offset, position, head, body) of the newest messages, oldest first."""

    def __init__(self) -> None:
        self._entries: deque = deque()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries = deque()
        self._bytes = 0

    def add(self, base_offset: int, next_offset: int, position: int, head: bytes, body: pa.Buffer) -> None:
        size = len(head) + body.size
        if size > TAIL_CACHE_BYTES:
            self.clear()  # the cache must reach the end of the file, so start over
            return
        self._entries.append((base_offset, next_offset, position, head, body))
        self._bytes += size
        while self._bytes > TAIL_CACHE_BYTES or len(self._entries) > TAIL_CACHE_BATCHES:
            _, _, _, old_head, old_body = self._entries.popleft()
            self._bytes -= len(old_head) + old_body.size

    def read(self, offset: int, max_records: int, max_bytes: int, limit: int) -> ReadResult | None:
        """Whole messages from ``offset`` on (below byte ``limit``), or None to read the file instead.

        The cache answers only with whole messages that fit ``max_records`` and
        ``max_bytes``; None when the answer needs anything else (``offset`` older than
        the cache or inside a batch, or an edge batch to slice), so a read returns the
        same records whether the cache or the file serves it.
        """
        tail = list(self._entries)
        if not tail or offset < tail[0][0]:
            return None
        first = len(tail) - 1
        while first > 0 and tail[first][0] > offset:  # followers read near the end: search backwards
            first -= 1
        if tail[first][0] != offset:
            return None
        parts, records, total, next_offset = [], 0, 0, offset
        for base, nxt, pos, head, body in itertools.islice(tail, first, None):
            size = len(head) + body.size
            if pos + size > limit:
                break
            fits_bytes = total + size <= max_bytes
            if records + nxt - base <= max_records and fits_bytes:
                parts += (head, body)
                total += size
                records += nxt - base
                next_offset = nxt
                continue
            if not parts or (records < max_records and fits_bytes):
                return None  # the first batch, or one that would fill max_records, must be sliced
            break
        if not parts:
            return ReadResult.empty(offset)
        return ReadResult(offset, (pa.py_buffer(b"".join(parts)),), records, next_offset, total)
