"""Checks and conversions between user values and Arrow columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rayka.errors import InvalidRecordError, SchemaMismatchError
from rayka.partitions.record_size import fixed_bits, scalar_bits

__all__ = ["check_bytes", "check_row", "table_from"]

_BYTES = (bytes, bytearray, memoryview)


def check_bytes(value, what: str, serializer: str) -> int:
    """len(value) if it is bytes-like, else an InvalidRecordError (a TypeError) naming the serializer to set."""
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, (bytearray, memoryview)):
        return len(value)
    raise InvalidRecordError(
        f"{what} must be bytes, got {type(value).__name__}; set {serializer}= on the Producer "
        f"(e.g. {serializer}=str.encode, or json.dumps(...).encode) to send other types"
    )


def check_row(value, schema: pa.Schema, topic: str) -> int:
    """Check a typed value (a dict of the topic's value columns) and return the bits it counts
    for under the partition's size rule (rayka.partitions.record_size).

    Checked in ``send()``, so a value that does not fit raises there, naming the column,
    instead of failing the whole batch it would have joined. Each column is converted as
    the batch will be (pyarrow's converter from Python, to the column's type), and a conversion that would change the
    value (1.5 into an int column) is refused, as ``send_table`` refuses it.
    """
    if not isinstance(value, dict):
        raise InvalidRecordError(
            f"topic {topic!r} has a value schema; send a dict of its columns "
            f"({', '.join(schema.names)}), or set value_serializer to build one"
        )
    unknown = value.keys() - set(schema.names)
    if unknown:
        raise SchemaMismatchError(
            f"value has columns {sorted(map(repr, unknown))} that topic {topic!r} does not have; "
            f"its value columns are {schema.names} (column names are str)"
        )
    bits = 0
    for name, typ, nullable, lossy_check, width in _fields(schema):
        item = value.get(name)
        if item is None:
            if not nullable:
                raise SchemaMismatchError(f"value lacks the non-nullable column {name!r} of topic {topic!r}")
            continue
        try:
            # Converted as ProduceBatch.build converts the column (pyarrow's converter from Python).
            scalar = pa.scalar(item, type=typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
                ArithmeticError) as exc:
            raise SchemaMismatchError(
                f"column {name!r} of topic {topic!r} is {typ}; {item!r:.80} does not fit: {exc}"
            ) from None
        if lossy_check and _lossy(item, typ):
            raise SchemaMismatchError(
                f"column {name!r} of topic {topic!r} is {typ}; {item!r:.80} would lose its "
                "fraction: round it first (send_table refuses it too)"
            )
        # A fixed-width column's bits are its width (record_size.fixed_bits, looked up once per schema).
        bits += width if width is not None else scalar_bits(scalar)
    return bits


_FIELDS: dict = {}


def _fields(schema: pa.Schema) -> list:
    """(name, type, nullable, may be lossy, fixed width in bits or None) per column, computed once per schema (send() runs this)."""
    cached = _FIELDS.get(id(schema))
    if cached is None or cached[0] is not schema:
        fields = [(f.name, f.type, f.nullable, pa.types.is_integer(f.type) or (
            (pa.types.is_list(f.type) or pa.types.is_large_list(f.type)) and pa.types.is_integer(f.type.value_type)),
            fixed_bits(f.type)) for f in schema]
        if len(_FIELDS) > 64:
            _FIELDS.clear()
        cached = _FIELDS[id(schema)] = (schema, fields)
    return cached[1]


def _lossy(item, typ: pa.DataType) -> bool:
    """A float with a fraction bound for an integer column (pyarrow would truncate it)."""
    if pa.types.is_integer(typ):
        return isinstance(item, (float, np.floating)) and not float(item).is_integer()
    if (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and pa.types.is_integer(typ.value_type):
        return isinstance(item, (list, tuple, np.ndarray)) and any(_lossy(x, typ.value_type) for x in item)
    return False


def table_from(data, value_schema: pa.Schema | None, topic: str = "") -> pa.Table:
    """A pyarrow Table from a Table, RecordBatch, pandas DataFrame or dict of columns."""
    source = "table.schema"
    if isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, pa.Table):
        table = data
    elif isinstance(data, dict):
        table = pa.table(data)
    elif type(data).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(data, preserve_index=False)
        source = "pa.Schema.from_pandas(df, preserve_index=False)"
    else:
        raise TypeError(
            f"send_table takes a pyarrow Table or RecordBatch, a pandas DataFrame or a dict of "
            f"columns, not {type(data).__name__}"
        )
    if value_schema is None and "value" not in table.column_names:
        others = [c for c in table.column_names if c not in ("key", "timestamp_ms", "headers", "partition")]
        if others != table.column_names:  # the reserved columns are not part of a value schema
            source = (f"pa.Schema.from_pandas(df[{others}], preserve_index=False)" if source != "table.schema"
                      else f"table.select({others}).schema")
        raise SchemaMismatchError(
            f"topic {topic!r} has no value schema, so send_table needs a binary 'value' column; the "
            f"table has {table.column_names}. To store its columns {others} as they are, send to a "
            f"typed topic: admin.create_topic(name, partitions=..., schema={source})"
        )
    if value_schema is None:
        col = table.column("value")
        if not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)
                or pa.types.is_null(col.type)):
            if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                raise InvalidRecordError(
                    "the 'value' column holds strings; values are bytes: encode it first "
                    "(e.g. pyarrow.compute.cast(col, pa.binary()))"
                )
            raise InvalidRecordError(f"the 'value' column must be binary, got {col.type}")
    return table
