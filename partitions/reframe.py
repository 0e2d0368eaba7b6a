"""Storing a producer's compressed batch without compressing it again.

A producer of a compressed topic ships its batch as an Arrow IPC stream whose record-batch
message body is already compressed with the topic's codec (per-buffer compression: each
buffer is an 8-byte little-endian uncompressed length, then the compressed bytes, or ``-1``
then the bytes as they are). The partition must decompress it anyway, to validate it
(``records.prepare_batch``), but compressing the validated batch again costs most of the
append (measured, 50,000 JSON click events, 17 MiB, zstd: 29 ms of the partition's 41 ms).

:func:`encode_reusing` writes the stored message from the producer's compressed buffers for
every column the partition stores as it was received (the very arrays decoded from those
bytes), and compresses only the columns the partition made (``offset``; a ``timestamp_ms``,
``key`` or ``headers`` it filled in or cast; a value column it cast). The result is an
ordinary Arrow IPC record-batch message, byte-valid for ``pyarrow.ipc.open_stream``, with
rayka's checksummed header (``codec`` module docstring): its metadata is the flatbuffer that
pyarrow writes for a one-row slice of the stored batch (same schema, same codec, the same
header text), with the fixed-size fields that depend on the data patched in place: the
batch length, each field node's length and null count, each buffer's offset and length and
the body length. Flatbuffer structs and scalars never move when their value changes, so no
other offset in the metadata does.

When anything does not fit that shape (a stream of more than one batch, dictionaries, a
type whose buffer layout is not listed in :func:`_layout_counts`, a producer codec other
than the topic's), it answers None and the caller encodes the batch the ordinary way
(:func:`encode_stored` also does for batches under ``REUSE_MIN_BYTES``). Validation is not
weakened: :func:`read_produced` decompresses every buffer (a damaged one is refused there,
InvalidRecordError, before anything is written), ``prepare_batch`` checks the decoded batch,
and a column is reused only when the stored array is that decoded array (same buffers, same
memory), so the reused compressed bytes are exactly what decompressed into what was checked.
The stored buffers keep the producer's compression level. Pure logic: no Ray.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.ipc as ipc

from ..errors import InvalidRecordError
from . import codec

__all__ = ["REUSE_MIN_BYTES", "ProducedBatch", "read_produced", "encode_reusing", "encode_stored"]

_CODECS = {0: "lz4", 1: "zstd"}  # flatbuffer CompressionType: LZ4_FRAME, ZSTD
# Below this many bytes (the stored batch, uncompressed) compressing again is the cheaper way:
# reusing writes two small IPC messages (the partition's columns, the metadata template), and
# each zstd write costs ~0.3 ms whatever its size. Measured (benchmarks.compression_profile,
# zstd): 5,000 numeric rows, 0.2 MB: 0.8 ms reusing, 1.0 ms again; 2,000 rows, 0.1 MB: 0.8 / 0.6;
# 2,000 click events, 0.7 MB: 0.8 / 1.3; 50,000 click events, 18 MB: 3.5 / 30.
REUSE_MIN_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class _Frame:
    """The parts of a record-batch message's flatbuffer that :func:`encode_reusing` reads or patches."""

    length_at: int  # RecordBatch.length (int64)
    nodes_at: int  # first FieldNode struct (two int64: length, null_count)
    node_count: int
    buffers_at: int  # first Buffer struct (two int64: offset, length)
    buffer_count: int
    body_length_at: int  # Message.bodyLength (int64)
    codec: str | None  # the body's compression, None when uncompressed


@dataclass(frozen=True, slots=True)
class ProducedBatch:
    """A producer's batch as the partition received it: ``batch`` decoded (decompressed) from
    the stream's one record-batch message, whose raw ``metadata`` and ``body`` are kept so
    :func:`encode_reusing` can store its compressed buffers as they are."""

    batch: pa.RecordBatch
    metadata: bytes
    body: pa.Buffer
    frame: _Frame

    @property
    def codec(self) -> str | None:
        return self.frame.codec

    def nodes(self) -> list[tuple[int, int]]:
        return _structs(self.metadata, self.frame.nodes_at, self.frame.node_count)

    def buffers(self) -> list[tuple[int, int]]:
        return _structs(self.metadata, self.frame.buffers_at, self.frame.buffer_count)


