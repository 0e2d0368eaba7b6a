"""Projecting stored batches of older schema versions into a reader's schema
(partitions/schema_project.py): what changes is cast or filled, what does not is not copied."""

import json

import pyarrow as pa
import pytest

from rayka.coordinator.schema_compat import check_compatible
from rayka.errors import SchemaMismatchError
from rayka.partitions.records import RESERVED_COLUMNS, log_schema, prepare_batch
from rayka.partitions.schema_project import project_batch
from rayka.partitions.schema_rules import DEFAULT_METADATA_KEY, WIDENINGS


def f(name, typ, nullable=True, default=...):
    meta = None if default is ... else {DEFAULT_METADATA_KEY: json.dumps(default).encode()}
    return pa.field(name, typ, nullable=nullable, metadata=meta)


def stored(rows: dict, value_schema: pa.Schema) -> pa.RecordBatch:
    """A batch in the stored layout of ``value_schema``, through an IPC stream and back, as a
    segment holds it (so its buffers are the ones a read maps)."""
    produced = pa.RecordBatch.from_pydict(rows)
    b = prepare_batch(produced, log_schema(value_schema), now_ms=1_000, max_message_bytes=1 << 20)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, b.schema) as w:
        w.write_batch(b)
    return pa.ipc.open_stream(sink.getvalue()).read_next_batch()


def addresses(array: pa.Array) -> list:
    return [None if b is None else b.address for b in array.buffers()]


def same_buffers(a: pa.Array, b: pa.Array) -> bool:
    return addresses(a) == addresses(b) and a.offset == b.offset and len(a) == len(b)


# Three versions of one topic, each BACKWARD compatible with all before it.
V1 = pa.schema([f("id", pa.int32(), nullable=False), f("name", pa.string()), f("score", pa.float32()),
                f("legacy", pa.binary())])
V2 = pa.schema([f("id", pa.int64(), nullable=False), f("name", pa.string()), f("score", pa.float32()),
                f("country", pa.string())])
V3 = pa.schema([f("score", pa.float64()), f("id", pa.int64(), nullable=False), f("name", pa.large_string()),
                f("country", pa.string()), f("tier", pa.int8(), nullable=False, default=1)],
               metadata={b"rayka.schema_version": b"3"})


def test_the_three_versions_are_backward_transitive():
    assert check_compatible(V3, [V1, V2], "BACKWARD_TRANSITIVE") == []


def test_batches_of_three_versions_read_in_the_newest():
    b1 = stored({"id": [1, 2], "name": ["a", None], "score": [0.5, None], "legacy": [b"x", b"y"]}, V1)
    b2 = stored({"id": [3], "name": ["c"], "score": [1.5], "country": ["se"]}, V2)
    b3 = stored({"score": [2.5], "id": [4], "name": ["d"], "country": [None], "tier": [3]}, V3)
    # A segment spanning three versions, read batch by batch: one table in the reader's schema.
    table = pa.Table.from_batches([project_batch(b, V3) for b in (b1, b2, b3)])
    assert table.schema.names == list(RESERVED_COLUMNS) + V3.names
    assert table.schema.metadata == V3.metadata
    assert table.select(V3.names).to_pylist() == [
        {"score": 0.5, "id": 1, "name": "a", "country": None, "tier": 1},
        {"score": None, "id": 2, "name": None, "country": None, "tier": 1},
        {"score": 1.5, "id": 3, "name": "c", "country": "se", "tier": 1},
        {"score": 2.5, "id": 4, "name": "d", "country": None, "tier": 3},
    ]
    assert [table.schema.field(n).type for n in V3.names] == [fld.type for fld in V3]


def test_reserved_columns_stay_first_and_are_not_copied():
    b1 = stored({"id": [1, 2], "name": ["a", "b"], "score": [0.5, 1.0], "legacy": [None, b"y"]}, V1)
    out = project_batch(b1, V3)
    for name in RESERVED_COLUMNS:
        assert out.schema.field(name) == b1.schema.field(name)
        assert same_buffers(out.column(name), b1.column(name))


def test_an_unchanged_column_shares_its_buffers_and_a_changed_one_is_cast():
    b2 = stored({"id": [3, 4], "name": ["c", "d"], "score": [1.5, 2.0], "country": ["se", None]}, V2)
    out = project_batch(b2, V3)
    assert same_buffers(out.column("country"), b2.column("country"))
    assert not same_buffers(out.column("score"), b2.column("score"))
    assert out.column("name").type == pa.large_string()


def test_the_same_schema_copies_nothing():
    b2 = stored({"id": [3], "name": ["c"], "score": [1.5], "country": ["se"]}, V2)
    out = project_batch(b2, V2)
    assert out.schema.names == b2.schema.names
    for i in range(b2.num_columns):
        assert same_buffers(out.column(i), b2.column(i))


