"""Finding batches in a segment file with their CRCs checked, and classifying damage.

:class:`SegmentScanner` answers one question for reads, recovery and the producer-state
scan alike: given a byte position where a batch with first offset ``expected``
should start, what is there? Either a :class:`~rayka.partitions.codec.Message`
whose CRC passed (now, or earlier since the file was opened: the scanner keeps
:class:`~rayka.partitions.integrity.VerifiedRanges`), or a
:class:`~rayka.partitions.integrity.Hole`.

Damage policy, the same for the active and sealed segments:

- A *hole*: bytes that do not hold the valid batch expected there (a header or
  CRC that fails, a damaged length word, a failed write's leftovers), followed by
  a whole, valid batch. The next valid batch is found by scanning forward for
  candidate batch starts (framing.py), never by trusting the damaged bytes' own
  length, and must start at an offset the damaged bytes could have held (at
  least the expected offset, at most one more per 16 bytes). The hole stays in
  the file; its offsets (up to the valid batch's base offset) are never reused;
  reads of it raise CorruptRecordError naming them and the offset to seek to
  (:meth:`SegmentScanner.hole_error`). A hole of no offsets (leftover bytes
  followed by the expected batch) is skipped silently.
- An *unbounded* hole: damage with no valid batch anywhere after it. What it is
  decided by recovery.py: a write cut short at the end of the active segment (a
  torn tail, truncated), or complete damaged batches (kept as a hole). A read
  bounds it by the next index entry or the segment's end (:meth:`SegmentScanner.bounded`).
- A whole, valid batch past ``expected`` leaves a *gap*: a hole of no bytes, its
  offsets held by no batch (indexes are checked at open, so it is not an index
  pointing somewhere wrong). One before ``expected`` repeats offsets: at a position
  an index gave, CorruptRecordError (nothing after it is trusted); in a scan of
  the file in order (:meth:`SegmentScanner.recovery_step`), damage.

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
from . import codec, framing
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
        if msg.header.base_offset > expected:
            return self._gap(position, expected, msg.header.base_offset)
        if msg.header.base_offset != expected:
            raise CorruptRecordError(
                f"segment {self.path.name}: batch at byte {position} starts at offset "
                f"{msg.header.base_offset}, expected {expected}; if its .index is damaged, delete "
                "the segment's .index and .timeindex files and reopen to rebuild them")
        return msg

    def recovery_step(self, view: pa.Buffer, position: int, expected: int, limit: int) -> codec.Message | Hole:
        """For a scan of the file in order (recovery): like :meth:`batch_at`, but a valid batch
        before ``expected`` (it repeats offsets already found) is damage, not an index error."""
        try:
            return self.batch_at(view, position, expected, limit)
        except CorruptRecordError:
            return self._find_hole(view, position, expected, limit)

    def _gap(self, position: int, expected: int, base_offset: int) -> Hole:
        """Offsets ``expected .. base_offset - 1`` held by no batch: the valid batch at ``position``
        starts past them. A hole of no bytes (never cached: the next lookup expects ``base_offset``;
        recovery logs it)."""
        return Hole(position, 0, expected, base_offset)

    def _find_hole(self, view: pa.Buffer, position: int, expected: int, limit: int) -> Hole:
        """The damage at ``position``: up to the next valid batch, found by scanning forward
        (framing.candidate_starts), whatever the damaged bytes say about their own length."""
        nxt = self.next_valid(view, position, expected, limit)
        if nxt is None:
            return Hole(position, limit - position, expected, None)
        hole = Hole(position, nxt.position - position, expected, nxt.header.base_offset)
        self.holes[position] = hole
        if hole.next_offset > hole.first_offset:
            log.error("segment %s: offsets %d..%d (bytes %d..%d) failed their checksum; kept in "
                      "place, reads of them raise CorruptRecordError", self.path, hole.first_offset,
                      hole.next_offset - 1, position, nxt.position - 1)
        else:
            log.warning("segment %s: bytes %d..%d hold no whole batch (a failed write?); skipped",
                        self.path, position, nxt.position - 1)
        return hole

    def next_valid(self, view: pa.Buffer, position: int, expected: int, limit: int) -> codec.Message | None:
        """The first whole batch starting after byte ``position`` (and ending by ``limit``) that
        passes its CRC and whose first offset is possible there: at least ``expected``, and at
        most one offset more per MIN_RECORD_BYTES of damaged bytes before it."""
        for start in framing.candidate_starts(view, position, limit):
            most = expected + (start - position) // framing.MIN_RECORD_BYTES
            msg = self.valid_at(view, start, expected, most, limit)
            if msg is not None:
                return msg
        return None

    def valid_at(self, view: pa.Buffer, position: int, first: int, last: int, limit: int) -> codec.Message | None:
        """The batch at ``position`` if it is whole, passes its CRC and starts at an offset in
        ``first..last``."""
        try:
            msg = codec.read_message_at(view, position)
            if position + msg.size > limit or not first <= msg.header.base_offset <= last:
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
        keys, positions = self.offset_index.pair  # taken once: a release() replaces it whole
        i = bisect_right(positions, hole.position)
        if i < len(keys):
            return Hole(hole.position, positions[i] - hole.position, hole.first_offset, keys[i])
        return Hole(hole.position, limit - hole.position, hole.first_offset, next_offset)

    def hole_error(self, hole: Hole) -> CorruptRecordError:
        if hole.size == 0:
            return CorruptRecordError(
                f"offsets {hole.first_offset}..{hole.next_offset - 1} of {self.path} are missing (no stored "
                f"batch holds them, at byte {hole.position}); seek to {hole.next_offset} to read on")
        return CorruptRecordError(
            f"offsets {hole.first_offset}..{hole.next_offset - 1} of {self.path} failed their checksum "
            f"(bytes {hole.position}..{hole.position + hole.size - 1} are damaged on disk; they are "
            f"never served); seek to {hole.next_offset} to read on",
            first_offset=hole.first_offset, next_offset=hole.next_offset,
        )
