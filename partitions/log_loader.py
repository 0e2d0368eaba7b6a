"""Opening a partition directory: load its segments, recover what needs it, rebuild producer state.

Files read (the layout is in log.py)::

    <base>.arrows / .index / .timeindex   every segment, in offset order
    producer_state.json                   idempotence snapshot, complete below its upto_offset
    .clean_shutdown                       present only after a clean close; removed here

What is checked, by shutdown kind:

- unclean (no marker): the active segment is recovered, every batch CRC-checked,
  damage kept as holes, a torn tail (a write cut short) truncated (recovery.py);
- clean: the active segment's batches after its last index entry are CRC-checked;
  if that finds damage, the segment is recovered with no torn tail at all (a clean
  close leaves none): the damage is a hole up to the log end the close recorded in
  ``producer_state.json``;
- sealed segments, either way: only their indexes and the batches after the last
  entry are read, not checked (they were fsynced when they rolled, or, under the
  interval policy, by the tick after, within ``flush.ms``), unless those batches do
  not end at the next segment's base offset: then they are CRC-checked, and damage
  sends the segment to recovery. Their other batches are checked on first read, and
  a sealed segment that lost its end leaves a gap up to the next base (listed in
  ``damaged_offsets``);
- every segment, either way: its indexes are checked against the file and rebuilt
  when they fail (index_check.py), its schema message repaired if damaged.

Files that cannot be opened at all (a segment of another log, an unreadable
file) raise LogOpenError naming the directory, the segment, the cause and what
to do; the partition actor then stays up answering every call with it.

Producer state is the snapshot plus the ``pid``/``seq`` of every batch from the
snapshot's ``upto_offset`` on, and every header used is CRC-checked: either
loading the segment checked it (``RecoveryReport.checked_from``), or it is
checked here (``LogSegment.checked_headers``, from the index entry before
``upto_offset``). A batch that fails is a hole: its ids count for nothing, and its
offsets are reported in ``damaged_offsets``. Cost: none in the common cases (a
clean close snapshots the whole log; after a crash the snapshot reaches the active
segment, which recovery checked); only a missing or stale snapshot makes the
loader check the sealed batches past it, once each.

A segment that ends before the next one begins (a damaged sealed segment) leaves
a gap that is logged; the later segments stay. A directory with no segment gets
an empty one at offset 0.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path

from ..config import TopicConfig
from ..errors import LogOpenError, LogWriteError
from .dir_lock import DirLock
from .producer_state import PRODUCER_EXPIRY_MS, ProducerStateTable
from .schema_versions import SchemaSet
from .segment import SEGMENT_SUFFIX, LogSegment, RecoveryReport, segment_name

__all__ = ["LoadedLog", "load_log", "lock_and_load", "CLEAN_SHUTDOWN", "PRODUCER_SNAPSHOT",
           "PRODUCER_EXPIRY_MS"]

log = logging.getLogger(__name__)

CLEAN_SHUTDOWN = ".clean_shutdown"
PRODUCER_SNAPSHOT = "producer_state.json"


@dataclass
class LoadedLog:
    """The segments of an opened directory (at least one; the last is active) and what was found."""

    segments: list[LogSegment]
    producers: ProducerStateTable
    recovered_batches: int = 0
    truncated_bytes: int = 0
    damaged_offsets: list[tuple[int, int]] = field(default_factory=list)  # (first, last) of each hole


_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def lock_and_load(directory: Path, schemas: SchemaSet, config: TopicConfig, now_ms: int) -> tuple[DirLock, LoadedLog]:
    """Create ``directory`` if needed, take its lock (LogDirLockedError if another log holds it)
    and :func:`load_log` it; the lock is released again if that raises. Opening writes too (a
    new segment, rebuilt indexes): a full disk raises DiskFullError, as for an append."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirLock(directory)
    lock.acquire()
    try:
        return lock, load_log(directory, schemas, config, now_ms)
    except OSError as exc:
        lock.release()
        if exc.errno not in _DISK_FULL:
            raise
        raise LogWriteError.from_os_error(exc, directory, f"opening partition log {directory}") from exc
    except BaseException:
        lock.release()
        raise


def load_log(directory: Path, schemas: SchemaSet, config: TopicConfig, now_ms: int) -> LoadedLog:
    """Open every segment of ``directory`` and rebuild producer state; remove the clean marker.

    Raises LogOpenError (naming the directory, the file, the cause and what to do) when the
    files cannot be opened; nothing is changed on disk then beyond repairs already made.
    """
    try:
        return _load(directory, schemas, config, now_ms)
    except LogOpenError:
        raise
    except OSError as exc:
        if exc.errno in _DISK_FULL:  # not damage: PartitionLog reports it as DiskFullError
            raise
        raise _open_error(directory, None, exc) from exc
    except Exception as exc:  # noqa: BLE001 - whatever the files hold, the caller gets one clear error
        raise _open_error(directory, None, exc) from exc


