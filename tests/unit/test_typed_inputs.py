"""Typed topics' inputs without Ray: rows from dicts, dataclasses and pydantic models, tables from
every kind send_table takes, each accepted by the partition's batch check, and refusals."""

from __future__ import annotations

import dataclasses

import pandas as pd
import polars as pl
import pyarrow as pa
import pydantic
import pytest

from rayka.clients.serde import check_row, table_from
from rayka.clients.typed_inputs import as_row
from rayka.errors import SchemaMismatchError
from rayka.partitions.records import log_schema, prepare_batch
from typed_rows import AT, SCHEMA, Model, Row  # shared with the integration input tests


def _dicts(k=3):
    return [{"name": f"r{i}", "n": i, "score": i / 2, "ok": i % 2 == 0, "at": AT} for i in range(k)]


def _stored(table):
    batch = prepare_batch(table, log_schema(SCHEMA), now_ms=0, max_message_bytes=1 << 20)
    return batch.select(SCHEMA.names).to_pylist()


def test_rows_of_dataclasses_and_models_are_their_fields():
    d = _dicts(1)[0]
    assert as_row(Row(**d)) == d
    assert as_row(Model(**d)) == d
    assert check_row(as_row(Row(**d)), SCHEMA, "t") == check_row(d, SCHEMA, "t")


def test_dataclass_fields_are_not_deep_copied():
    @dataclasses.dataclass
    class Holder:
        items: list

    items = [1, 2]
    assert as_row(Holder(items))["items"] is items


@pytest.mark.parametrize("kind", ["table", "batch", "pandas", "polars", "dict", "dicts", "dataclasses", "models"])
def test_every_input_kind_reaches_the_stored_batch_unchanged(kind):
    rows = _dicts()
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    data = {
        "table": table,
        "batch": table.to_batches()[0],
        "pandas": table.to_pandas(),
        "polars": pl.from_arrow(table),
        "dict": table.to_pydict(),
        "dicts": rows,
        "dataclasses": [Row(**r) for r in rows],
        "models": [Model(**r) for r in rows],
    }[kind]
    assert _stored(table_from(data, SCHEMA, "t")) == rows


def test_a_row_that_does_not_fit_names_row_column_type_and_value():
    rows = [Row(**r) for r in _dicts()]
    rows[2].n = "seven"
    with pytest.raises(SchemaMismatchError, match=r"row 2: column 'n' of topic 't' is int64; str 'seven'"):
        table_from(rows, SCHEMA, "t")
    bad = _dicts()
    bad[1]["n"] = 1.5
    with pytest.raises(SchemaMismatchError, match="row 1: .*lose its fraction"):
        table_from(bad, SCHEMA, "t")


def test_a_pandas_column_of_the_wrong_type_is_refused_naming_it():
    df = pd.DataFrame({"name": ["a"], "n": ["x"], "score": [1.0], "ok": [True], "at": [AT]})
    with pytest.raises(SchemaMismatchError, match="'n'"):
        _stored(table_from(df, SCHEMA, "t"))


def test_a_table_column_that_does_not_cast_names_the_first_value():
    from rayka.clients.serde import explain_mismatch

    table = pa.Table.from_pylist(_dicts(), schema=SCHEMA).set_column(1, "n", pa.array(["1", "2", "x"]))
    with pytest.raises(SchemaMismatchError) as info:
        _stored(table)
    err = explain_mismatch(table, SCHEMA, info.value)
    assert "'n'" in str(err) and "int64" in str(err) and "row 2: str 'x'" in str(err)


def test_a_model_with_an_unknown_field_is_refused():
    class Other(pydantic.BaseModel):
        name: str
        extra: int

    with pytest.raises(SchemaMismatchError, match="'extra'"):
        check_row(as_row(Other(name="a", extra=1)), SCHEMA, "t")
