"""Projection and filters applied where the log is: a read that ships only the columns and rows asked for.

A pushed-down read (``PartitionActor.fetch(..., columns=, filter=)``) scans the stored
batches as a full read does (:meth:`PartitionLog.read`), then, batch by batch:

- decodes the message's metadata and wraps its body zero-copy (codec.decode over the
  memory map: no byte of a column is read until something reads that column);
- keeps the rows at or past the asked offset for which ``filter`` (a
  ``pyarrow.compute`` expression) is true, looking only at the columns the filter
  names, and then only the asked ``columns`` of them, with ``offset`` always first;
- encodes the kept rows of each stored batch as a **fresh message** with its own rayka
  header (no CRC: see Integrity), all of them back to back in one buffer written in one pass
  (codec.encode_batches; no concatenation first), their schema ``offset`` and the asked
  columns. A header's ``base`` is the first kept offset and ``count`` the rows kept:
  offsets inside it need not be consecutive (a filter drops rows), so a reader takes them
  from the ``offset`` column, never from the header; its ``maxts`` is the stored batch's
  (a bound). The buffer is a reused per-thread scratch in the actor (:func:`scratch`):
  fresh memory is slow to touch on these VMs (codec.EncodeBuffer), and Ray copies a
  method's answer out before that thread runs the next call.

So the column pages a read does not need are never read from disk, and the answer carries
only what was kept. ``next_offset`` is past every offset scanned, whether or not a row
matched, so a reader with a filter that matches nothing still moves on.

Integrity. A stored batch's CRC covers the whole message, all columns. A pushed-down
read keeps the log's rule that no row is served from a batch whose CRC has not passed
since the segment was opened: the scanner checks it (reading the whole message) the
first time a batch is read, by any read, and remembers it (scan.py, VerifiedRanges);
batches appended by this process, or already read once, are not checked again. So the
saving in bytes read is for batches already verified: every batch written since the
partition opened, and every batch read once since. A batch whose CRC fails answers the
same CorruptRecordError as a full read (or stops the read before it, when rows came
first). The fresh messages carry no CRC (digits ``--------``): no reader checks an
answer's CRC (consumers decode what the partition verified, as for a full read's whole
messages), computing one was half the time of a pushed-down read, and a message without one
never verifies, so it can never pass for stored data.

Bounds. ``max_records`` bounds the offsets scanned (so the rows kept too); ``max_bytes``
bounds the bytes shipped: the scan goes on in steps of ``max_bytes`` of stored messages
until the kept rows reach ``max_bytes``, ``max_records`` offsets were scanned, the log
(or ``upto``) ends, or :data:`SCAN_FACTOR` times ``max_bytes`` of stored messages were
scanned (one call stays bounded in time however little a filter keeps).

Counting (:class:`ReadCounters`): bytes *read* from segments are the bytes a read
touches (for a full read every byte it ships; for a pushed-down one each batch's
metadata and the buffers of the columns it decodes), bytes *shipped* the answer's size.
The once-per-open CRC check of a batch not verified yet (above) reads the whole message
and is not in these counts.
"""

from __future__ import annotations

import pickle
import threading
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, CorruptRecordError
from . import codec
from .version_read import project_columns

__all__ = ["Pushdown", "PushedRead", "ReadCounters", "pushed_read", "read_log", "cached", "scratch",
           "release_scratch", "SCAN_FACTOR", "OFFSET"]

OFFSET = "offset"
#: A pushed-down read scans at most this many times ``max_bytes`` of stored messages per call.
SCAN_FACTOR = 16


@dataclass(frozen=True, slots=True)
class Pushdown:
    """What a read keeps, checked against the log's schema: ``columns`` (the stored columns
    shipped, ``offset`` first), ``needed`` (those and the columns ``filter`` reads)."""

    columns: tuple[str, ...]
    filter: pc.Expression | None
    needed: tuple[str, ...]
    schema: pa.Schema  # of what is shipped

    @classmethod
    def of(cls, log_schema: pa.Schema, columns=None, filter=None) -> "Pushdown":
        """``columns`` (None: all) and ``filter`` (None: every row) checked against
        ``log_schema``: ConfigError naming what is wrong."""
        if filter is not None and not isinstance(filter, pc.Expression):
            raise ConfigError("filter= takes a pyarrow.compute expression such as pc.field('amount') > 10, "
                              f"not {type(filter).__name__}")
        names = log_schema.names
        if columns is None:
            asked = list(names)
        else:
            if isinstance(columns, str):
                columns = [columns]
            asked = list(columns)
            missing = [c for c in asked if c not in names]
            if missing:
                raise ConfigError(f"no column {missing[0]!r} in this topic; its columns are {names}")
        shipped = [OFFSET] + [c for c in dict.fromkeys(asked) if c != OFFSET]
        needed = shipped if filter is None else _filter_columns(log_schema, shipped, filter)
        return cls(tuple(shipped), filter, tuple(needed), pa.schema([log_schema.field(c) for c in shipped]))


