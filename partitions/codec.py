"""Encoding of record batches as Arrow IPC stream messages that carry a checksummed header.

A segment file is a plain Arrow IPC *stream*: one schema message, then one
record-batch message per appended batch (no end-of-stream marker, so the file
can be appended to; ``pyarrow.ipc.open_stream`` reads it to the end either way).

Every record-batch message carries one custom-metadata entry, key
``rayka.batch``, whose value is an ASCII header::

    rayka:v3;crc=1f2e3d4c;base=1200;count=500;maxts=1732480000000;append=1732480000123;pid=-;seq=-1;le=0

``le`` (format v3, what this version writes) is the leader epoch the batch was written in
(replication: every replica keeps a leader-epoch cache from it, epoch_cache.py); v1 and
v2 batches have none and read as epoch 0. ``crc`` (v2 and v3) is the CRC-32 (zlib) of the message's whole
metadata (the ``metadata length`` bytes after the 8-byte IPC prefix: the
flatbuffer with its array lengths, null counts and buffer offsets, the header
text among them) with the eight crc digits replaced by ``--------``, followed by
the message body (every buffer of the batch). So every byte of a message is
covered: the prefix by the framing checks, the rest by the CRC. It is written in
one pass: the message is serialised with the placeholder, the CRC computed, and
the eight digits patched into the serialised bytes in place (the header string
has a fixed width, so no offset in the flatbuffer moves). A reader recomputes the
same CRC; a torn or corrupt batch fails it and is never served.

A batch may be written with Arrow IPC buffer compression (lz4 or zstd, topic config
``compression.type``): the IPC format records the codec in each message, so one file may mix
codecs and plain ``pyarrow.ipc.open_stream`` reads them all. The header text lives in the
metadata, which is never compressed; the CRC covers the body as stored (compressed). A batch a
producer shipped compressed with the topic's codec is stored by ``reframe.encode_reusing``: the
same message, its producer-compressed buffers kept as they came.

v1 batches (older files; ``rayka:v1;crc=...``) covered the header text and the
body only, not the rest of the flatbuffer; they are still read and checked that way.
"""

from __future__ import annotations

import functools
import re
import zlib
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from ..errors import CorruptRecordError

__all__ = [
    "HEADER_KEY",
    "BatchHeader",
    "EncodedBatch",
    "Message",
    "schema_message",
    "encode_batch",
    "EncodeBuffer",
    "encode_slice",
    "encode_batches",
    "message_size_at",
    "read_message_at",
    "iter_messages",
    "decode",
    "find_header",
    "checksum_passes",
    "trim_nested",
    "write_options",
]

HEADER_KEY = "rayka.batch"
_PREFIXES = {1: b"rayka:v1;crc=", 2: b"rayka:v2;crc=", 3: b"rayka:v3;crc="}
_VERSION_MARK = b"rayka:v"
FORMAT_VERSION = 3  # what encode_batch writes
_PLACEHOLDER = b"--------"
_CONTINUATION = b"\xff\xff\xff\xff"


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """The fields of a stored batch's ``rayka.batch`` header."""

    crc: int
    base_offset: int
    count: int
    max_timestamp_ms: int
    append_ms: int
    producer_id: str | None
    sequence: int
    version: int = FORMAT_VERSION
    leader_epoch: int = 0

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.count - 1

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.count

    def text(self, crc_digits: bytes) -> bytes:
        text = b"%s%s;base=%d;count=%d;maxts=%d;append=%d;pid=%s;seq=%d" % (
            _PREFIXES[self.version],
            crc_digits,
            self.base_offset,
            self.count,
            self.max_timestamp_ms,
            self.append_ms,
            (self.producer_id or "-").encode(),
            self.sequence,
        )
        return text + b";le=%d" % self.leader_epoch if self.version >= 3 else text


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A record-batch message ready to be written: ``head`` (prefix and metadata) then ``body``.

    ``message`` is the same bytes in one buffer (``head`` is a copy of its first bytes).
    ``transient``: the bytes live in a reused :class:`EncodeBuffer`; keep no reference
    to them past writing them out.
    """

    head: bytes
    body: pa.Buffer
    header: BatchHeader
    message: pa.Buffer
    transient: bool = False

    @property
    def size(self) -> int:
        return len(self.head) + self.body.size


@dataclass(frozen=True, slots=True)
class Message:
    """One record-batch message found in a buffer: where it is and what its header says."""

    position: int
    size: int
    header: BatchHeader
    message: ipc.Message
    metadata: bytes  # the raw metadata bytes, as stored

    def verify(self) -> None:
        """Raise CorruptRecordError unless the CRC matches the stored bytes."""
        if self.header.crc < 0:
            raise CorruptRecordError(
                f"batch at byte {self.position} (offsets {self.header.base_offset}.."
                f"{self.header.last_offset}) carries no checksum: it is a read answer, never stored data")
        if _crc(self.header, self.metadata, self.message.body) != self.header.crc:
            raise CorruptRecordError(
                f"batch at byte {self.position} (offsets {self.header.base_offset}.."
                f"{self.header.last_offset}) failed its checksum"
            )


def schema_message(schema: pa.Schema) -> bytes:
    """The bytes of the schema message that opens every segment file."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema):
        pass
    data = sink.getvalue().to_pybytes()
    return data[:-8]  # drop the end-of-stream marker so batches can follow


