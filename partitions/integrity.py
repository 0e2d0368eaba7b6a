"""What a segment knows about its own bytes: which batches passed their CRC, and where the holes are.

Nothing is stored on disk: both are rebuilt from the file after every open, so the
invariant "no batch is served unless its CRC was checked since the file was opened"
holds whatever happened to the file while rayka was not running.

- :class:`VerifiedRanges` holds the byte ranges ``[start, end)`` of a segment file
  whose batches passed their CRC: appended by us, scanned by recovery, or checked on
  their first read. Ranges are sorted, disjoint and merged when they touch, so a
  consumer reading a segment front to back, and the appends of the active segment,
  keep it at one range; a lookup is one binary search.
- :class:`Hole` is a run of damaged bytes kept in place (scan.py has the policy):
  one or more batches whose framing, header or CRC fails, or the leftover of a
  failed write, followed by a whole, valid batch (or, at the end of the active
  segment, whole damaged batches: recovery.py). Its offsets are
  ``first_offset .. next_offset - 1`` (the valid batch after it says where it ends;
  none for a leftover), and reads of them raise CorruptRecordError. A hole of no
  bytes is a gap: offsets missing between two valid batches.

Thread-safe: the appender and any number of readers add and look up ranges
concurrently (a lock keeps the two parallel lists consistent; it is uncontended
in the common case and costs well under a microsecond).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from dataclasses import dataclass

__all__ = ["VerifiedRanges", "Hole"]


class VerifiedRanges:
    """Sorted, disjoint, merged byte ranges ``[start, end)`` whose batches passed their CRC."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._starts)

    def covers(self, start: int, end: int) -> bool:
        """True if every byte of ``[start, end)`` lies in one verified range."""
        with self._lock:
            i = bisect_right(self._starts, start) - 1
            return i >= 0 and self._ends[i] >= end

    def add(self, start: int, end: int) -> None:
        """Mark ``[start, end)`` verified, merging it with the ranges it touches."""
        with self._lock:
            if self._ends and self._ends[-1] == start:  # appends and front-to-back reads
                self._ends[-1] = end
                return
            lo = bisect_right(self._starts, start)
            if lo and self._ends[lo - 1] >= start:
                lo -= 1
                start = self._starts[lo]
            hi = lo
            while hi < len(self._starts) and self._starts[hi] <= end:
                end = max(end, self._ends[hi])
                hi += 1
            self._starts[lo:hi] = [start]
            self._ends[lo:hi] = [end]

    def clear(self) -> None:
        with self._lock:
            self._starts, self._ends = [], []

    def ranges(self) -> list[tuple[int, int]]:
        with self._lock:
            return list(zip(self._starts, self._ends))


@dataclass(frozen=True, slots=True)
class Hole:
    """Damaged batches at ``position`` (``size`` bytes); ``next_offset`` None: nothing valid follows."""

    position: int
    size: int
    first_offset: int
    next_offset: int | None

    @property
    def bounded(self) -> bool:
        """A whole, valid batch follows, so the offsets the hole covers are known."""
        return self.next_offset is not None