def _filter_columns(schema: pa.Schema, shipped: list[str], flt: pc.Expression) -> list[str]:
    """``shipped`` and the columns ``flt`` reads (found by binding it to empty tables: pyarrow
    says which fields an expression names only by failing to bind a missing one)."""
    def binds(cols) -> bool:
        try:
            pa.table({c: pa.array([], schema.field(c).type) for c in cols}).filter(flt)
            return True
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, KeyError):
            return False

    if not binds(schema.names):
        try:
            schema.empty_table().filter(flt)
        except Exception as exc:  # noqa: BLE001 - pyarrow's own words say what is wrong
            raise ConfigError(f"filter {flt} does not apply to this topic (columns {schema.names}): {exc}") from None
    needed = list(schema.names)
    for c in schema.names:
        if c not in shipped:
            trial = [n for n in needed if n != c]
            if binds(trial):
                needed = trial
    return needed


_CACHE_LOCK = threading.Lock()
_CACHE: dict[tuple, Pushdown] = {}


def cached(log_schema: pa.Schema, columns, filter) -> Pushdown:
    """:meth:`Pushdown.of`, remembered for the last few (schema, columns, filter): a consumer
    sends the same ones with every fetch."""
    key = (log_schema.to_string(), None if columns is None else tuple([columns] if isinstance(columns, str)
           else columns), None if filter is None else pickle.dumps(filter))
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is None:
        hit = Pushdown.of(log_schema, columns, filter)
        with _CACHE_LOCK:
            if len(_CACHE) > 64:
                _CACHE.clear()
            _CACHE[key] = hit
    return hit


@dataclass(frozen=True, slots=True)
class PushedRead:
    """The answer of a pushed-down read: ``message`` (the kept rows as fresh messages back to
    back, one per stored batch that kept any, or None when none was kept), ``rows`` kept,
    ``next_offset`` past every offset scanned, and the bytes it read from segments and ships."""

    offset: int
    message: pa.Buffer | None
    rows: int
    next_offset: int
    bytes_read: int
    bytes_shipped: int
    log_start_offset: int = -1


def _column_bytes(column) -> int:
    return sum(b.size for b in column.buffers() if b is not None)


def pushed_read(read, offset: int, max_records: int, max_bytes: int, spec: Pushdown,
                log_schema: pa.Schema, scratch: codec.EncodeBuffer | None = None, *,
                schemas=None, reader_version: int | None = None) -> PushedRead:
    """The rows of ``spec`` from ``offset`` on. ``read(offset, max_records, max_bytes)`` is the
    log's full read (a ReadResult, bounded by what readers may see); its errors at ``offset``
    propagate, damage met later stops the read before it. With ``scratch`` (:func:`scratch`),
    the answer's buffer is valid only until the next read into it. ``log_schema`` is the
    stored schema of ``reader_version``; a read of batches of another version (``schemas``,
    the log's SchemaSet) is projected into it first (version_read.py)."""
    parts: list[tuple[pa.RecordBatch, int, int]] = []
    rows = scanned = touched = kept_bytes = stored = 0
    position, start_offset = offset, -1
    while scanned < max_records and kept_bytes < max_bytes and stored < SCAN_FACTOR * max_bytes:
        try:
            result = read(position, max_records - scanned, max_bytes)
        except CorruptRecordError:
            if position > offset:
                break  # serve what came before the damage; the next read reports it
            raise
        if start_offset < 0:
            start_offset = result.log_start_offset
        if not result.records:
            break
        stored += result.bytes
        for part, read_bytes, max_ts, append_ms in _needed_columns(result, position, spec, log_schema, schemas,
                                                                   reader_version):
            touched += read_bytes
            if spec.filter is not None:
                part = part.filter(spec.filter)
            if part.num_rows:
                part = part.select(spec.columns)
                parts.append((part, max_ts, append_ms))  # the stored batch's, a bound
                rows += part.num_rows
                kept_bytes += part.nbytes
        scanned += result.next_offset - position
        position = result.next_offset
    if not parts:
        return PushedRead(offset, None, 0, position, touched, 0, start_offset)
    # Nested columns sliced from a stored batch would ship their parent's buffers: trim them.
    # The answer's schema (spec.schema) carries no metadata: a stored version's tag must not
    # make the schema message the encoder writes longer than the one the receiver skips.
    parts = [(codec.trim_nested(b).replace_schema_metadata(None), ts, ms) for b, ts, ms in parts]
    # No CRC on the answer: no reader checks one (the stored CRC was checked), and computing it
    # was half the time of a pushed-down read.
    out = codec.encode_batches(parts, schema_size=_schema_size(spec.schema), scratch=scratch, checksum=False)
    return PushedRead(offset, out, rows, position, touched, out.size, start_offset)