@functools.lru_cache(maxsize=32)
def write_options(compression: str | None, level: int | None = None) -> ipc.IpcWriteOptions | None:
    """The IPC write options of topic config ``compression.type`` / ``compression.level``:
    None for "none" (or None), else buffer compression with that codec (``level`` None: its default)."""
    if compression in (None, "none"):
        return None
    return ipc.IpcWriteOptions(compression=pa.Codec(compression, level))


def _serialise(write, scratch: "EncodeBuffer | None", options: ipc.IpcWriteOptions | None) -> tuple[pa.Buffer, int]:
    """(a mutable buffer holding what ``write(sink)`` writes, its size)."""
    if options is None:
        # Sized first (a mock stream counts bytes without copying them), then written once into
        # a buffer of exactly that size: a growing stream would re-allocate and copy as it grows.
        mock = pa.MockOutputStream()
        write(mock)
        size = mock.size()
        target = scratch.take(size) if scratch is not None else pa.allocate_buffer(size)
        write(pa.FixedSizeBufferWriter(target))
        return target, size
    # Compressed: sizing first would compress twice. Written once, then copied (the compressed
    # bytes, the small ones) into a buffer the CRC can be patched into.
    sink = pa.BufferOutputStream()
    write(sink)
    raw = sink.getvalue()
    size = raw.size
    target = scratch.take(size) if scratch is not None else pa.allocate_buffer(size)
    memoryview(target).cast("B")[:size] = memoryview(raw).cast("B")
    return target, size


def encode_batch(
    batch: pa.RecordBatch,
    *,
    schema_size: int,
    max_timestamp_ms: int,
    append_ms: int,
    producer_id: str | None = None,
    sequence: int = -1,
    scratch: "EncodeBuffer | None" = None,
    leader_epoch: int = 0,
    format_version: int = FORMAT_VERSION,
    options: ipc.IpcWriteOptions | None = None,
) -> EncodedBatch:
    """Serialise ``batch`` (offsets already stamped) with its checksummed header.

    With ``scratch``, the message is written into that reused buffer: the result is
    valid only until the next encode into it (write it out first). ``options``
    (:func:`write_options`): the buffer compression of the message body.
    """
    offsets = batch.column(0)
    header = BatchHeader(
        crc=0,
        base_offset=offsets[0].as_py(),
        count=batch.num_rows,
        max_timestamp_ms=max_timestamp_ms,
        append_ms=append_ms,
        producer_id=producer_id,
        sequence=sequence,
        version=format_version,
        leader_epoch=leader_epoch,
    )
    placeholder_text = header.text(_PLACEHOLDER)
    metadata = {HEADER_KEY: placeholder_text}
    target, size = _serialise(
        lambda sink: ipc.new_stream(sink, batch.schema, options=options).write_batch(batch, custom_metadata=metadata),
        scratch, options)
    data = target.slice(0, size) if target.size > size else target
    meta_len = int.from_bytes(data.slice(schema_size + 4, 4).to_pybytes(), "little")
    head_len = 8 + meta_len
    head = data.slice(schema_size, head_len).to_pybytes()
    at = head.find(placeholder_text)
    if at < 0 or head.find(placeholder_text, at + 1) >= 0:
        raise AssertionError("batch header not found exactly once in the message metadata")
    body = data.slice(schema_size + head_len)
    crc = zlib.crc32(body, zlib.crc32(memoryview(head)[8:]))  # v2/v3: all metadata, placeholder in place
    start = schema_size + at + len(_PREFIXES[format_version])
    memoryview(target).cast("B")[start : start + 8] = b"%08x" % crc  # slices are read-only: patch the whole
    message = data.slice(schema_size)
    return EncodedBatch(message.slice(0, head_len).to_pybytes(), body, _replace_crc(header, crc), message,
                        transient=scratch is not None and size <= scratch.max_bytes)


