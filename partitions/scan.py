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
  the file in order (a rescan: :meth:`SegmentScanner.walk`), damage.

:meth:`SegmentScanner.walk` is the one way through a segment's batches, for reads, time
lookups, the producer-state scan and recovery alike: from a byte position (an index
entry's, :meth:`SegmentScanner.batches_from`, or the first batch's) it yields each batch
and hole in file order, each batch CRC-checked, each hole bounded.

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
from typing import Iterator

import pyarrow as pa

from ..errors import CorruptRecordError
from . import codec, framing
from .index import SegmentIndex
from .integrity import Hole, VerifiedRanges
from .segment_file import SegmentFile

__all__ = ["SegmentScanner"]

log = logging.getLogger(__name__)


class SegmentScanner:
    """What one segment file's bytes are known to be: CRC-checked ranges and bounded holes."""

    def __init__(self, file: SegmentFile, index: SegmentIndex):
        self.path = file.path
        self._file = file
        self._index = index
        self.verified = VerifiedRanges()
        self.holes: dict[int, Hole] = {}  # bounded holes found so far, by byte position

    def clear(self) -> None:
        """Forget everything (the file is being rescanned or deleted)."""
        self.verified.clear()
        self.holes.clear()

    def passed(self, start: int, end: int) -> None:
        """The batches in bytes ``[start, end)`` passed their CRC (written by us, or checked)."""
        self.verified.add(start, end)

    def keep(self, hole: Hole) -> None:
        """Remember a bounded hole found otherwise than by a lookup (recovery.py)."""
        self.holes[hole.position] = hole

    def batches_from(self, view: pa.Buffer, offset: int, limit: int, end_offset: int) -> Iterator[codec.Message | Hole]:
        """:meth:`walk` from the index entry at or before ``offset`` (the segment's first batch
        if none): what holds ``offset`` and everything after it, below byte ``limit``."""
        entry = self._index.floor(offset)
        position, expected = (entry[1], entry[0]) if entry else (self._file.schema_size, self._file.base_offset)
        return self.walk(view, position, expected, limit, end_offset=end_offset)

    def walk(self, view: pa.Buffer, position: int, expected: int, limit: int, *, end_offset: int | None = None,
             rescan: bool = False) -> Iterator[codec.Message | Hole]:
        """The batches and holes from byte ``position`` (where a batch starting at offset
        ``expected`` must be) up to byte ``limit``, in file order, found by :meth:`batch_at`:
        every batch CRC-checked, every hole bounded (:meth:`bounded`, by the next index entry or
        by ``limit`` and ``end_offset``, the segment's next offset), so the offsets go on without
        a break. Raises CorruptRecordError where a batch is out of sequence (a damaged index).

        ``rescan``: a scan of the whole file in order, from its first batch (recovery.py). A
        batch out of sequence is then damage (:meth:`recovery_step`), and a hole with no valid
        batch after it is yielded unbounded, as found, and ends the walk: what it is, the caller
        decides.
        """
        if end_offset is None and not rescan:
            raise ValueError("a walk that bounds holes needs the segment's end_offset")
        step_at = self.recovery_step if rescan else self.batch_at
        while position < limit:
            step = step_at(view, position, expected, limit)
            if isinstance(step, Hole):
                if not step.bounded:
                    if rescan:
                        yield step
                        return
                    step = self.bounded(step, limit, end_offset)
                expected = step.next_offset
            else:
                expected = step.header.next_offset
            yield step
            position += step.size

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
        keys, positions = self._index.offsets.pair  # taken once: a release() replaces it whole
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
