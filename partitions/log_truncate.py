"""Cutting a partition log's tail (a follower's divergent records) or emptying it, on disk.

A follower whose log parts from its leader's (divergence.py) keeps its records below an
offset and drops the rest; a replica that must copy a leader whose log starts later
empties its log and starts it there. Both are rare, so they work on the files and let
the log open them again (log_loader.py) rather than edit its segments in memory:

1. the ``.clean_shutdown`` marker goes, so a crash from here on makes the next open
   recover (scan and check) the active segment;
2. a producer snapshot that covers offsets being cut goes (the loader rebuilds the
   state from the batch headers that remain);
3. segments wholly at or past the cut are deleted, newest first, so a crash leaves a
   contiguous prefix;
4. the segment holding the cut is rewritten up to the start of the batch holding the
   offset: a copy of its first bytes, fsynced, renamed over it (readers that mapped
   the old file keep reading the old inode: nothing is cut under them), the directory
   fsynced; its indexes go and are rebuilt when it opens.

Only whole batches are kept: an offset inside a batch cuts the whole batch (the
follower copies it again). After a crash at any point the log opens consistently: it
ends where the files end, at a batch boundary at or past the cut.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CorruptRecordError
from . import codec
from .atomic_file import fsync_directory as fsync_dir
from .log_loader import CLEAN_SHUTDOWN, PRODUCER_SNAPSHOT
from .producer_state import PRODUCER_EXPIRY_MS, ProducerStateTable
from .segment import LogSegment

__all__ = ["cut_tail", "empty_log"]


def cut_tail(directory: Path, segments: list[LogSegment], offset: int) -> int:
    """Cut the files of ``segments`` (the log's, oldest first) so the log ends at the start of the
    batch holding ``offset``; returns that new log end. The segments must not be used after."""
    _forget_clean_close(directory)
    keep = [s for s in segments if s.base_offset <= offset] or segments[:1]
    holding = keep[-1]
    position, new_end = _boundary(holding, offset)
    _drop_stale_snapshot(directory, new_end)
    for seg in reversed(segments[len(keep):]):
        seg.delete()
    if position <= holding.schema_size and len(keep) > 1:
        holding.delete()  # nothing of it stays: the segment before it ends the log
        return new_end
    path = holding.path
    holding.close_file()
    holding.index.delete()
    holding.drop_map()
    _rewrite_prefix(path, position)
    return new_end


def empty_log(directory: Path, segments: list[LogSegment], start_offset: int, schema_bytes: bytes,
              index_interval_bytes: int, now_ms: int) -> None:
    """Delete every segment and the producer snapshot, and start the log empty at ``start_offset``."""
    _forget_clean_close(directory)
    (directory / PRODUCER_SNAPSHOT).unlink(missing_ok=True)
    for seg in reversed(segments):
        seg.delete()
    LogSegment.create(directory, start_offset, schema_bytes, index_interval_bytes, now_ms).seal()
    fsync_dir(directory)


def _boundary(seg: LogSegment, offset: int) -> tuple[int, int]:
    """(byte position, offset) where the batch holding ``offset`` starts in ``seg`` (or where
    ``seg`` ends, if it holds no such batch). Damage stops the walk there: it is cut too."""
    if offset >= seg.next_offset:
        return seg.size, seg.next_offset
    view = seg.view(seg.size)
    position, at = seg.schema_size, seg.base_offset
    try:
        for msg in codec.iter_messages(view, seg.schema_size, seg.size):
            if msg.header.next_offset > offset:
                return msg.position, msg.header.base_offset
            position, at = msg.position + msg.size, msg.header.next_offset
    except CorruptRecordError:
        pass  # a damaged batch before the cut goes with the tail (a follower copies it again)
    return position, at


def _rewrite_prefix(path: Path, size: int) -> None:
    tmp = path.with_name(path.name + ".cut")
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        remaining = size
        while remaining:
            chunk = src.read(min(remaining, 8 << 20))
            if not chunk:
                break
            dst.write(chunk)
            remaining -= len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _forget_clean_close(directory: Path) -> None:
    marker = directory / CLEAN_SHUTDOWN
    if marker.exists():
        marker.unlink()
        fsync_dir(directory)


def _drop_stale_snapshot(directory: Path, new_end: int) -> None:
    path = directory / PRODUCER_SNAPSHOT
    _, upto = ProducerStateTable.read_snapshot(path, PRODUCER_EXPIRY_MS)  # -1: missing or unreadable
    if upto < 0 or upto > new_end:
        path.unlink(missing_ok=True)

