"""SegmentList: the segments of one partition directory, in offset order, the last one active.

Invariants: at least one segment; base offsets strictly increase; only the last
(active) segment is written; a roll seals it and starts the next at its next
offset; retention deletes only whole sealed segments, oldest first (retention.py
decides how many). A damaged sealed segment may end before the next one's base: the
list keeps both and the gap reads as damage (log_read.py).

Not thread-safe: :class:`PartitionLog` calls it under its lock; reads work on a
:meth:`SegmentList.snapshot`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..config import TopicConfig
from .atomic_file import fsync_directory
from .log_read import SegmentsSnapshot
from .retention import deletable_prefix
from .segment import LogSegment, write_all

__all__ = ["SegmentList"]

log = logging.getLogger(__name__)


class SegmentList:
    """The segments of a log (loaded by log_loader.py), and what changes them: rolls, retention,
    releasing idle ones."""

    def __init__(self, directory: Path, segments: list[LogSegment], index_interval_bytes: int):
        if not segments:
            raise ValueError("a log has at least one segment")
        self._directory = directory
        self._segments = segments
        self.bases = [s.base_offset for s in segments]
        self._interval = index_interval_bytes

    def __len__(self) -> int:
        return len(self._segments)

    def __getitem__(self, i):
        return self._segments[i]

    def __iter__(self):
        return iter(self._segments)

    @property
    def active(self) -> LogSegment:
        return self._segments[-1]

    @property
    def sealed(self) -> list[LogSegment]:
        return self._segments[:-1]

    @property
    def log_start_offset(self) -> int:
        return self._segments[0].base_offset

    @property
    def log_end_offset(self) -> int:
        return self._segments[-1].next_offset

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self._segments)

    def snapshot(self) -> SegmentsSnapshot:
        """What a read may see now (it then reads without the log's lock)."""
        return SegmentsSnapshot.of(self._segments, self.bases)

    def roll(self, now_ms: int, *, fsync: bool, schema_bytes: bytes | None = None) -> LogSegment:
        """Seal the active segment and start the next one; return the sealed one. The new one starts
        with ``schema_bytes`` (a new schema version: schema_versions.py), else with the active
        one's schema. ``fsync``: the
        sealed segment is fsynced first (else the caller sees to it). All or nothing: an OSError
        (the new file cannot be created or written, the old one's indexes cannot be written)
        leaves the active segment active."""
        active = self._segments[-1]
        active.flush(fsync=fsync)
        new = LogSegment.create(self._directory, active.next_offset, schema_bytes or active.file.schema_bytes,
                                self._interval, now_ms)
        active.seal(fsync=False)  # nothing left to write: only closes the file
        self._segments.append(new)
        self.bases.append(new.base_offset)
        return active

    def restart_active(self, schema_bytes: bytes, now_ms: int) -> None:
        """Replace the active segment, which must be empty, by an empty one that starts with
        ``schema_bytes`` (a batch of another schema version arrives at an empty segment; a roll
        would reuse its base offset, so its name). The new file is written and opened under a
        temp name, then renamed over the old one: an OSError before the rename leaves the old
        segment as it was; after it, only memory changes (the old segment held no batch)."""
        active = self._segments[-1]
        assert active.is_empty, "only an empty active segment is replaced"
        tmp = active.path.with_name(active.path.name + ".restart")
        fd = None
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
            write_all(fd, [schema_bytes])
            os.fsync(fd)
            os.replace(tmp, active.path)
        except BaseException:
            if fd is not None:
                os.close(fd)
            tmp.unlink(missing_ok=True)
            raise
        fsync_directory(self._directory)
        active.close_file()
        self._segments[-1] = LogSegment.adopt(self._directory, active.base_offset, schema_bytes, self._interval,
                                              fd, now_ms)

    def apply_retention(self, now_ms: int, config: TopicConfig) -> int:
        """Delete the oldest sealed segments past retention.ms or retention.bytes; how many."""
        deleted = deletable_prefix([s.size for s in self._segments],
                                   [s.max_timestamp_ms for s in self._segments], now_ms, config)
        for seg in self._segments[:deleted]:
            seg.delete()
        del self._segments[:deleted]
        del self.bases[:deleted]
        if deleted:
            log.info("partition %s: retention deleted %d segment(s); log start is now %d",
                     self._directory, deleted, self.log_start_offset)
        return deleted

    def release_idle(self, now_ms: int, idle_ms: int) -> None:
        """Unmap the sealed segments nobody read for ``idle_ms`` (reloaded on use)."""
        for seg in self._segments[:-1]:
            if seg.last_read_ms is not None and now_ms - seg.last_read_ms > idle_ms:
                seg.release()
                seg.last_read_ms = None

    def release_all(self) -> None:
        """Drop the maps and indexes of sealed segments, and the active one's map and tail cache."""
        for seg in self._segments[:-1]:
            seg.release()
            seg.last_read_ms = None
        self._segments[-1].drop_map()
        self._segments[-1].drop_tail_cache()

    def delete_all(self) -> None:
        for seg in self._segments:
            seg.delete()
