"""User inputs of typed topics as what the producer batches: rows as dicts, bulk data as Tables.

A typed topic's ``send(value=...)`` takes a dict of its columns, a dataclass instance or a
pydantic model (their fields by name); ``send_table`` takes pyarrow Tables and RecordBatches,
pandas and Polars DataFrames, a dict of columns, or a list of rows (dicts, dataclasses, models).
pydantic is imported by nobody here: a model is recognised by its class's ``__pydantic_fields__``.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa

from rayka.errors import SchemaMismatchError

__all__ = ["as_row", "is_rows", "table_from_rows"]


def as_row(value):
    """``value`` as a dict of fields by name: a dict as it is; a dataclass instance by
    ``dataclasses.fields`` (shallow: nested values are kept, not copied as ``asdict`` would);
    a pydantic model by ``model_dump()`` (nested models become dicts, as struct columns need);
    anything else unchanged (check_row then refuses it)."""
    if type(value) is dict:
        return value
    cls = type(value)
    if getattr(cls, "__pydantic_fields__", None) is not None and hasattr(value, "model_dump"):
        return value.model_dump()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _nested(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return value


def _nested(item):
    # A dataclass or model inside a dataclass is a struct value: a dict for pyarrow.
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return as_row(item)
    if getattr(type(item), "__pydantic_fields__", None) is not None:
        return as_row(item)
    return item


def is_rows(data) -> bool:
    """A list or tuple of rows (dicts, dataclasses, models) rather than a table."""
    return isinstance(data, (list, tuple))


def table_from_rows(rows, value_schema: pa.Schema | None, topic: str, check_row) -> pa.Table:
    """A list of rows as a Table. Typed topic: each row is checked as ``send()`` checks it
    (SchemaMismatchError naming the row, the column, its type and what was found), then each
    column is converted as a batch of ``send()``s is. Untyped topic: the rows' keys are the
    columns (``value`` bytes, and optional ``key``, ``timestamp_ms``, ``headers``, ``partition``).
    ``check_row`` is serde.check_row (passed in: serde imports this module)."""
    rows = [as_row(r) for r in rows]
    if value_schema is None:
        return pa.Table.from_pylist(rows)
    for i, row in enumerate(rows):
        try:
            check_row(row, value_schema, topic)
        except (SchemaMismatchError, TypeError) as exc:
            raise type(exc)(f"row {i}: {exc}") from None
    return pa.table([pa.array([r.get(f.name) for r in rows], type=f.type) for f in value_schema],
                    schema=value_schema)
