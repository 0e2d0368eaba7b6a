"""Finding batches in a segment file with their CRCs checked, and classifying damage.

:class:`SegmentScanner` answers one question for reads, recovery and the producer-state
scan alike: given a byte position where a batch with first offset ``expected``
should start, what is there? Either a :class:`~rayka.partitions.codec.Message`
whose CRC passed (now, or earlier since the file was opened: the scanner keeps
:class:`~rayka.partitions.integrity.VerifiedRanges`), or a
:class:`~rayka.partitions.integrity.Hole`.

Damage policy, the same for the active and sealed segments:

- A *hole*: one or more batches whose framing (IPC length prefix, metadata, body
  length) is intact but whose header or CRC fails, followed by a whole, valid
  batch. It stays in the file; its offsets (up to the valid batch's base offset)
  are never reused; reads of it raise CorruptRecordError naming them and the
  offset to seek to (:meth:`SegmentScanner.hole_error`).
- A *torn tail* (an unbounded hole): damage with no valid batch after it (a batch
  cut short by a crash, garbage at the end, or framing broken so that the next
  batch cannot be found). Recovery truncates it from the active segment
  (recovery.py); a read bounds it by the next index entry or the segment's end
  (:meth:`SegmentScanner.bounded`).
- A whole, valid batch whose first offset is not ``expected`` means a damaged
  index pointed somewhere wrong: CorruptRecordError, nothing after it is trusted.

Why holes rather than Kafka's truncate-at-first-corruption: truncating would drop
the acknowledged batches behind the damage and hand their offsets to new records,
so a consumer that had read or committed past them would skip the new records
without knowing.

Nothing here is stored on disk. Thread-safe for concurrent readers: the verified
ranges take their own lock, and a hole is a frozen value put into a dict in one
step (two readers finding the same hole store equal values).
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from pathlib import Path

import pyarrow as pa

from ..errors import CorruptRecordError
from . import codec
from .index import OffsetIndex
from .integrity import Hole, VerifiedRanges

__all__ = ["SegmentScanner"]

log = logging.getLogger(__name__)


class SegmentScanner:
    """What one segment file's bytes are known to be: CRC-checked ranges and bounded holes."""

    def __init__(self, path: Path, offset_index: OffsetIndex):
        self.path = path
        self.offset_index = offset_index
        self.verified = VerifiedRanges()
        self.holes: dict[int, Hole] = {}  # bounded holes found so far, by byte position

    def clear(self) -> None:
        """Forget everything (the file is being rescanned or deleted)."""
        self.verified.clear()
        self.holes.clear()

    def batch_at(self, view: pa.Buffer, position: int, expected: int, limit: int) -> codec.Message | Hole:
        """The CRC-checked batch at ``position`` (which must start at offset ``expected``), or the
        hole that starts there. Raises CorruptRecordError for a valid batch out of sequence
        (a damaged index points somewhere wrong)."""
        hole = self.holes.get(position)
        if hole is not None:
            return hole
        try:
            msg = codec.read_message_at(view, position)
            end = position + msg.size
            if end > limit:
                raise CorruptRecordError(f"batch at byte {position} runs past byte {limit}")
            if not self.verified.covers(position, end):
                msg.verify()
                self.verified.add(position, end)
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
                self.holes[position] = hole
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
        self.verified.add(position, position + msg.size)
        return msg

    def bounded(self, hole: Hole, limit: int, next_offset: int) -> Hole:
        """A hole with known offsets: an unbounded one (found by a read, nothing valid after it
        by framing) ends at the next index entry, or at the end of the segment (byte ``limit``,
        offset ``next_offset``)."""
        if hole.bounded:
            return hole
        index = self.offset_index
        i = bisect_right(index.values, hole.position)
        if i < len(index):
            return Hole(hole.position, index.values[i] - hole.position, hole.first_offset, index.keys[i])
        return Hole(hole.position, limit - hole.position, hole.first_offset, next_offset)

    def hole_error(self, hole: Hole) -> CorruptRecordError:
        return CorruptRecordError(
            f"offsets {hole.first_offset}..{hole.next_offset - 1} of {self.path} failed their checksum "
            f"(bytes {hole.position}..{hole.position + hole.size - 1} are damaged on disk; they are "
            f"never served); seek to {hole.next_offset} to read on",
            first_offset=hole.first_offset, next_offset=hole.next_offset,
        )
