"""Encoding of record batches as Arrow IPC stream messages that carry a checksummed header.

A segment file is a plain Arrow IPC *stream*: one schema message, then one
record-batch message per appended batch (no end-of-stream marker, so the file
can be appended to; ``pyarrow.ipc.open_stream`` reads it to the end either way).

Every record-batch message carries one custom-metadata entry, key
``rayka.batch``, whose value is an ASCII header::

    rayka:v1;crc=1f2e3d4c;base=1200;count=500;maxts=1732480000000;append=1732480000123;pid=-;seq=-1

``crc`` is the CRC-32 (zlib) of the header text with its eight crc digits
replaced by ``--------``, followed by the message body (every buffer of the
batch). It is written in one pass: the message is serialised with the
placeholder, the CRC computed over the header and the body, and the eight
digits patched into the metadata bytes in place (the header string has a
fixed width, so no offset in the flatbuffer moves). A reader recomputes the
same CRC; a torn or corrupt batch fails it and is never served.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import CorruptRecordError

__all__ = [
    "HEADER_KEY",
    "BatchHeader",
    "EncodedBatch",
    "Message",
    "schema_message",
    "encode_batch",
    "read_message_at",
    "iter_messages",
    "decode",
]

HEADER_KEY = "rayka.batch"
_PREFIX = b"rayka:v1;crc="
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

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.count - 1

    @property
    def next_offset(self) -> int:
        return self.base_offset + self.count

    def text(self, crc_digits: bytes) -> bytes:
        return b"%s%s;base=%d;count=%d;maxts=%d;append=%d;pid=%s;seq=%d" % (
            _PREFIX,
            crc_digits,
            self.base_offset,
            self.count,
            self.max_timestamp_ms,
            self.append_ms,
            (self.producer_id or "-").encode(),
            self.sequence,
        )


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """A record-batch message ready to be written: ``head`` (prefix and metadata) then ``body``."""

    head: bytes
    body: pa.Buffer
    header: BatchHeader

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

    def verify(self) -> None:
        """Raise CorruptRecordError unless the CRC matches the header and body."""
        if _crc(self.header, self.message.body) != self.header.crc:
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


def encode_batch(
    batch: pa.RecordBatch,
    *,
    schema_size: int,
    max_timestamp_ms: int,
    append_ms: int,
    producer_id: str | None = None,
    sequence: int = -1,
) -> EncodedBatch:
    """Serialise ``batch`` (offsets already stamped) with its checksummed header."""
    offsets = batch.column(0)
    header = BatchHeader(
        crc=0,
        base_offset=offsets[0].as_py(),
        count=batch.num_rows,
        max_timestamp_ms=max_timestamp_ms,
        append_ms=append_ms,
        producer_id=producer_id,
        sequence=sequence,
    )
    placeholder_text = header.text(_PLACEHOLDER)
    sink = pa.BufferOutputStream()
    writer = ipc.new_stream(sink, batch.schema)
    writer.write_batch(batch, custom_metadata={HEADER_KEY: placeholder_text})
    data = sink.getvalue().slice(schema_size)
    meta_len = int.from_bytes(data.slice(4, 4).to_pybytes(), "little")
    head = bytearray(data.slice(0, 8 + meta_len).to_pybytes())
    body = data.slice(8 + meta_len)
    at = head.find(placeholder_text)
    if at < 0 or head.find(placeholder_text, at + 1) >= 0:
        raise AssertionError("batch header not found exactly once in the message metadata")
    crc = zlib.crc32(body, zlib.crc32(placeholder_text))
    digits = b"%08x" % crc
    start = at + len(_PREFIX)
    head[start : start + 8] = digits
    return EncodedBatch(bytes(head), body, _replace_crc(header, crc))


def _replace_crc(header: BatchHeader, crc: int) -> BatchHeader:
    return BatchHeader(
        crc,
        header.base_offset,
        header.count,
        header.max_timestamp_ms,
        header.append_ms,
        header.producer_id,
        header.sequence,
    )


def _crc(header: BatchHeader, body: pa.Buffer) -> int:
    return zlib.crc32(body, zlib.crc32(header.text(_PLACEHOLDER)))


def _parse_header(metadata: bytes, position: int) -> BatchHeader:
    at = metadata.find(_PREFIX)
    if at < 4:
        raise CorruptRecordError(f"batch at byte {position} has no rayka.batch header")
    length = int.from_bytes(metadata[at - 4 : at], "little")
    text = metadata[at : at + length]
    try:
        fields = dict(part.split(b"=", 1) for part in text[len(b"rayka:v1;") :].split(b";"))
        pid = fields[b"pid"].decode()
        return BatchHeader(
            crc=int(fields[b"crc"], 16),
            base_offset=int(fields[b"base"]),
            count=int(fields[b"count"]),
            max_timestamp_ms=int(fields[b"maxts"]),
            append_ms=int(fields[b"append"]),
            producer_id=None if pid == "-" else pid,
            sequence=int(fields[b"seq"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(f"batch at byte {position} has a malformed header: {exc}") from None


def read_message_at(buf: pa.Buffer, position: int) -> Message:
    """Parse the record-batch message starting at ``position`` of ``buf``.

    Raises CorruptRecordError if the bytes there are not one whole message with
    a header (a torn tail looks like this); the CRC is checked by ``verify()``.
    """
    if buf.size - position < 8 or buf.slice(position, 4).to_pybytes() != _CONTINUATION:
        raise CorruptRecordError(f"no message starts at byte {position}")
    meta_len = int.from_bytes(buf.slice(position + 4, 4).to_pybytes(), "little")
    if meta_len <= 0 or position + 8 + meta_len > buf.size:
        raise CorruptRecordError(f"message at byte {position} is torn (metadata past the end)")
    try:
        message = ipc.read_message(buf.slice(position))
    except (OSError, pa.ArrowInvalid) as exc:
        raise CorruptRecordError(f"message at byte {position} is torn or corrupt: {exc}") from None
    if message.type != "record batch":
        raise CorruptRecordError(f"message at byte {position} is a {message.type}, not a record batch")
    header = _parse_header(message.metadata.to_pybytes(), position)
    return Message(position, 8 + meta_len + message.body.size, header, message)


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