def read_produced(data: pa.Buffer | bytes) -> pa.Table | ProducedBatch:
    """The batch of a producer's IPC stream: a :class:`ProducedBatch` when the stream is one
    schema and one record-batch message with a layout :func:`encode_reusing` understands,
    else the stream read whole as a Table (what ``ipc.open_stream(data).read_all()`` gives).
    Every buffer is decompressed here, so a damaged one is refused before anything is written
    (InvalidRecordError)."""
    buf = pa.py_buffer(data) if isinstance(data, bytes) else data
    try:
        return _read(buf)
    except (OSError, pa.ArrowException) as exc:
        raise InvalidRecordError(
            f"the produced batch ({buf.size} bytes) is not a readable Arrow IPC stream: {exc}; nothing of it "
            "was appended. Send it again (a batch damaged on its way), or check what wrote it") from None


def _read(buf: pa.Buffer) -> pa.Table | ProducedBatch:
    reader = ipc.MessageReader.open_stream(buf)
    first = _next_message(reader)
    second = _next_message(reader) if first is not None and first.type == "schema" else None
    if second is None or second.type != "record batch" or _next_message(reader) is not None:
        return ipc.open_stream(buf).read_all()  # no batch, dictionaries or several batches: the ordinary path
    schema = ipc.read_schema(first)
    metadata = second.metadata.to_pybytes()
    frame = _frame(metadata)
    if frame is None or any(_layout_counts(f.type) is None for f in schema):
        return ipc.open_stream(buf).read_all()
    return ProducedBatch(ipc.read_record_batch(second, schema), metadata, second.body, frame)


def _next_message(reader: ipc.MessageReader) -> ipc.Message | None:
    try:
        return reader.read_next_message()
    except StopIteration:
        return None


def encode_reusing(stored: pa.RecordBatch, produced: ProducedBatch, *, schema_size: int, max_timestamp_ms: int,
                   append_ms: int, producer_id: str | None = None, sequence: int = -1, leader_epoch: int = 0,
                   options: ipc.IpcWriteOptions, compression: str,
                   scratch: "codec.EncodeBuffer | None" = None) -> codec.EncodedBatch | None:
    """``stored`` (the validated batch, offsets stamped) encoded as :func:`codec.encode_batch`
    would with ``options`` (the topic's ``compression`` codec), reusing ``produced``'s
    compressed buffers for the columns ``stored`` shares with it; None when it cannot (see
    the module docstring), and the caller encodes it the ordinary way."""
    if produced.codec != compression or stored.num_rows != produced.batch.num_rows:
        return None
    schema = stored.schema
    counts = [_layout_counts(f.type) for f in schema]
    if any(c is None for c in counts):
        return None
    source = _shared_columns(stored, produced.batch)
    # Per stored column: its (length, null_count) nodes and its buffers as (source body, offset, length).
    nodes: list[list[tuple[int, int]]] = [[] for _ in schema]
    buffers: list[list[tuple[pa.Buffer, int, int]]] = [[] for _ in schema]
    _collect(produced.batch.schema, produced.nodes(), produced.buffers(), produced.body,
             {j: i for i, j in enumerate(source) if j is not None}, nodes, buffers)
    fresh = [i for i, j in enumerate(source) if j is None]
    made = pa.RecordBatch.from_arrays([stored.column(i) for i in fresh],
                                      schema=pa.schema([schema.field(i) for i in fresh]))
    made_message = _write_one(made, options, None)
    made_meta = made_message.metadata.to_pybytes()
    made_frame = _frame(made_meta)
    if made_frame is None or made_frame.codec != compression:
        return None
    _collect(made.schema, _structs(made_meta, made_frame.nodes_at, made_frame.node_count),
             _structs(made_meta, made_frame.buffers_at, made_frame.buffer_count), made_message.body,
             dict(enumerate(fresh)), nodes, buffers)

    header = codec.BatchHeader(0, stored.column(0)[0].as_py(), stored.num_rows, max_timestamp_ms, append_ms,
                               producer_id, sequence, codec.FORMAT_VERSION, leader_epoch)
    placeholder_text = header.text(codec._PLACEHOLDER)
    template = _write_one(codec.trim_nested(stored.slice(0, 1)), options, {codec.HEADER_KEY: placeholder_text})
    meta = bytearray(template.metadata.to_pybytes())
    meta += bytes(-(8 + len(meta)) % 8)  # the prefix and metadata end 8-byte aligned, as Arrow writes them
    frame = _frame(bytes(meta))
    all_nodes = [n for column in nodes for n in column]
    all_buffers = [b for column in buffers for b in column]
    if (frame is None or frame.codec != compression or frame.node_count != len(all_nodes)
            or frame.buffer_count != len(all_buffers) or frame.node_count != sum(c[0] for c in counts)):
        return None

    # The body: every buffer as its source stored it (compressed, with its length prefix), each
    # padded to 8 bytes as Arrow's writer does, so uncompressed (-1) buffers stay aligned.
    placed = []
    position = 0
    for _, _, length in all_buffers:
        placed.append((position, length))
        position += _pad8(length)
    body_length = position
    _put(meta, frame.length_at, stored.num_rows)
    for k, (length, nulls) in enumerate(all_nodes):
        _put(meta, frame.nodes_at + 16 * k, length)
        _put(meta, frame.nodes_at + 16 * k + 8, nulls)
    for k, (offset, length) in enumerate(placed):
        _put(meta, frame.buffers_at + 16 * k, offset)
        _put(meta, frame.buffers_at + 16 * k + 8, length)
    _put(meta, frame.body_length_at, body_length)

    head_len = 8 + len(meta)
    size = head_len + body_length
    target = scratch.take(size) if scratch is not None else pa.allocate_buffer(size)
    view = memoryview(target).cast("B")
    view[0:4] = b"\xff\xff\xff\xff"
    view[4:8] = len(meta).to_bytes(4, "little")
    view[8:head_len] = meta
    for (src, offset, length), (at, _) in zip(all_buffers, placed):
        start = head_len + at
        view[start : start + length] = memoryview(src).cast("B")[offset : offset + length]
        view[start + length : head_len + at + _pad8(length)] = bytes(_pad8(length) - length)
    data = target.slice(0, size) if target.size > size else target
    at = meta.find(placeholder_text)
    if at < 0 or meta.find(placeholder_text, at + 1) >= 0:
        raise AssertionError("batch header not found exactly once in the message metadata")
    body = data.slice(head_len)
    crc = zlib.crc32(body, zlib.crc32(meta))  # v3: all metadata with the placeholder, then the body
    start = 8 + at + len(codec._PREFIXES[codec.FORMAT_VERSION])
    view[start : start + 8] = b"%08x" % crc
    return codec.EncodedBatch(data.slice(0, head_len).to_pybytes(), body, codec._replace_crc(header, crc), data,
                              transient=scratch is not None and size <= scratch.max_bytes)