def encode_batches(parts: list, *, schema_size: int, scratch: "EncodeBuffer | None" = None,
                   checksum: bool = True, options: ipc.IpcWriteOptions | None = None) -> pa.Buffer:
    """``parts``, ``(batch, max_timestamp_ms, append_ms)`` tuples of batches of one schema (offsets
    in column 0, in order), as record-batch messages back to back in one buffer, each with its
    own header and CRC (no producer id), written in one pass: no batch is concatenated first.
    Their offsets need not be consecutive (a filtered read): each header's base is the batch's
    first offset and its count the rows. With ``scratch``, valid until the next encode into it.
    ``checksum`` False leaves the CRC digits ``--------`` (a read answer that no reader checks:
    computing it was half the cost of a pushed-down read); such a message never verifies, so it
    can never pass for stored data. ``options``: the bodies' buffer compression (:func:`write_options`)."""
    schema = parts[0][0].schema
    headers = [BatchHeader(0, batch.column(0)[0].as_py(), batch.num_rows, max_ts, append_ms, None, -1)
               for batch, max_ts, append_ms in parts]

    def write(sink) -> None:
        writer = ipc.new_stream(sink, schema, options=options)
        for (batch, _, _), header in zip(parts, headers):
            writer.write_batch(batch, custom_metadata={HEADER_KEY: header.text(_PLACEHOLDER)})

    target, size = _serialise(write, scratch, options)
    if not checksum:
        return target.slice(schema_size, size - schema_size)
    view = memoryview(target).cast("B")
    position = schema_size
    prefix = len(_PREFIXES[FORMAT_VERSION])
    for header in headers:
        meta_len = int.from_bytes(view[position + 4 : position + 8], "little")
        head = bytes(view[position + 8 : position + 8 + meta_len])
        at = head.find(header.text(_PLACEHOLDER))
        if at < 0:
            raise AssertionError("batch header not found in the message metadata")
        body_size = ipc.read_message(target.slice(position, size - position)).body.size
        body = target.slice(position + 8 + meta_len, body_size)
        crc = zlib.crc32(body, zlib.crc32(head))
        start = position + 8 + at + prefix
        view[start : start + 8] = b"%08x" % crc
        position += 8 + meta_len + body_size
    return target.slice(schema_size, position - schema_size)


