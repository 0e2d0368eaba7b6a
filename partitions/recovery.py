"""Opening a segment file: trust its indexes, or rescan it batch by batch; and CRC-checked headers.

Both ways of opening return a :class:`SegmentLoad`, a value saying where the file ends
and what its batches say, which :meth:`LogSegment.load` applies to itself; they work on
the segment's parts (its file, its index, its scanner) only through their own methods.

At open a segment is in one of two states, and the caller (LogSegment.load) says which:

- *Fast load* (:func:`load_fast`): a sealed segment, or the active one after a clean
  shutdown. The ``.index``/``.timeindex`` files are trusted if they pass
  index_check.py (in order, in bounds, every entry at the start of the batch it
  names); only the batches after the last index entry are read (to find the
  segment's end), and their CRCs are checked only for the active segment.
  Batches before that entry are checked on their first read (scan.py).
- *Recovery* (:func:`recover`): the active segment after an unclean shutdown, or any
  segment whose fast load found something off. Every batch is read and CRC-checked
  from the schema message on; both indexes are rebuilt from the batches kept;
  holes (scan.py) stay in place. At the end of the active segment, what has no
  valid batch after it is either a torn tail (a write cut short: truncated) or
  damaged batches (kept as a hole, their offsets reserved): the rule below.
  A sealed segment just ends before such damage (the next segment's base offset
  says where the gap ends).

A sealed segment ends at the next segment's base offset. Its fast load does not
CRC-check the batches after its last index entry, so their headers' counts are
unchecked: when they do not end exactly at the next base, the tail is CRC-checked,
and a batch that fails sends the segment to recovery, where it ends before the
damage and the gap up to the next base is the hole, exactly.

The end of the active segment (:func:`_end_active`)
---------------------------------------------------

The format decides it. A message is ``0xFFFFFFFF``, an int32 metadata length, the
metadata (a ``Message`` flatbuffer holding ``bodyLength``, the buffers of the batch
and the ``rayka.batch`` header text with base offset, count and CRC), then the body.
The CRC covers all of it but the first 8 bytes (codec.py). An append writes one
whole message at the end of the file, so a crash can leave only a *prefix* of it:
correct bytes, cut short (or zeros, where a power loss left the file longer than
the data that reached it). A torn tail can therefore only be bytes that start as a
message starts and are a correct prefix of one; damage is bytes a prefix cannot be.
From the byte after the last valid batch, each message is taken as damaged (part of
the hole) when the file shows its write completed:

(c) its CRC passes with the 8 uncovered bytes disregarded: the first header text
    after it names an offset where the hole's offsets can go on (from the hole's
    first offset to its bound so far), and the metadata and body, placed by the
    flatbuffer's ``bodyLength`` against an end that is the file's end or a
    possible batch start, pass that header's CRC (a damaged length word or
    continuation marker; the header's count is then exact);
(a) or its length word and ``bodyLength`` declare an extent the file holds (a whole
    message whose CRC fails);
(b) or the file holds the whole metadata its length word declares and that metadata
    is malformed (root or vtable unreadable, not a record batch, no whole header,
    ``bodyLength`` not the padded end of its buffers): a prefix is correct bytes,
    so whole metadata that is malformed was damaged after it was written;

and what is left after them is damage too, to the end of the file, when

(d) its first bytes are neither the continuation marker (or its start) nor zeros:
    no write starts that way;

otherwise it is a torn tail: truncated, its offsets (never acknowledged: the append
had not returned) given to the next records. A hole's offsets start at the
segment's next offset and end at a bound: exact for (c), else the largest count or
RecordBatch length its bytes name that they could hold (framing.row_count_bound),
so a hole never reserves fewer offsets than it held, and possibly a few more.

After a clean close (``clean``: the ``.clean_shutdown`` marker) nothing can be torn:
everything after the last valid batch is the hole, and it ends at the log end the
close recorded in the producer snapshot (``clean_end``) when that is known.

Limits: damage that turns a message's first bytes into zeros and garbles its
flatbuffer root too looks like a power loss's zeros and is cut; so is damage that
leaves a correct-looking prefix of a message the file does not hold whole. Both need
two faults in the same message's first bytes.

On disk: the file must start with this log's schema message, byte for byte. A
file too short to hold it is rewritten as just the schema (it held no batch); a
damaged schema message followed by this log's batches is rewritten in place from
the topic's schema; a file starting with another schema is refused (it is not
this log's), which makes the log fail to open with LogOpenError (log_loader.py).

:class:`RecoveryReport` (in the load) says what was found. ``headers[i]`` for batches at or
after ``checked_from`` passed their CRC during the load; ``checked_from`` is None
when none was checked. :func:`checked_headers` gives the CRC-checked headers of a
loaded segment from any offset on (to rebuild producer state without trusting a
header whose batch was never checked).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import pyarrow as pa

from ..errors import CorruptRecordError
from . import codec, framing
from .index import MIN_TIMESTAMP, SegmentIndex
from .index_check import index_problem
from .integrity import Hole
from .scan import SegmentScanner
from .segment_file import SegmentFile

__all__ = ["RecoveryReport", "SegmentLoad", "load_fast", "recover", "checked_headers"]

log = logging.getLogger(__name__)


@dataclass
class RecoveryReport:
    """What loading one segment found."""

    batches: int = 0
    truncated_bytes: int = 0
    headers: list = field(default_factory=list)  # BatchHeader of every batch read, in order
    holes: list = field(default_factory=list)  # Hole of every damaged run kept in place
    checked_from: int | None = None  # headers of batches from this offset on passed their CRC
    repaired_schema: bool = False  # the schema message was damaged and rewritten


@dataclass(frozen=True, slots=True)
class SegmentLoad:
    """Where an opened segment file ends and what its batches say, for LogSegment.load to apply.
    Its index is loaded (or rebuilt) by then, and its scanner knows the holes found."""

    report: RecoveryReport
    size: int  # bytes of the whole messages and holes kept, from the start of the file
    next_offset: int
    max_timestamp_ms: int
    first_append_ms: int | None
    last_append_ms: int | None
    verified: tuple[int, int] | None = None  # [start, end): bytes whose batches a fast load CRC-checked


def load_fast(file: SegmentFile, index: SegmentIndex, verify: bool = True,
              next_base: int | None = None) -> SegmentLoad | None:
    """Trust the indexes; scan only the tail after the last entry. None if anything is off.

    Batches before the last index entry are not read here: their CRCs are checked
    on their first read. ``verify`` checks the tail's CRCs (the active segment). A sealed
    segment's tail is not checked unless its headers disagree with ``next_base``, the next
    segment's base offset (where this one must end): its end would then come from a count
    nobody checked, so the tail is CRC-checked, and damage sends the segment to recovery.
    """
    if not index.load():
        return None
    file_size = file.path.stat().st_size
    if file_size < file.schema_size:
        return None
    offsets = index.offsets
    start = offsets.values[-1] if len(offsets) else file.schema_size
    report = RecoveryReport()
    last_append_ms = None
    try:
        view = file.view(file_size)
        if view.slice(0, file.schema_size).to_pybytes() != file.schema_bytes:
            return None
        problem = index_problem(index, file.base_offset, file.schema_size, view, file_size)
        if problem is not None:
            log.warning("segment %s: its indexes cannot be trusted (%s); rebuilding them from the "
                        "segment", file.path, problem)
            return None
        expected = offsets.keys[-1] if len(offsets) else file.base_offset
        if verify:
            report.checked_from = expected
        max_ts = index.times.keys[-1] if len(index.times) else MIN_TIMESTAMP
        for msg in codec.iter_messages(view, start, file_size):
            if verify:
                msg.verify()
            if msg.header.base_offset != expected:
                return None
            expected = msg.header.next_offset
            max_ts = max(max_ts, msg.header.max_timestamp_ms)
            report.headers.append(msg.header)
            last_append_ms = msg.header.append_ms
    except CorruptRecordError:
        return None
    if not verify and next_base is not None and expected != next_base:
        return load_fast(file, index, verify=True)  # the unchecked tail says otherwise: check it
    if next_base is not None and expected > next_base:
        log.error("sealed segment %s holds offsets up to %d, past the next segment's base %d (segments "
                  "overlap: files copied from another log?)", file.path.name, expected - 1, next_base)
    index.resume(file_size - start)
    index.checked()
    report.batches = len(report.headers)
    return SegmentLoad(report, file_size, expected, max_ts,
                       first_append_ms=_first_append_ms(file, view, expected, last_append_ms),
                       last_append_ms=last_append_ms,
                       verified=(start, file_size) if verify and start < file_size else None)


def recover(file: SegmentFile, index: SegmentIndex, scanner: SegmentScanner, truncate: bool = True, *,
            clean: bool = False, clean_end: int | None = None) -> SegmentLoad:
    """Scan and CRC-check every batch; rebuild both indexes; keep holes, cut a torn tail.

    A file too short to hold the schema is rewritten empty; a damaged schema message
    is rewritten from the topic's schema when the file holds this log's batches; a
    file of another schema is refused. With ``truncate=False`` (sealed segments)
    nothing is cut and no offset is guessed: the segment ends before damage that has
    no valid batch after it (the next segment's base says where the gap ends). With
    ``clean`` (the active segment after a clean close) nothing is cut either: all that
    follows the last valid batch is a hole, up to ``clean_end`` (the log end recorded at
    the close) when it is known. See the module docstring for the rule.
    """
    report = RecoveryReport(checked_from=file.base_offset)
    file_size = _ensure_schema(file, scanner, report)
    view = file.view(file_size)
    index.clear()
    scanner.clear()
    found = _Rescan(file, index)
    for step in scanner.walk(view, file.schema_size, file.base_offset, file_size, rescan=True):
        if isinstance(step, Hole) and not step.bounded:
            if truncate or clean:
                _end_active(file, scanner, found, view, step.position, file_size, report, clean, clean_end)
            else:
                log.error("sealed segment %s: the %d bytes from byte %d (offsets from %d) are unreadable",
                          file.path.name, file_size - step.position, step.position, found.next_offset)
            break
        if isinstance(step, Hole):
            found.hole(step)
            if step.next_offset > step.first_offset:
                report.holes.append(step)
            if step.size == 0:
                log.error("segment %s: offsets %d..%d are missing before byte %d (no batch holds them); "
                          "reads of them raise CorruptRecordError", file.path, step.first_offset,
                          step.next_offset - 1, step.position)
        else:
            found.batch(step.header, step.position, step.size)
            report.headers.append(step.header)
    index.flush_if_possible()  # on a full disk, later (the log must open to serve reads)
    index.checked()
    report.batches = len(report.headers)
    return SegmentLoad(report, found.size, found.next_offset, found.max_timestamp_ms,
                       first_append_ms=report.headers[0].append_ms if report.headers else None,
                       last_append_ms=report.headers[-1].append_ms if report.headers else None)


class _Rescan:
    """How far a rescan has got, batch by batch and hole by hole, indexing as appends do."""

    def __init__(self, file: SegmentFile, index: SegmentIndex):
        self._index = index
        self._base_offset = file.base_offset
        self.size = file.schema_size
        self.next_offset = file.base_offset
        self.max_timestamp_ms = MIN_TIMESTAMP

    def batch(self, header: codec.BatchHeader, position: int, size: int) -> None:
        self._index.add_batch(header.base_offset, position, size, self.max_timestamp_ms,
                              first=self.next_offset == self._base_offset)
        self.size = position + size
        self.next_offset = header.next_offset
        self.max_timestamp_ms = max(self.max_timestamp_ms, header.max_timestamp_ms)

    def hole(self, hole: Hole) -> None:
        """A bounded hole kept in place: no index entry, its offsets reserved."""
        self._index.add_hole()
        self.size = hole.position + hole.size
        self.next_offset = hole.next_offset


def _end_active(file: SegmentFile, scanner: SegmentScanner, found: _Rescan, view: pa.Buffer, position: int,
                file_size: int, report: RecoveryReport, clean: bool, clean_end: int | None) -> None:
    """The end of the active segment from ``position`` on, where no valid batch follows: whole
    damaged messages are kept as one hole (their offsets reserved), and what is left after them
    is a torn tail (truncated) after a crash, or part of the hole after a clean close. The rule
    and why: the module docstring."""
    end, first, bound = position, found.next_offset, found.next_offset
    while end < file_size:
        size = framing.declared_size(view, end, file_size)
        if (checked := framing.checked_extent(view, end, file_size, first, bound)) is not None:
            size, header = checked  # (c) the prefix damaged, the rest passes its CRC: exact
            bound = max(bound, header.next_offset)
        elif size is not None and end + size <= file_size:
            bound += framing.row_count_bound(view, end, size)  # (a) framed whole, CRC failed
        elif (size := framing.malformed_extent(view, end, file_size)) is not None:
            bound += framing.row_count_bound(view, end, size)  # (b) whole metadata, malformed
        else:
            break
        end += size
    if end < file_size and (clean or not framing.could_be_torn(view, end, file_size)):
        # (d) a clean close leaves no write cut short, and no write starts with these bytes:
        # damage too, to the end of the file
        bound += framing.row_count_bound(view, end, file_size - end)
        end = file_size
    if clean and clean_end is not None and clean_end > first:
        bound = clean_end  # the log end recorded at the close: exact
    if end > position:
        hole = Hole(position, end - position, first, bound)
        found.hole(hole)
        scanner.keep(hole)
        report.holes.append(hole)
        log.error("segment %s: the bytes %d..%d (offsets %d..%d%s) are damaged whole batches; kept in "
                  "place, their offsets are never reused", file.path.name, position, end - 1,
                  hole.first_offset, hole.next_offset - 1, "" if clean and clean_end is not None else " at most")
    if end < file_size:
        log.warning("segment %s: torn tail from byte %d (offset %d); truncating %d bytes",
                    file.path.name, end, found.next_offset, file_size - end)
        report.truncated_bytes += file_size - end
        os.truncate(file.path, end)
        file.drop_map()


def checked_headers(scanner: SegmentScanner, view: pa.Buffer, from_offset: int, limit: int,
                    end_offset: int) -> tuple[list, list]:
    """(headers, holes): the header of every readable batch holding offsets from ``from_offset``
    on (below byte ``limit``; ``end_offset`` is the segment's next offset), each CRC-checked
    (now, or earlier since the file was opened), and the holes stepped over. Starts at the index
    entry before ``from_offset``, so batches before it cost at most one index interval; stops,
    logging why, where a damaged index breaks the sequence."""
    headers, holes = [], []
    try:
        for step in scanner.batches_from(view, from_offset, limit, end_offset):
            if isinstance(step, Hole):
                holes.append(step)
            else:
                headers.append(step.header)
    except CorruptRecordError as exc:
        log.error("segment %s: %s; producer state is rebuilt without the batches after it",
                  scanner.path.name, exc)
    return headers, holes


def _ensure_schema(file: SegmentFile, scanner: SegmentScanner, report: RecoveryReport) -> int:
    """The file's size after making sure it starts with this log's schema message."""
    file_size = file.path.stat().st_size
    if file_size < file.schema_size:
        log.warning("segment %s torn before its schema ended; rewriting it empty", file.path)
        with open(file.path, "wb") as f:
            f.write(file.schema_bytes)
        file.drop_map()
        report.truncated_bytes = file_size
        return file.schema_size
    view = file.view(file_size)
    if view.slice(0, file.schema_size).to_pybytes() == file.schema_bytes:
        return file_size
    if not _holds_this_logs_batches(file, scanner, view, file_size):
        raise CorruptRecordError(
            f"segment {file.path} does not start with this topic's schema and holds no batch of this "
            "log after it (a file of another log, or too damaged to tell)"
        )
    # Batches of this log (CRC-checked, at this segment's offsets, decoded by the topic's schema)
    # follow a damaged schema message: its bytes are the topic's, so write them back in place.
    log.warning("segment %s: its schema message is damaged; rewriting it from the topic's schema", file.path)
    fd = os.open(file.path, os.O_WRONLY)
    try:
        os.pwrite(fd, file.schema_bytes, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    file.drop_map()
    report.repaired_schema = True
    return file_size


def _holds_this_logs_batches(file: SegmentFile, scanner: SegmentScanner, view: pa.Buffer, file_size: int) -> bool:
    """Whether the first valid batch after the schema's place is this segment's: it starts at
    the segment's base offset (or a possible one after damage) and decodes with the topic's schema."""
    if file_size == file.schema_size:
        return True  # a lone schema message: nothing is lost by rewriting it
    msg = scanner.valid_at(view, file.schema_size, file.base_offset, file.base_offset, file_size)
    if msg is None:
        msg = scanner.next_valid(view, file.schema_size, file.base_offset, file_size)
    if msg is None:
        return False
    try:
        codec.decode(msg, file.schema)
    except CorruptRecordError:
        return False
    return True


def _first_append_ms(file: SegmentFile, view: pa.Buffer, next_offset: int, last_append_ms: int | None) -> int | None:
    if next_offset == file.base_offset:
        return None
    try:
        return codec.read_message_at(view, file.schema_size).header.append_ms
    except CorruptRecordError:  # a damaged first batch (a hole): its time is unknown
        return last_append_ms
