"""Checks and conversions between user values and Arrow columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rayka.errors import InvalidRecordError, SchemaMismatchError
from rayka.clients.typed_check import fast_check
from rayka.clients.typed_inputs import is_rows, table_from_rows
from rayka.partitions.record_size import fixed_bits, scalar_bits

__all__ = ["check_bytes", "check_row", "table_from", "explain_mismatch"]

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
    instead of failing the whole batch it would have joined. A value of a plain Python type
    the column surely takes (an int in range of an int column, a str of a string column, ...)
    is accepted by a per-type check (``_fast``, no Arrow object built); anything else is
    converted as the batch will be (pyarrow's converter from Python, to the column's type),
    and a conversion that would change the value (1.5 into an int column) is refused, as
    ``send_table`` refuses it. Both paths accept, refuse and count the same
    (tests/unit/test_typed_check.py compares them).
    """
    if not isinstance(value, dict):
        raise InvalidRecordError(
            f"topic {topic!r} has a value schema; send a dict of its columns "
            f"({', '.join(schema.names)}), a dataclass or a pydantic model, or set value_serializer "
            "to build one"
        )
    fields, names = _fields(schema)
    if not value.keys() <= names:
        unknown = value.keys() - names
        raise SchemaMismatchError(
            f"value has columns {sorted(map(repr, unknown))} that topic {topic!r} does not have; "
            f"its value columns are {schema.names} (column names are str)"
        )
    bits = 0
    get = value.get
    for name, typ, nullable, lossy_check, width, fast in fields:
        item = get(name)
        if item is None:
            if not nullable:
                raise SchemaMismatchError(f"value lacks the non-nullable column {name!r} of topic {topic!r}")
            continue
        got = fast(item) if fast is not None else None
        if got is None:
            got = _checked_bits(item, name, typ, lossy_check, width, topic)
        bits += got
    return bits


def _checked_bits(item, name: str, typ: pa.DataType, lossy_check: bool, width, topic: str) -> int:
    """The general path: ``item`` converted by pyarrow as ProduceBatch.build converts it."""
    try:
        scalar = pa.scalar(item, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
            ArithmeticError) as exc:
        raise SchemaMismatchError(
            f"column {name!r} of topic {topic!r} is {typ}; {type(item).__name__} {item!r:.80} does not fit: {exc}"
        ) from None
    if lossy_check and _lossy(item, typ):
        raise SchemaMismatchError(
            f"column {name!r} of topic {topic!r} is {typ}; {type(item).__name__} {item!r:.80} would lose its "
            "fraction: round it first (send_table refuses it too)"
        )
    # A fixed-width column's bits are its width (record_size.fixed_bits, looked up once per schema).
    return width if width is not None else scalar_bits(scalar)


_FIELDS: dict = {}


def _fields(schema: pa.Schema) -> tuple:
    """Per column (name, type, nullable, may be lossy, fixed width in bits or None, fast check or
    None), and the set of names; computed once per schema (send() runs this)."""
    cached = _FIELDS.get(id(schema))
    if cached is None or cached[0] is not schema:
        fields = [(f.name, f.type, f.nullable, pa.types.is_integer(f.type) or (
            (pa.types.is_list(f.type) or pa.types.is_large_list(f.type)) and pa.types.is_integer(f.type.value_type)),
            fixed_bits(f.type), fast_check(f.type)) for f in schema]
        if len(_FIELDS) > 64:
            _FIELDS.clear()
        cached = _FIELDS[id(schema)] = (schema, (fields, frozenset(schema.names)))
    return cached[1]


def _lossy(item, typ: pa.DataType) -> bool:
    """A float with a fraction bound for an integer column (pyarrow would truncate it)."""
    if pa.types.is_integer(typ):
        return isinstance(item, (float, np.floating)) and not float(item).is_integer()
    if (pa.types.is_list(typ) or pa.types.is_large_list(typ)) and pa.types.is_integer(typ.value_type):
        return isinstance(item, (list, tuple, np.ndarray)) and any(_lossy(x, typ.value_type) for x in item)
    return False


def table_from(data, value_schema: pa.Schema | None, topic: str = "") -> pa.Table:
    """A pyarrow Table from a Table, RecordBatch, pandas or Polars DataFrame, dict of columns, or
    list of rows (dicts, dataclasses, pydantic models; clients/typed_inputs.py)."""
    source = "table.schema"
    if is_rows(data):
        table = table_from_rows(data, value_schema, topic, check_row)
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, pa.Table):
        table = data
    elif isinstance(data, dict):
        table = pa.table(data)
    elif type(data).__module__.startswith("pandas"):
        table = pa.Table.from_pandas(data, preserve_index=False)
        source = "pa.Schema.from_pandas(df, preserve_index=False)"
    elif type(data).__module__.startswith("polars") and hasattr(data, "to_arrow"):
        table = data.to_arrow()
        source = "df.to_arrow().schema"
    else:
        raise TypeError(
            f"send_table takes a pyarrow Table or RecordBatch, a pandas or Polars DataFrame, a dict of "
            f"columns or a list of rows (dicts, dataclasses, pydantic models), not {type(data).__name__}"
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


def explain_mismatch(table, value_schema: pa.Schema | None, error: SchemaMismatchError) -> SchemaMismatchError:
    """``error`` (a column of ``table`` that does not cast to the topic's type) with the first
    value that does not fit added: its row, Python type and a short repr. Run only on the error
    path: it casts the column's values one at a time."""
    if value_schema is None:
        return error
    for field in value_schema:
        if field.name not in table.column_names:
            continue
        col = table.column(field.name)
        if col.type == field.type:
            continue
        try:
            col.cast(field.type)
            continue
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            pass
        flat = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        for i in range(min(len(flat), 100_000)):
            one = flat.slice(i, 1)
            try:
                one.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                v = one[0].as_py()
                return SchemaMismatchError(
                    f"{error}; the first value that does not fit is row {i}: {type(v).__name__} {v!r:.60}")
        break
    return error