def encode_stored(stored: pa.RecordBatch, produced: ProducedBatch | None, *, options: ipc.IpcWriteOptions | None,
                  compression: str | None, **fields) -> codec.EncodedBatch:
    """The message a partition stores for ``stored``: :func:`encode_reusing` when the batch came
    from a producer (``produced``), the topic compresses and the batch holds at least
    ``REUSE_MIN_BYTES``, else :func:`codec.encode_batch` (``fields``: their shared keyword
    arguments, schema_size, max_timestamp_ms, ...)."""
    if produced is not None and options is not None and stored.nbytes >= REUSE_MIN_BYTES:
        encoded = encode_reusing(stored, produced, options=options, compression=compression, **fields)
        if encoded is not None:
            return encoded
    return codec.encode_batch(stored, options=options, **fields)


def _shared_columns(stored: pa.RecordBatch, received: pa.RecordBatch) -> list[int | None]:
    """For each stored column, the index of the received column it is (the same arrays over
    the same memory: prepare_batch kept it as decoded), or None for a column the partition made."""
    names = {name: j for j, name in enumerate(received.schema.names)}
    out: list[int | None] = []
    for i, field in enumerate(stored.schema):
        j = names.get(field.name) if i else None  # offset (column 0) is always the partition's
        if j is not None and not _same_array(stored.column(i), received.column(j)):
            j = None
        out.append(j)
    return out


def _same_array(a: pa.Array, b: pa.Array) -> bool:
    if a.type != b.type or a.offset != b.offset or len(a) != len(b) or a.null_count != b.null_count:
        return False
    ab, bb = a.buffers(), b.buffers()
    return len(ab) == len(bb) and all(
        (x is None and y is None) or (x is not None and y is not None and x.address == y.address and x.size == y.size)
        for x, y in zip(ab, bb))


def _collect(schema: pa.Schema, all_nodes, all_buffers, body: pa.Buffer, wanted: dict[int, int],
             nodes, buffers) -> None:
    """Append to ``nodes[i]``/``buffers[i]`` the field nodes and buffers of the message's column
    ``j`` for each ``j -> i`` of ``wanted`` (a message lists them column after column, each
    column's children depth first)."""
    n = b = 0
    for j, field in enumerate(schema):
        node_count, buffer_count = _layout_counts(field.type)
        i = wanted.get(j)
        if i is not None:
            nodes[i].extend(all_nodes[n : n + node_count])
            buffers[i].extend((body, offset, length) for offset, length in all_buffers[b : b + buffer_count])
        n += node_count
        b += buffer_count


