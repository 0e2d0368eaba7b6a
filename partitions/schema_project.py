"""Reading a stored batch of an older schema version in a newer (reader) schema, in memory.

A typed topic's stored batches are never re-written when its schema evolves: each keeps the
value columns of the version it was written under (partitions/records.py's layout: ``offset``,
``timestamp_ms``, ``key``, ``headers``, then the value columns). :func:`project_batch` turns
one into the reader's value columns, by name, under the rules of partitions/schema_rules.py:

- the reserved columns the batch has come first, the very same arrays, in the batch's order;
- then the reader's value fields in the reader's order: a column whose type is unchanged is
  the batch's own array (no copy: the same buffers), a widened one is cast, a struct, list or
  map whose children changed is rebuilt around its unchanged children (which stay shared),
  a field the batch lacks is its default repeated or nulls;
- value columns the reader does not have are left out.

The result's schema metadata is the reader's: the batch is now in the reader's schema.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa

from ..errors import SchemaMismatchError
from .records import RESERVED_COLUMNS
from .schema_rules import field_default, read_issues

__all__ = ["project_batch"]


def project_batch(batch: pa.RecordBatch, reader: pa.Schema) -> pa.RecordBatch:
    """``batch`` (stored layout, written under an older value schema) in the value schema ``reader``.

    ``reader`` holds value fields only. Raises SchemaMismatchError, naming every field that cannot
    be read and why, when the batch's value columns cannot be read under ``reader`` (the same
    rules that schema compatibility checks: partitions/schema_rules.py); nothing is cast then.
    """
    clash = [f.name for f in reader if f.name in RESERVED_COLUMNS]
    if clash:
        raise SchemaMismatchError(
            f"reader schema fields {clash} are rayka's reserved columns {RESERVED_COLUMNS}; "
            "pass the topic's value schema, without them"
        )
    value_fields = [f for f in batch.schema if f.name not in RESERVED_COLUMNS]
    index = {f.name: i for i, f in enumerate(batch.schema)}
    dup = sorted(n for n, c in Counter(f.name for f in value_fields).items() if c > 1)
    if dup:
        raise SchemaMismatchError(f"batch has value columns {dup} more than once; it cannot be read by name")
    issues = read_issues(value_fields, reader)
    if issues:
        listed = "; ".join(f"{i.path!r} {i.reason}" for i in issues)
        raise SchemaMismatchError(f"a batch cannot be read in the reader schema: {listed}")
    fields, columns = [], []
    for i, f in enumerate(batch.schema):
        if f.name in RESERVED_COLUMNS:
            fields.append(f)
            columns.append(batch.column(i))
    for r in reader:
        if r.name in index:
            columns.append(_project(batch.column(index[r.name]), r))
        else:
            columns.append(_missing(r, batch.num_rows))
        fields.append(r)
    return pa.RecordBatch.from_arrays(columns, schema=pa.schema(fields, metadata=reader.metadata))


def _missing(field: pa.Field, n: int) -> pa.Array:
    """A column for a field the writer did not have: its default n times, else n nulls."""
    default = field_default(field)
    if default is None or not default.is_valid:
        return pa.nulls(n, field.type)
    return pa.repeat(default, n)


def _project(array: pa.Array, reader: pa.Field) -> pa.Array:
    """``array`` (already checked readable as ``reader``) in ``reader``'s type."""
    typ = reader.type
    if array.type.equals(typ):
        return array  # nothing to change: the very same buffers
    if pa.types.is_struct(typ):
        return _project_struct(array, typ)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return _project_list(array, typ)
    if pa.types.is_map(typ):
        return _project_map(array, typ)
    # A safe widening (schema_rules.WIDENINGS): every value has an exact image, safe=True is a guard.
    return array.cast(typ, safe=True)


def _mask(array: pa.Array) -> pa.Array | None:
    """The parent's own nulls for rebuilding a nested array (None when it has none)."""
    return array.is_null() if array.null_count else None


def _project_struct(array: pa.StructArray, typ: pa.StructType) -> pa.Array:
    writer_names = [array.type.field(i).name for i in range(array.type.num_fields)]
    children = []
    for r in typ:
        if r.name in writer_names:
            # .field() is the child as seen through the parent's offset and length.
            children.append(_project(array.field(writer_names.index(r.name)), r))
        else:
            children.append(_missing(r, len(array)))
    return pa.StructArray.from_arrays(children, fields=list(typ), mask=_mask(array))


def _project_list(array: pa.Array, typ: pa.DataType) -> pa.Array:
    # .offsets honours a slice of the list; .values is the whole child, which offsets index into.
    values = _project(array.values, typ.value_field)
    offsets = array.offsets
    if pa.types.is_large_list(typ):
        return pa.LargeListArray.from_arrays(offsets.cast(pa.int64()), values, type=typ, mask=_mask(array))
    return pa.ListArray.from_arrays(offsets, values, type=typ, mask=_mask(array))


def _project_map(array: pa.MapArray, typ: pa.MapType) -> pa.Array:
    keys = _project(array.keys, typ.key_field)
    items = _project(array.items, typ.item_field)
    # MapArray.from_arrays refuses a mask beside sliced offsets; rebuilding around the map's own
    # validity and offsets buffers (and its offset) needs neither a mask nor a copy of them.
    entries = pa.StructArray.from_arrays([keys, items], fields=[typ.key_field, typ.item_field])
    return pa.Array.from_buffers(typ, len(array), array.buffers()[:2], null_count=array.null_count,
                                 offset=array.offset, children=[entries])