def test_added_fields_are_nulls_or_their_default_and_removed_ones_are_dropped():
    b1 = stored({"id": [1, 2, 3], "name": ["a", "b", "c"], "score": [1.0, 2.0, 3.0], "legacy": [b"", b"", b""]}, V1)
    reader = pa.schema([f("id", pa.int32(), nullable=False), f("note", pa.string()),
                        f("label", pa.string(), nullable=False, default="n/a"),
                        f("maybe", pa.float64(), default=None)])
    out = project_batch(b1, reader)
    assert out.schema.names == list(RESERVED_COLUMNS) + reader.names
    assert out.column("note").to_pylist() == [None] * 3 and out.column("note").type == pa.string()
    assert out.column("label").to_pylist() == ["n/a"] * 3
    assert out.column("maybe").null_count == 3
    assert out.schema.field("label").metadata == {DEFAULT_METADATA_KEY: b'"n/a"'}


def test_value_only_batches_project_too():
    batch = pa.record_batch({"a": pa.array([1, 2], pa.int16())})
    out = project_batch(batch, pa.schema([f("a", pa.int64()), f("b", pa.bool_())]))
    assert out.to_pylist() == [{"a": 1, "b": None}, {"a": 2, "b": None}]


def test_a_struct_is_rebuilt_around_its_unchanged_children():
    old = pa.struct([f("x", pa.int32()), f("tag", pa.string())])
    new = pa.struct([f("tag", pa.string()), f("x", pa.int64()), f("z", pa.int8(), nullable=False, default=9)])
    values = pa.array([{"x": 1, "tag": "a"}, None, {"x": 3, "tag": None}], old)
    batch = pa.record_batch([values], names=["p"])
    out = project_batch(batch, pa.schema([f("p", new)])).column("p")
    out.validate(full=True)
    assert out.type == new
    assert out.to_pylist() == [{"tag": "a", "x": 1, "z": 9}, None, {"tag": None, "x": 3, "z": 9}]
    assert same_buffers(out.field("tag"), values.field("tag"))


def test_struct_list_and_map_projection_of_a_slice():
    point = pa.struct([f("x", pa.int32())])
    writer = pa.schema([f("l", pa.list_(pa.int32())), f("m", pa.map_(pa.string(), pa.int32())), f("p", point)])
    reader = pa.schema([f("l", pa.large_list(pa.int64())), f("m", pa.map_(pa.string(), pa.float64())),
                        f("p", pa.struct([f("x", pa.int64()), f("y", pa.string())]))])
    rows = {"l": [[1], None, [2, 3], []], "m": [[("a", 1)], [("b", 2)], None, [("c", 3), ("d", 4)]],
            "p": [{"x": 1}, {"x": 2}, None, {"x": 4}]}
    batch = pa.RecordBatch.from_pydict(rows, schema=writer).slice(1, 3)
    out = project_batch(batch, reader)
    out.validate(full=True)
    assert out.schema == reader
    assert out.column("l").to_pylist() == [None, [2, 3], []]
    assert out.column("m").to_pylist() == [[("b", 2.0)], None, [("c", 3.0), ("d", 4.0)]]
    assert out.column("p").to_pylist() == [{"x": 2, "y": None}, None, {"x": 4, "y": None}]


def test_what_cannot_be_read_is_refused_naming_every_field():
    b2 = stored({"id": [3], "name": ["c"], "score": [1.5], "country": ["se"]}, V2)
    reader = pa.schema([f("id", pa.int32(), nullable=False), f("score", pa.float32(), nullable=False),
                        f("tier", pa.int8(), nullable=False)])
    with pytest.raises(SchemaMismatchError) as info:
        project_batch(b2, reader)
    message = str(info.value)
    for name in ("'id'", "'score'", "'tier'"):
        assert name in message


def test_a_reader_naming_a_reserved_column_is_refused():
    b2 = stored({"id": [3], "name": ["c"], "score": [1.5], "country": ["se"]}, V2)
    with pytest.raises(SchemaMismatchError, match="reserved"):
        project_batch(b2, log_schema(V2))


def test_a_batch_with_a_value_column_twice_is_refused():
    batch = pa.RecordBatch.from_arrays([pa.array([1]), pa.array([2])], names=["a", "a"])
    with pytest.raises(SchemaMismatchError, match="more than once"):
        project_batch(batch, pa.schema([f("a", pa.int64())]))


@pytest.mark.parametrize("writer, reader", sorted(WIDENINGS, key=str), ids=str)
def test_every_widening_projects_to_the_same_values(writer, reader):
    values = pa.array([0, 1, None], pa.int8()).cast(writer) if writer not in (pa.string(), pa.binary()) \
        else pa.array(["a", None, ""], writer)
    out = project_batch(pa.record_batch([values], names=["x"]), pa.schema([f("x", reader)])).column("x")
    assert out.type == reader and out.cast(writer).equals(values)


@pytest.mark.parametrize("writer, reader", [(pa.int64(), pa.int32()), (pa.string(), pa.binary()),
                                            (pa.int64(), pa.float64()), (pa.float64(), pa.float32())], ids=str)
def test_what_compatibility_refuses_projection_refuses(writer, reader):
    batch = pa.record_batch([pa.array([1], pa.int8()).cast(writer)], names=["x"])
    with pytest.raises(SchemaMismatchError, match="'x' changes type"):
        project_batch(batch, pa.schema([f("x", reader)]))
