"""Sparse offset and time indexes of a segment.

On disk each index is a flat array of little-endian int64 pairs (16 bytes an entry):

- ``<base>.index``      (offset, position): a batch whose first offset is ``offset``
  starts at byte ``position`` of the segment file.
- ``<base>.timeindex``  (timestamp_ms, offset): every record of the segment before
  ``offset`` has a timestamp below ``timestamp_ms`` (it is the running maximum,
  exclusive), so a search for the first record at or after a time starts at the
  last entry whose timestamp is below it.

Entries are added at the same points, one per ``index.interval.bytes`` of log
(and always for a segment's first batch), so a lookup costs a binary search and
a scan of at most one interval. Both columns strictly increase (offsets) or never
decrease (timestamps). An index is derived data: after an unclean shutdown the
active segment's index is rebuilt from the log, and an index that fails its
sanity check is rebuilt too.

Threads: the owning segment serialises writers. Readers may run beside a writer and
beside :meth:`PairIndex.drop`: the two columns are held as one ``(keys, values)``
pair that is replaced in a single assignment (load, clear, drop), and a lookup takes
the pair once (:attr:`PairIndex.pair`), so it never mixes the columns of two versions.
Appends grow the current pair in place, keys first, so a lookup for an offset already
readable never sees an entry whose value is missing.
"""

from __future__ import annotations

import os
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path

__all__ = ["PairIndex", "OffsetIndex", "TimeIndex", "MIN_TIMESTAMP"]

MIN_TIMESTAMP = -(2**63)
_ENTRY = 16


class PairIndex:
    """An append-only file of (a, b) int64 pairs, sorted by ``a``, mirrored in memory."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.pair: tuple[array, array] = (array("q"), array("q"))  # (keys, values), replaced whole
        self._written = 0  # entries already in the file

    @property
    def keys(self) -> array:
        return self.pair[0]

    @property
    def values(self) -> array:
        return self.pair[1]

    def __len__(self) -> int:
        return len(self.pair[0])

    def append(self, key: int, value: int) -> None:
        keys, values = self.pair
        if keys and key < keys[-1]:
            raise AssertionError(f"index {self.path.name}: key {key} below last {keys[-1]}")
        keys.append(key)
        values.append(value)

    def floor(self, key: int) -> tuple[int, int] | None:
        """The last entry whose key is <= ``key``, or None."""
        keys, values = self.pair
        i = bisect_right(keys, key) - 1
        return (keys[i], values[i]) if i >= 0 else None

    def below(self, key: int) -> tuple[int, int] | None:
        """The last entry whose key is < ``key``, or None."""
        keys, values = self.pair
        i = bisect_left(keys, key) - 1
        return (keys[i], values[i]) if i >= 0 else None

    def drop(self) -> None:
        """Forget the entries in memory (the file stays; :meth:`load` brings them back)."""
        self.pair = (array("q"), array("q"))

    def clear(self) -> None:
        self.pair = (array("q"), array("q"))
        self._written = 0
        with open(self.path, "wb"):
            pass

    def flush(self, fsync: bool = False) -> None:
        """Append the entries not yet in the file.

        All or nothing: on an OSError (a full disk) the file is cut back to its whole entries
        (``_written``) and the entries stay pending; a cut that failed too is redone first.
        """
        keys, values = self.pair
        n = len(keys)
        if self._written == n and not fsync:
            return
        pairs = array("q")
        for i in range(self._written, n):
            pairs.append(keys[i])
            pairs.append(values[i])
        good = self._written * _ENTRY
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size != good:
                os.ftruncate(fd, good)
            view = memoryview(pairs.tobytes())
            try:
                while view:
                    view = view[os.write(fd, view):]
                if fsync:
                    os.fsync(fd)
            except OSError:
                try:
                    os.ftruncate(fd, good)
                except OSError:
                    pass  # the fstat above repairs it next time
                raise
        finally:
            os.close(fd)
        self._written = n

    def fsync(self) -> None:
        """fsync the index file (entries already written by flush())."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def load(self) -> bool:
        """Read the file; False (and empty) if it is missing, torn or unsorted."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return False
        if len(data) % _ENTRY:
            return False
        pairs = array("q")
        pairs.frombytes(data)
        keys, values = pairs[0::2], pairs[1::2]
        if any(keys[i] > keys[i + 1] for i in range(len(keys) - 1)):
            return False
        self.pair, self._written = (keys, values), len(keys)
        return True


class OffsetIndex(PairIndex):
    """``<base>.index``: (first offset of a batch, byte position of the batch)."""


class TimeIndex(PairIndex):
    """``<base>.timeindex``: (max timestamp of the records before offset, offset)."""