def _open_error(directory: Path, segment: str | None, exc: BaseException) -> LogOpenError:
    cause = f"{type(exc).__name__}: {exc}"
    where = f" (segment {segment})" if segment else ""
    return LogOpenError(
        f"partition log {directory} cannot be opened{where}: {cause}. Move the damaged file aside "
        "(or restore it from a backup); the partition actor then opens the log on the next call made "
        "to it (it tries again when a call arrives, at most once every few seconds), no restart needed",
        directory=str(directory), cause=cause)


def _load(directory: Path, schemas: SchemaSet, config: TopicConfig, now_ms: int) -> LoadedLog:
    marker = directory / CLEAN_SHUTDOWN
    clean = marker.exists()
    bases = sorted(int(p.stem) for p in directory.glob("*" + SEGMENT_SUFFIX) if p.stem.isdigit())
    loaded = LoadedLog([], ProducerStateTable(PRODUCER_EXPIRY_MS))
    reports: dict[int, RecoveryReport] = {}
    # A clean close wrote the producer snapshot up to the log end just before the marker: where
    # damage at the end of the active segment ends (-1: unreadable, then bounded by framing).
    clean_end = None
    if clean:
        upto = ProducerStateTable.read_snapshot(directory / PRODUCER_SNAPSHOT, PRODUCER_EXPIRY_MS)[1]
        clean_end = upto if upto >= 0 else None
    for i, base in enumerate(bases):
        active = i == len(bases) - 1
        try:
            path = directory / (segment_name(base) + SEGMENT_SUFFIX)
            seg, report = LogSegment.load(directory, base, schemas.for_file(path), config.index_interval_bytes,
                                          recover=active and not clean, active=active, clean=clean,
                                          clean_end=clean_end if active else None,
                                          next_base=None if active else bases[i + 1])
        except Exception as exc:  # noqa: BLE001 - named with its segment, see load_log
            raise _open_error(directory, segment_name(base) + SEGMENT_SUFFIX, exc) from exc
        if loaded.segments and loaded.segments[-1].next_offset != base:
            # A damaged sealed segment ends early. The segments after it hold acknowledged
            # records, so they stay; reads of the hole raise CorruptRecordError.
            prev = loaded.segments[-1]
            log.error("partition %s: offsets %d..%d are unreadable (damaged segment %d)",
                      directory, prev.next_offset, base - 1, prev.base_offset)
        loaded.truncated_bytes += report.truncated_bytes
        loaded.recovered_batches += report.batches
        loaded.damaged_offsets += [(h.first_offset, h.next_offset - 1) for h in report.holes]
        if loaded.segments and loaded.segments[-1].next_offset < base:
            loaded.damaged_offsets.append((loaded.segments[-1].next_offset, base - 1))
        reports[base] = report
        loaded.segments.append(seg)
    if not loaded.segments:
        loaded.segments.append(LogSegment.create(directory, 0, schemas.message(schemas.latest),
                                                 config.index_interval_bytes, now_ms))
    _load_producer_state(directory, loaded, reports)
    marker.unlink(missing_ok=True)
    if loaded.truncated_bytes:
        log.warning("partition %s: recovery truncated %d bytes", directory, loaded.truncated_bytes)
    return loaded


def _load_producer_state(directory: Path, loaded: LoadedLog, reports: dict[int, RecoveryReport]) -> None:
    """The snapshot, then the CRC-checked headers of every batch from its ``upto_offset`` on."""
    table, upto = ProducerStateTable.read_snapshot(directory / PRODUCER_SNAPSHOT, PRODUCER_EXPIRY_MS)
    for seg in loaded.segments:
        if seg.next_offset <= upto:
            continue
        start = max(upto, seg.base_offset)
        report = reports.get(seg.base_offset)
        if report is not None and report.checked_from is not None and report.checked_from <= start:
            headers = report.headers  # checked while loading
        else:
            headers, holes = seg.checked_headers(start)
            loaded.damaged_offsets += [(h.first_offset, h.next_offset - 1) for h in holes
                                       if h.next_offset > h.first_offset]
        for header in headers:
            if header.base_offset >= upto:
                table.update_from_header(header)
    table.truncate(loaded.segments[-1].next_offset)
    loaded.producers = table