class EncodeBuffer:
    """A reusable, growing buffer to encode large batches into (not thread-safe).

    A fresh allocation of a 16 MiB batch costs more than the copy itself on machines
    where first-touched memory is slow (page faults on every 4 KiB); a buffer that is
    reused stays mapped. Sizes over ``max_bytes`` get a one-off buffer instead, so
    the memory kept is bounded.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024):
        self.max_bytes = max_bytes
        self._buffer: pa.Buffer | None = None

    def take(self, size: int) -> pa.Buffer:
        """A mutable buffer of at least ``size`` bytes (its contents are garbage)."""
        if size > self.max_bytes:
            return pa.allocate_buffer(size)
        if self._buffer is None or self._buffer.size < size:
            grown = 2 * self._buffer.size if self._buffer is not None else 0
            self._buffer = pa.allocate_buffer(min(self.max_bytes, max(size, grown)))
        return self._buffer


def encode_slice(message: "Message", schema: pa.Schema, *, schema_size: int, start: int, rows: int,
                 options: ipc.IpcWriteOptions | None = None) -> EncodedBatch:
    """A new message holding rows ``start .. start + rows - 1`` of a stored one, with its own
    header and CRC (base and count of the slice; no producer id, so it never feeds
    idempotence state). Costs one copy of those rows (decompressed if the stored one was
    compressed; written with ``options``' compression, by default none)."""
    part = trim_nested(decode(message, schema).slice(start, rows))
    max_ts = pc.max(part.column(1)).as_py()
    return encode_batch(part, schema_size=schema_size, max_timestamp_ms=max_ts, append_ms=message.header.append_ms,
                        options=options)


def trim_nested(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with its nested columns copied down to their rows. The IPC writer trims sliced
    flat columns itself but not every nested one: a slice of 10 rows of the usual all-null
    ``headers`` map, cut from a 50,000-row batch, was written with the parent's 400 KB of offsets."""
    columns = [pa.concat_arrays([c]) if pa.types.is_nested(c.type) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def _replace_crc(header: BatchHeader, crc: int) -> BatchHeader:
    return BatchHeader(
        crc,
        header.base_offset,
        header.count,
        header.max_timestamp_ms,
        header.append_ms,
        header.producer_id,
        header.sequence,
        header.version,
        header.leader_epoch,
    )


def _crc(header: BatchHeader, metadata: bytes, body: pa.Buffer) -> int:
    if header.version == 1:
        return zlib.crc32(body, zlib.crc32(header.text(_PLACEHOLDER)))
    prefix = _PREFIXES[header.version]
    start = metadata.find(prefix) + len(prefix)
    covered = b"".join((metadata[:start], _PLACEHOLDER, metadata[start + 8 :]))
    return zlib.crc32(body, zlib.crc32(covered))


_HEADER_RE = re.compile(
    rb"rayka:v(\d);crc=([0-9a-f]{8}|-{8});base=(-?\d+);count=(\d+);maxts=(-?\d+);append=(-?\d+);"
    rb"pid=([^;]*);seq=(-?\d+)(?:;le=(\d+))?"
)


def _parse_header(metadata: bytes, position: int) -> BatchHeader:
    at = metadata.find(_VERSION_MARK)
    if at < 4:
        raise CorruptRecordError(f"batch at byte {position} has no rayka.batch header")
    length = int.from_bytes(metadata[at - 4 : at], "little")  # the flatbuffer string's length
    m = _HEADER_RE.fullmatch(metadata, at, at + length)
    if m is None or int(m[1]) not in _PREFIXES:
        raise CorruptRecordError(
            f"batch at byte {position} has a malformed header: {metadata[at : at + min(length, 160)]!r}")
    try:
        pid = m[7].decode()
    except UnicodeDecodeError as exc:
        raise CorruptRecordError(f"batch at byte {position} has a malformed header: {exc}") from None
    return BatchHeader(
        crc=-1 if m[2] == _PLACEHOLDER else int(m[2], 16),  # -1: a read answer's, unchecked
        base_offset=int(m[3]),
        count=int(m[4]),
        max_timestamp_ms=int(m[5]),
        append_ms=int(m[6]),
        producer_id=None if pid == "-" else pid,
        sequence=int(m[8]),
        version=int(m[1]),
        leader_epoch=int(m[9]) if m[9] is not None and int(m[1]) >= 3 else 0,
    )


def find_header(data: bytes) -> tuple[int, BatchHeader] | None:
    """(position in ``data``, header) of the first whole ``rayka.batch`` header text in ``data``
    (raw bytes that may be damaged: no flatbuffer is trusted, so the text's own length prefix
    is not required), or None."""
    at = data.find(_VERSION_MARK)
    while at >= 0:
        m = _HEADER_RE.match(data, at)
        if m is not None and int(m[1]) in _PREFIXES:
            try:
                pid = m[7].decode()
            except UnicodeDecodeError:
                pid = None
            if pid is not None:
                return at, BatchHeader(-1 if m[2] == _PLACEHOLDER else int(m[2], 16), int(m[3]), int(m[4]), int(m[5]), int(m[6]),
                                       None if pid == "-" else pid, int(m[8]), int(m[1]),
                                       int(m[9]) if m[9] is not None and int(m[1]) >= 3 else 0)
        at = data.find(_VERSION_MARK, at + 1)
    return None


def checksum_passes(header: BatchHeader, metadata: bytes, body) -> bool:
    """Whether ``metadata`` (the bytes after the 8-byte prefix) and ``body`` are the message
    whose header is ``header``: its CRC, computed as :meth:`Message.verify` does."""
    if header.version == 2 and metadata.find(_PREFIXES[2]) < 0:
        return False
    return header.crc >= 0 and _crc(header, metadata, body) == header.crc


def _frame_at(buf: pa.Buffer, position: int) -> tuple[ipc.Message, int]:
    """The IPC message at ``position`` and its metadata length, from the framing alone."""
    if buf.size - position < 8 or buf.slice(position, 4).to_pybytes() != _CONTINUATION:
        raise CorruptRecordError(f"no message starts at byte {position}")
    meta_len = int.from_bytes(buf.slice(position + 4, 4).to_pybytes(), "little")
    if meta_len <= 0 or position + 8 + meta_len > buf.size:
        raise CorruptRecordError(f"message at byte {position} is torn (metadata past the end)")
    try:
        message = ipc.read_message(buf.slice(position))
    except (OSError, pa.ArrowInvalid) as exc:
        raise CorruptRecordError(f"message at byte {position} is torn or corrupt: {exc}") from None
    return message, meta_len


def message_size_at(buf: pa.Buffer, position: int) -> int:
    """Bytes of the message at ``position`` as its framing says (length prefix, metadata,
    body length), without reading its rayka header: how to step over a batch whose
    header or CRC is damaged. CorruptRecordError if the framing itself is broken."""
    message, meta_len = _frame_at(buf, position)
    return 8 + meta_len + message.body.size


def read_message_at(buf: pa.Buffer, position: int) -> Message:
    """Parse the record-batch message starting at ``position`` of ``buf``.

    Raises CorruptRecordError if the bytes there are not one whole message with
    a header (a torn tail looks like this); the CRC is checked by ``verify()``.
    """
    message, meta_len = _frame_at(buf, position)
    if message.type != "record batch":
        raise CorruptRecordError(f"message at byte {position} is a {message.type}, not a record batch")
    metadata = buf.slice(position + 8, meta_len).to_pybytes()
    header = _parse_header(metadata, position)
    return Message(position, 8 + meta_len + message.body.size, header, message, metadata)


def iter_messages(buf: pa.Buffer, position: int = 0, end: int | None = None) -> Iterator[Message]:
    """Messages of ``buf`` from ``position`` up to ``end`` (default: the end of ``buf``)."""
    end = buf.size if end is None else end
    while position < end:
        msg = read_message_at(buf, position)
        yield msg
        position += msg.size


def decode(message: Message, schema: pa.Schema) -> pa.RecordBatch:
    """The record batch of a message, zero-copy over its buffer."""
    try:
        batch = ipc.read_record_batch(message.message, schema)
    except (OSError, pa.ArrowInvalid) as exc:
        raise CorruptRecordError(f"batch at byte {message.position} cannot be decoded: {exc}") from None
    if batch.num_rows != message.header.count:
        raise CorruptRecordError(
            f"batch at byte {message.position} has {batch.num_rows} rows, its header says "
            f"{message.header.count}"
        )
    return batch


def _table_field(buf: bytes, table: int, index: int) -> int:
    """Position of field ``index`` of the flatbuffer table at ``table``, or 0 when it is absent."""
    vtable = table - int.from_bytes(buf[table:table + 4], "little", signed=True)
    vsize = int.from_bytes(buf[vtable:vtable + 2], "little")
    at = 4 + 2 * index
    if at + 2 > vsize:
        return 0
    off = int.from_bytes(buf[vtable + at:vtable + at + 2], "little")
    return table + off if off else 0


def is_compressed(message: Message) -> bool:
    """Whether the message's body carries Arrow IPC buffer compression (its RecordBatch has a
    ``compression`` entry): read from the flatbuffer, as pyarrow exposes no such property."""
    meta = message.metadata
    try:
        root = int.from_bytes(meta[0:4], "little")
        header = _table_field(meta, root, 2)  # Message.header
        if not header:
            return False
        batch = header + int.from_bytes(meta[header:header + 4], "little")
        return _table_field(meta, batch, 3) != 0  # RecordBatch.compression
    except (IndexError, ValueError):
        return False


def decode_fields(message: Message, schema: pa.Schema, schema_bytes: bytes, fields: list[int]) -> pa.RecordBatch:
    """The record batch of a message with only the top-level ``fields`` (indices into ``schema``)
    decoded, in schema order: on a compressed message only those columns are decompressed
    (measured: 1 of 10 int64 columns, zstd, 200k rows: 3.4 ms against 26 ms for all). Costs a copy of
    the stored message (its compressed bytes) behind ``schema_bytes`` (:func:`schema_message`)."""
    stream = pa.py_buffer(b"".join((schema_bytes, message.message.serialize().to_pybytes())))
    try:
        reader = ipc.open_stream(stream, options=ipc.IpcReadOptions(included_fields=sorted(fields)))
        batch = reader.read_next_batch()
    except (OSError, pa.ArrowInvalid) as exc:
        raise CorruptRecordError(f"batch at byte {message.position} cannot be decoded: {exc}") from None
    if batch.num_rows != message.header.count:
        raise CorruptRecordError(
            f"batch at byte {message.position} has {batch.num_rows} rows, its header says {message.header.count}")
    return batch