def _needed_columns(result, position: int, spec: Pushdown, log_schema: pa.Schema, schemas, reader_version):
    """``(columns spec.needed of the records from position, bytes read, max_timestamp_ms, append_ms)``
    for each stored message of ``result`` that holds any: projected first when it is of another
    schema version than the reader's (version_read.project_columns)."""
    if schemas is not None and result.schema_version != reader_version:
        for part, max_ts, append_ms in project_columns(result, schemas, reader_version, list(spec.needed)):
            yield part, sum(_column_bytes(c) for c in part.columns), max_ts, append_ms
        return
    for buf in result.buffers:
        for msg in codec.iter_messages(buf):
            h = msg.header
            if h.next_offset <= position:
                continue
            if codec.is_compressed(msg):
                # Only the columns wanted are decompressed (the others' bytes are skipped).
                batch = codec.decode_fields(msg, log_schema, _schema_bytes(log_schema),
                                            [log_schema.get_field_index(c) for c in spec.needed])
            else:
                batch = codec.decode(msg, log_schema)
            read_bytes = 8 + len(msg.metadata) + sum(_column_bytes(batch.column(c)) for c in spec.needed)
            skip = max(position - h.base_offset, 0)
            part = batch.select(spec.needed)
            yield (part.slice(skip) if skip else part), read_bytes, h.max_timestamp_ms, h.append_ms


def read_log(plog, offset: int, max_records: int, max_bytes: int, columns=None, filter=None,
             upto: int | None = None) -> PushedRead:
    """:func:`pushed_read` of a PartitionLog ``plog`` (its ``read`` and ``schema``), up to ``upto``, in
    its latest schema version (batches of older ones projected)."""
    spec = cached(plog.schema, columns, filter)
    return pushed_read(lambda o, r, b: plog.read(o, max_records=r, max_bytes=b, upto=upto), offset, max_records,
                       max_bytes, spec, plog.schema, schemas=plog.schemas, reader_version=plog.schemas.latest)


_SCRATCH_LOCK = threading.Lock()
_SCRATCH: dict[int, codec.EncodeBuffer] = {}


def scratch() -> codec.EncodeBuffer:
    """This thread's reused encode buffer for pushed-down answers (each fetch thread has one)."""
    key = threading.get_ident()
    buf = _SCRATCH.get(key)
    if buf is None:
        with _SCRATCH_LOCK:
            buf = _SCRATCH[key] = codec.EncodeBuffer()
    return buf


def release_scratch() -> None:
    """Forget every thread's encode buffer (an idle partition gives its memory back); a read
    using one keeps it until it is done."""
    with _SCRATCH_LOCK:
        _SCRATCH.clear()


_SCHEMA_SIZES: dict[str, int] = {}
_SCHEMA_BYTES: dict[str, bytes] = {}


def _schema_bytes(schema: pa.Schema) -> bytes:
    key = schema.to_string()
    data = _SCHEMA_BYTES.get(key)
    if data is None:
        if len(_SCHEMA_BYTES) > 64:
            _SCHEMA_BYTES.clear()
        data = _SCHEMA_BYTES[key] = codec.schema_message(schema)
    return data


def _schema_size(schema: pa.Schema) -> int:
    key = schema.to_string()
    size = _SCHEMA_SIZES.get(key)
    if size is None:
        size = _SCHEMA_SIZES[key] = len(codec.schema_message(schema))
        if len(_SCHEMA_SIZES) > 64:
            _SCHEMA_SIZES.clear()
    return size


class ReadCounters:
    """Fetches, bytes read from segments and bytes shipped, for full and pushed-down reads
    (PartitionActor.stats reports them). ``+=`` under the GIL from several fetch threads may
    lose a count now and then: these are statistics, not accounting."""

    __slots__ = ("full_fetches", "full_read_bytes", "full_shipped_bytes", "pushdown_fetches",
                 "pushdown_read_bytes", "pushdown_shipped_bytes")

    def __init__(self) -> None:
        self.full_fetches = self.full_read_bytes = self.full_shipped_bytes = 0
        self.pushdown_fetches = self.pushdown_read_bytes = self.pushdown_shipped_bytes = 0

    def full(self, size: int) -> None:
        self.full_fetches += 1
        self.full_read_bytes += size
        self.full_shipped_bytes += size

    def pushed(self, answer: PushedRead) -> None:
        self.pushdown_fetches += 1
        self.pushdown_read_bytes += answer.bytes_read
        self.pushdown_shipped_bytes += answer.bytes_shipped

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}
