"""Serving a read in a reader's schema version: batches stored under another version are projected.

A read (log_read.py) holds batches of one schema version, its segment's. A reader names the
version it reads in (a consumer: the topic's latest when it started, or one it chose); a
read of that same version ships the stored messages as they are. One of another version is
decoded, projected into the reader's schema (schema_project.py: added fields as their
default or null, safe widening; the files are never rewritten) and shipped as fresh
messages, without CRC (a read answer, like a pushed-down one: the stored CRC was checked).
A version the reader's schema cannot read (a field it narrowed, or added without a default
or nullability, or a writer newer than the reader with a field the reader cannot take)
raises SchemaMismatchError naming each field, and which version to read in instead.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import SchemaMismatchError
from . import codec
from .read_result import ReadResult
from .records import RESERVED_COLUMNS
from .schema_project import project_batch
from .schema_versions import SchemaSet

__all__ = ["check_readable", "project_batches", "project_result", "project_columns"]


def check_readable(schemas: SchemaSet, writer: int, reader: int) -> None:
    """SchemaMismatchError unless batches of version ``writer`` can be read in version ``reader``,
    naming each field that cannot and the versions that can read them."""
    problem = schemas.read_problem(writer, reader)
    if problem is not None:
        can = [v for v in schemas.versions if schemas.read_problem(writer, v) is None]
        raise SchemaMismatchError(
            f"records written under schema version {writer} cannot be read in version {reader}: {problem}; "
            f"read them in version {', '.join(map(str, can))} (Consumer(schema_version=...))")


def project_batches(result: ReadResult, schemas: SchemaSet, reader: int) -> list[pa.RecordBatch]:
    """The records of ``result`` (from its ``offset``) decoded and projected into ``reader``."""
    check_readable(schemas, result.schema_version, reader)
    value_schema, metadata = schemas.value_schema(reader), schemas.schema(reader).metadata
    return [project_batch(codec.decode(msg, result.schema).slice(skip), value_schema).replace_schema_metadata(metadata)
            for msg, skip in _messages(result)]


def _messages(result: ReadResult):
    """(message, rows to skip) of each stored message of ``result`` holding records from its offset."""
    for buf in result.buffers:
        for msg in codec.iter_messages(buf):
            h = msg.header
            if h.next_offset > result.offset:
                yield msg, max(result.offset - h.base_offset, 0)


def project_columns(result: ReadResult, schemas: SchemaSet, reader: int,
                    needed: list[str]) -> list[tuple[pa.RecordBatch, int, int]]:
    """The ``needed`` columns (stored names in the reader's version) of ``result``'s records,
    projected into ``reader``, one ``(batch, max_timestamp_ms, append_ms)`` per stored message
    (those two from its header): only the writer's columns that map
    to them are decoded, and of a compressed message only those are decompressed (a pushed-down
    read of an older version reads no more than one of the reader's own)."""
    check_readable(schemas, result.schema_version, reader)
    writer_schema = result.schema
    reader_value = schemas.value_schema(reader)
    value_names = [n for n in needed if n not in RESERVED_COLUMNS]
    reader_part = pa.schema([reader_value.field(n) for n in value_names])
    take = [writer_schema.get_field_index(n) for n in needed if writer_schema.get_field_index(n) >= 0]
    take.sort()
    message = schemas.message(result.schema_version)
    out = []
    for msg, skip in _messages(result):
        if codec.is_compressed(msg):
            batch = codec.decode_fields(msg, writer_schema, message, take)
        else:
            batch = codec.decode(msg, writer_schema).select(take)
        h = msg.header
        out.append((project_batch(batch.slice(skip), reader_part).select(needed), h.max_timestamp_ms, h.append_ms))
    return out


def project_result(result: ReadResult, schemas: SchemaSet, reader: int,
                   scratch: codec.EncodeBuffer | None = None) -> pa.Buffer:
    """:func:`project_batches` encoded as record-batch messages back to back (what a fetch ships)."""
    batches = project_batches(result, schemas, reader)
    if not batches:
        return pa.py_buffer(b"")
    parts = [(codec.trim_nested(b), _max(b), 0) for b in batches]
    size = len(schemas.message(reader))
    return codec.encode_batches(parts, schema_size=size, scratch=scratch, checksum=False)


def _max(batch: pa.RecordBatch) -> int:
    return pc.max(batch.column(1)).as_py()
