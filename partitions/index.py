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

:class:`SegmentIndex` is the pair one segment owns: it keeps the two in step, decides
where the next entry is due (the first batch, then one per ``index.interval.bytes``, and
always the batch after a hole), and unloads and reloads itself for an idle sealed
segment (:meth:`SegmentIndex.unload`); reloaded entries must be the ones checked at open.

Threads: the owning segment serialises writers. Readers may run beside a writer and
beside :meth:`PairIndex.drop`: the two columns are held as one ``(keys, values)``
pair that is replaced in a single assignment (load, clear, drop), and a lookup takes
the pair once (:attr:`PairIndex.pair`), so it never mixes the columns of two versions.
Appends grow the current pair in place, keys first, so a lookup for an offset already
readable never sees an entry whose value is missing.
"""

from __future__ import annotations

import logging
import os
import threading
import zlib
from array import array
from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Callable

from ..errors import CorruptRecordError

__all__ = ["PairIndex", "OffsetIndex", "TimeIndex", "SegmentIndex", "MIN_TIMESTAMP", "INDEX_SUFFIX",
           "TIMEINDEX_SUFFIX"]

log = logging.getLogger(__name__)

MIN_TIMESTAMP = -(2**63)
INDEX_SUFFIX = ".index"
TIMEINDEX_SUFFIX = ".timeindex"
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


class SegmentIndex:
    """The offset and time index of one segment, kept in step; when the next entry is due; and
    their unloading while the segment is idle.

    ``problem`` says why the entries now loaded cannot be trusted against the segment file (or
    None): a reload whose entries differ from the ones held at :meth:`unload` is checked with it.
    """

    def __init__(self, segment_path: Path, interval_bytes: int, problem: Callable[[], str | None]):
        self.segment_path = Path(segment_path)  # named in messages
        stem = self.segment_path.parent / self.segment_path.stem
        self.offsets = OffsetIndex(stem.with_name(stem.name + INDEX_SUFFIX))
        self.times = TimeIndex(stem.with_name(stem.name + TIMEINDEX_SUFFIX))
        self._interval = interval_bytes
        self._problem = problem
        self._since_entry = 0  # bytes of batches after the last entry
        self._loaded = True
        self._lock = threading.Lock()  # unload() and the reload of what it dropped
        self._digest: int | None = None  # of the entries checked at open or held at unload()

    def __len__(self) -> int:
        return len(self.offsets)

    @property
    def paths(self) -> tuple[Path, Path]:
        return self.offsets.path, self.times.path

    @property
    def loaded(self) -> bool:
        """False between :meth:`unload` and the next lookup."""
        return self._loaded

    # -- building -------------------------------------------------------------------------------

    def load(self) -> bool:
        """Read both files; False if either is missing, torn or unsorted, or they differ in length."""
        return self.offsets.load() and self.times.load() and len(self.offsets) == len(self.times)

    def clear(self) -> None:
        """Empty both, in memory and on disk (a new segment, or one being rescanned)."""
        self.offsets.clear()
        self.times.clear()
        self._since_entry = 0
        self._loaded = True

    def add_batch(self, base_offset: int, position: int, size: int, max_timestamp_before: int, *,
                  first: bool) -> None:
        """Account for the batch of ``size`` bytes at ``position``: an entry for it when it is the
        segment's ``first``, one interval of bytes after the last entry, or after a hole.
        ``max_timestamp_before`` is the running maximum of the records before it."""
        if first or self._since_entry >= self._interval:
            self.offsets.append(base_offset, position)
            self.times.append(max_timestamp_before, base_offset)
            self._since_entry = 0
        self._since_entry += size

    def add_hole(self) -> None:
        """A hole kept in place gets no entry (entries point only at valid batches, so they can be
        checked at open: index_check.py); the batch after it always gets one, so a lookup past
        the hole never has to step over it."""
        self._since_entry = self._interval

    def resume(self, bytes_after_last_entry: int) -> None:
        """Go on after the entries loaded from the files: so many bytes of batches follow the last."""
        self._since_entry = bytes_after_last_entry

    def checked(self) -> None:
        """The entries held now were checked against the segment file: a reload must find them."""
        self._digest = self._compute_digest()

    # -- lookups -------------------------------------------------------------------------------

    def floor(self, offset: int) -> tuple[int, int] | None:
        """(offset, position) of the last entry at or before ``offset``, or None; reloads the
        entries if they were unloaded (and again if an unload came between the two)."""
        self.ensure_loaded()
        entry = self.offsets.floor(offset)
        while entry is None and not self._loaded:
            self.ensure_loaded()
            entry = self.offsets.floor(offset)
        return entry

    def time_pair(self) -> tuple:
        """The time index's (timestamps, offsets), reloaded if needed; taken once, so a concurrent
        :meth:`unload` (which replaces it whole) cannot mix two versions."""
        self.ensure_loaded()
        return self.times.pair

    # -- memory --------------------------------------------------------------------------------

    def unload(self) -> None:
        """Drop the entries from memory (the files stay; the next lookup reloads them). Safe beside
        concurrent lookups: one that already took a pair keeps using it."""
        with self._lock:
            if self._loaded:
                self._digest = self._compute_digest()
            self._loaded = False
            self.offsets.drop()
            self.times.drop()

    def ensure_loaded(self) -> None:
        """Reload what :meth:`unload` dropped. The files must hold the entries held then (a sealed
        segment's index does not change), or pass ``problem``; else CorruptRecordError."""
        if self._loaded:
            return
        with self._lock:
            if self._loaded:  # another reader reloaded it meanwhile
                return
            if not self.load() or (self._compute_digest() != self._digest and self._problem() is not None):
                self.offsets.drop()
                self.times.drop()
                raise CorruptRecordError(
                    f"the index files of sealed segment {self.segment_path} changed on disk since the partition "
                    "opened; restart the partition (its indexes are then checked and rebuilt)")
            self._digest = self._compute_digest()
            self._loaded = True

    def _compute_digest(self) -> int:
        """A CRC of the in-memory entries, to tell a reloaded index from the one checked."""
        crc = 0
        for index in (self.offsets, self.times):
            keys, values = index.pair
            crc = zlib.crc32(values, zlib.crc32(keys, crc))
        return crc

    # -- files ---------------------------------------------------------------------------------

    def flush(self, fsync: bool) -> None:
        """Append the pending entries to both files (and fsync them). All or nothing per file
        (PairIndex.flush): on an OSError the entries stay pending for the next flush."""
        self.offsets.flush(fsync=fsync)
        self.times.flush(fsync=fsync)

    def flush_if_possible(self) -> bool:
        """Write and fsync the pending entries; on an OSError (a full disk) log it and leave them
        pending for the next flush, seal or close (index files are derived data: a missing entry
        costs a longer scan, and recovery rebuilds them). True if written."""
        try:
            self.flush(fsync=True)
            return True
        except OSError as exc:
            log.warning("segment %s: writing its indexes failed (%s); retried later", self.segment_path, exc)
            return False

    def fsync(self) -> None:
        self.offsets.fsync()
        self.times.fsync()

    def delete(self) -> None:
        for path in self.paths:
            path.unlink(missing_ok=True)