def _layout_counts(typ: pa.DataType) -> tuple[int, int] | None:
    """(field nodes, buffers) an Arrow IPC record batch holds for a column of ``typ``, or None
    for a type this module leaves to the ordinary path (dictionaries, unions, views, ...)."""
    if pa.types.is_null(typ):
        return 1, 0
    if pa.types.is_dictionary(typ) or pa.types.is_union(typ) or isinstance(typ, pa.ExtensionType):
        return None
    if pa.types.is_binary(typ) or pa.types.is_string(typ) or pa.types.is_large_binary(typ) \
            or pa.types.is_large_string(typ):
        return 1, 3
    if pa.types.is_map(typ) or pa.types.is_list(typ) or pa.types.is_large_list(typ):
        child = _layout_counts(typ.value_type if not pa.types.is_map(typ) else
                               pa.struct([pa.field("key", typ.key_type, False), pa.field("value", typ.item_type)]))
        return None if child is None else (1 + child[0], 2 + child[1])
    if pa.types.is_fixed_size_list(typ):
        child = _layout_counts(typ.value_type)
        return None if child is None else (1 + child[0], 1 + child[1])
    if pa.types.is_struct(typ):
        total = [1, 1]
        for k in range(typ.num_fields):
            child = _layout_counts(typ.field(k).type)
            if child is None:
                return None
            total[0] += child[0]
            total[1] += child[1]
        return total[0], total[1]
    if pa.types.is_boolean(typ) or pa.types.is_primitive(typ) or pa.types.is_decimal(typ) \
            or pa.types.is_fixed_size_binary(typ):
        return 1, 2
    return None


def _write_one(batch: pa.RecordBatch, options: ipc.IpcWriteOptions, metadata) -> ipc.Message:
    sink = pa.BufferOutputStream()
    ipc.new_stream(sink, batch.schema, options=options).write_batch(batch, custom_metadata=metadata)
    reader = ipc.MessageReader.open_stream(sink.getvalue())
    reader.read_next_message()  # the schema
    return reader.read_next_message()


def _frame(meta: bytes) -> _Frame | None:
    """Where a record-batch message's patched fields sit in its flatbuffer ``meta``, or None when
    one is absent (a flatbuffer omits a scalar equal to its default) or the batch has variadic
    buffers (view types)."""
    try:
        root = _u32(meta, 0)
        header_type = _field(meta, root, 1)
        if not header_type or meta[header_type] != 3:  # MessageHeader.RecordBatch
            return None
        header = _ref(meta, _field(meta, root, 2))
        length_at = _field(meta, header, 0)
        body_length_at = _field(meta, root, 3)
        nodes = _ref(meta, _field(meta, header, 1))
        buffers = _ref(meta, _field(meta, header, 2))
        if not (length_at and body_length_at and nodes and buffers) or _field(meta, header, 4):
            return None
        compression = _field(meta, header, 3)
        name = None
        if compression:
            body_compression = _ref(meta, compression)
            codec_at = _field(meta, body_compression, 0)
            name = _CODECS.get(meta[codec_at] if codec_at else 0)
            method_at = _field(meta, body_compression, 1)
            if name is None or (method_at and meta[method_at] != 0):  # method BUFFER only
                return None
        return _Frame(length_at, nodes + 4, _u32(meta, nodes), buffers + 4, _u32(meta, buffers), body_length_at, name)
    except (IndexError, ValueError):
        return None


def _u32(buf, at: int) -> int:
    return int.from_bytes(buf[at : at + 4], "little")


def _field(buf, table: int, index: int) -> int:
    """Position of field ``index`` of the flatbuffer table at ``table``, or 0 when it is absent."""
    return codec._table_field(bytes(buf), table, index)


def _ref(buf, at: int) -> int:
    """The table or vector an offset field at ``at`` points to (0 when absent)."""
    return at + _u32(buf, at) if at else 0


def _structs(buf, at: int, count: int) -> list[tuple[int, int]]:
    return [(int.from_bytes(buf[at + 16 * k : at + 16 * k + 8], "little", signed=True),
             int.from_bytes(buf[at + 16 * k + 8 : at + 16 * k + 16], "little", signed=True)) for k in range(count)]


def _put(buf: bytearray, at: int, value: int) -> None:
    buf[at : at + 8] = value.to_bytes(8, "little", signed=True)


def _pad8(n: int) -> int:
    return (n + 7) & ~7
