"""The record layout of a partition log, and the checks a batch passes before it is written.

Every stored record batch has these columns, in this order::

    offset        int64, not null    dense and increasing within a partition
    timestamp_ms  int64, not null    CreateTime (the producer's) or LogAppendTime
    key           binary, nullable
    headers       map<string, binary>, nullable
    value         binary, nullable   -- or, for a topic with a value schema, that schema's columns

Producers send the same columns without ``offset`` (and ``timestamp_ms`` and
``headers`` may be missing or null); :func:`prepare_batch` validates them and
returns a batch in the stored layout, ready for the partition to stamp offsets.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from ..errors import RecordTooLargeError, SchemaMismatchError
from .record_size import record_sizes

__all__ = [
    "HEADERS_TYPE",
    "RESERVED_COLUMNS",
    "log_schema",
    "input_schema",
    "prepare_batch",
    "stamp_offsets",
]

HEADERS_TYPE = pa.map_(pa.string(), pa.binary())
RESERVED_COLUMNS = ("offset", "timestamp_ms", "key", "headers")


def log_schema(value_schema: pa.Schema | None = None) -> pa.Schema:
    """The stored schema: the reserved columns then ``value`` (or the topic's value columns)."""
    fields = [
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp_ms", pa.int64(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("headers", HEADERS_TYPE),
    ]
    if value_schema is None:
        fields.append(pa.field("value", pa.binary()))
    else:
        for f in value_schema:
            if f.name in RESERVED_COLUMNS:
                raise SchemaMismatchError(
                    f"value schema field {f.name!r} clashes with a reserved column "
                    f"{RESERVED_COLUMNS}; rename it"
                )
            fields.append(f)
    return pa.schema(fields)


def input_schema(value_schema: pa.Schema | None = None) -> pa.Schema:
    """What a producer sends: the stored schema without ``offset``."""
    schema = log_schema(value_schema)
    return schema.remove(schema.get_field_index("offset"))


def _value_names(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if f.name not in RESERVED_COLUMNS]


def prepare_batch(
    batch: pa.RecordBatch | pa.Table,
    schema: pa.Schema,
    *,
    now_ms: int,
    max_message_bytes: int,
    log_append_time: bool = False,
) -> pa.RecordBatch:
    """Validate a produced batch and return it in the stored layout, with offset zeros.

    Raises SchemaMismatchError when a column is missing or cannot be cast, and
    RecordTooLargeError when any record (key + value + headers) exceeds
    ``max_message_bytes``. Nothing is written either way: the caller appends the
    returned batch or nothing.
    """
    if isinstance(batch, pa.Table):
        batch = batch.combine_chunks().to_batches()[0] if batch.num_rows else _empty(schema)
    n = batch.num_rows
    names = set(batch.schema.names)
    columns: list[pa.Array] = [_zeros(n)]
    if log_append_time or "timestamp_ms" not in names:
        ts = pa.array(np.full(n, now_ms, dtype=np.int64))
    else:
        ts = _cast(batch.column("timestamp_ms"), pa.int64(), "timestamp_ms")
        if ts.null_count:
            ts = ts.fill_null(now_ms)
    columns.append(ts)
    columns.append(_column(batch, "key", pa.binary(), n, names))
    columns.append(_column(batch, "headers", HEADERS_TYPE, n, names))
    value_names = _value_names(schema)
    unknown = names - set(RESERVED_COLUMNS) - set(value_names) - {"partition"}
    if unknown:
        raise SchemaMismatchError(
            f"batch has columns {sorted(unknown)} that the topic does not have; "
            f"the topic's value columns are {value_names}"
        )
    for name in value_names:
        field = schema.field(name)
        if name not in names:
            if not field.nullable:
                raise SchemaMismatchError(f"batch lacks the non-nullable value column {name!r}")
            columns.append(pa.nulls(n, field.type))
        else:
            columns.append(_cast(batch.column(name), field.type, name))
    out = pa.RecordBatch.from_arrays(columns, schema=schema)
    _check_sizes(out, value_names, max_message_bytes)
    return out


def stamp_offsets(batch: pa.RecordBatch, base_offset: int) -> pa.RecordBatch:
    """The batch with ``offset`` = base_offset, base_offset + 1, ... (other columns shared)."""
    offsets = pa.array(np.arange(base_offset, base_offset + batch.num_rows, dtype=np.int64))
    return batch.set_column(0, batch.schema.field(0), offsets)


def _zeros(n: int) -> pa.Array:
    return pa.array(np.zeros(n, dtype=np.int64))


def _empty(schema: pa.Schema) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=schema)


def _column(batch, name, typ, n, names) -> pa.Array:
    if name not in names:
        return pa.nulls(n, typ)
    return _cast(batch.column(name), typ, name)


def _cast(array: pa.Array, typ: pa.DataType, name: str) -> pa.Array:
    if array.type == typ:
        return array
    if typ == HEADERS_TYPE and pa.types.is_null(array.type):
        return pa.nulls(len(array), typ)
    try:
        return array.cast(typ)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise SchemaMismatchError(
            f"column {name!r} has type {array.type}, which does not fit the topic's {typ}: {exc}"
        ) from None


def _check_sizes(batch: pa.RecordBatch, value_names: list[str], max_message_bytes: int) -> None:
    if batch.num_rows == 0:
        return
    values = [batch.column(v) for v in value_names]
    # Fast path: no record counts more than the bytes its columns hold in all, so if the whole
    # batch's key, header and value buffers fit, every record does.
    payload = batch.column(2).nbytes + batch.column(3).nbytes + sum(c.nbytes for c in values)
    if payload <= max_message_bytes:
        return
    sizes = record_sizes(batch.column(2), batch.column(3), values)
    biggest = int(sizes.max())
    if biggest > max_message_bytes:
        index = int(np.argmax(sizes))
        raise RecordTooLargeError(
            f"record {index} of the batch is {biggest} bytes, over the topic's max.message.bytes "
            f"({max_message_bytes}); nothing of the batch was appended. Split the value or raise "
            "max.message.bytes for the topic",
            max_message_bytes=max_message_bytes,
        )
