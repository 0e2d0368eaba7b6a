"""Schema compatibility of a typed topic's versions under Confluent Schema Registry's modes
(coordinator/schema_compat.py), on the shared read rules (partitions/schema_rules.py)."""

import json
import pickle

import pyarrow as pa
import pytest

from rayka.coordinator.schema_compat import (
    CompatibilityMode,
    Incompatibility,
    check_compatible,
    ensure_compatible,
    parse_mode,
)
from rayka.errors import ConfigError, IncompatibleSchemaError, SchemaMismatchError
from rayka.partitions.schema_rules import DEFAULT_METADATA_KEY, WIDENINGS, read_issues, widens


def f(name, typ, nullable=True, default=...):
    """A field; ``default`` (any JSON value) goes into its metadata."""
    meta = None if default is ... else {DEFAULT_METADATA_KEY: json.dumps(default).encode()}
    return pa.field(name, typ, nullable=nullable, metadata=meta)


def s(*fields):
    return pa.schema(list(fields))


def paths(found):
    return sorted(i.field if isinstance(i, Incompatibility) else i.path for i in found)


BASE = s(f("id", pa.int32(), nullable=False), f("name", pa.string()), f("score", pa.float32(), nullable=False))


# --- one change each mode allows and one it refuses -----------------------------------------

ALLOWED = {
    # Added nullable field and a widening: the new schema reads the old data.
    "BACKWARD": s(f("id", pa.int64(), nullable=False), f("name", pa.string()),
                  f("score", pa.float32(), nullable=False), f("country", pa.string())),
    # A nullable field removed and a type narrowed: old consumers read the new data (as nulls, widened).
    "FORWARD": s(f("id", pa.int16(), nullable=False), f("score", pa.float32(), nullable=False)),
    # An added nullable field: both ways (the old reader drops it).
    "FULL": s(f("id", pa.int32(), nullable=False), f("name", pa.string()),
              f("score", pa.float32(), nullable=False), f("country", pa.string())),
    # Anything that is a valid schema on its own.
    "NONE": s(f("id", pa.string()), f("other", pa.bool_(), nullable=False)),
}

REFUSED = {
    # An added non-nullable field without a default, and a narrowing.
    "BACKWARD": (s(f("id", pa.int16(), nullable=False), f("name", pa.string()),
                   f("score", pa.float32(), nullable=False), f("tier", pa.int8(), nullable=False)),
                 ["id", "tier"]),
    # A non-nullable field removed (old readers need it), and a widening the old reader cannot take.
    "FORWARD": (s(f("id", pa.int64(), nullable=False), f("name", pa.string())), ["id", "score"]),
    # A widening (forward fails) and a narrowing (backward fails).
    "FULL": (s(f("id", pa.int64(), nullable=False), f("name", pa.string()),
               f("score", pa.float16(), nullable=False)), ["id", "score"]),
    # Even NONE wants a valid schema: a reserved column name, a duplicate, an unusable default.
    "NONE": (s(f("offset", pa.int64()), f("a", pa.int8()), f("a", pa.int8()), f("d", pa.int8(), default="x")),
             ["a", "d", "offset"]),
}


@pytest.mark.parametrize("mode", sorted(ALLOWED))
def test_each_mode_allows_its_change(mode):
    assert check_compatible(ALLOWED[mode], [BASE], mode) == []
    ensure_compatible(ALLOWED[mode], [BASE], mode)  # does not raise


@pytest.mark.parametrize("mode", sorted(REFUSED))
def test_each_mode_refuses_its_change_naming_every_offending_field(mode):
    new, offending = REFUSED[mode]
    assert paths(check_compatible(new, [BASE], mode)) == offending
    with pytest.raises(IncompatibleSchemaError) as info:
        ensure_compatible(new, [BASE], mode, topic="clicks")
    message = str(info.value)
    assert mode in message and "'clicks'" in message and "version 2" in message
    for name in offending:
        assert f"field {name!r}" in message
    assert info.value.mode == mode
    assert paths(info.value.incompatibilities) == offending


def test_the_refused_changes_of_a_direction_are_refused_by_full_too():
    # FULL is BACKWARD and FORWARD at once.
    for mode in ("BACKWARD", "FORWARD"):
        new, offending = REFUSED[mode]
        assert set(offending) <= set(paths(check_compatible(new, [BASE], "FULL")))


def test_full_reports_each_direction_that_fails():
    found = check_compatible(REFUSED["FULL"][0], [BASE], "FULL")
    assert {(i.field, i.direction) for i in found} == {("id", "forward"), ("score", "backward")}
    assert all(i.version == 1 for i in found)


# --- transitive against the latest only, on a 3-version history -----------------------------

# Confluent's own example: v2 drops a field, v3 brings it back with another type.
V1 = s(f("a", pa.int64()), f("b", pa.string()))
V2 = s(f("b", pa.string()))
V3 = s(f("a", pa.string(), default="none"), f("b", pa.string()))


@pytest.mark.parametrize("mode", ["BACKWARD", "FORWARD", "FULL"])
def test_non_transitive_checks_the_latest_version_only(mode):
    assert check_compatible(V2, [V1], mode) == []
    assert check_compatible(V3, [V1, V2], mode) == []


@pytest.mark.parametrize("mode, directions", [
    ("BACKWARD_TRANSITIVE", {"backward"}),
    ("FORWARD_TRANSITIVE", {"forward"}),
    ("FULL_TRANSITIVE", {"backward", "forward"}),
])
def test_transitive_checks_every_version(mode, directions):
    found = check_compatible(V3, [V1, V2], mode)
    assert {(i.field, i.version) for i in found} == {("a", 1)}
    assert {i.direction for i in found} == directions
    with pytest.raises(IncompatibleSchemaError, match="version 1"):
        ensure_compatible(V3, [V1, V2], mode)


def test_no_earlier_version_is_always_compatible_but_the_schema_must_be_valid():
    assert check_compatible(V3, [], "FULL_TRANSITIVE") == []
    assert paths(check_compatible(s(f("key", pa.binary())), [], "BACKWARD")) == ["key"]


# --- modes ---------------------------------------------------------------------------------

def test_modes_are_case_insensitive():
    assert parse_mode("full_transitive") is CompatibilityMode.FULL_TRANSITIVE
    assert parse_mode("Backward") is CompatibilityMode.BACKWARD
    assert parse_mode(CompatibilityMode.NONE) is CompatibilityMode.NONE
    assert check_compatible(REFUSED["BACKWARD"][0], [BASE], "backward")


@pytest.mark.parametrize("bad", ["SIDEWAYS", "", "BACKWARD ", 3, None])
def test_an_unknown_mode_is_a_config_error_naming_the_valid_ones(bad):
    with pytest.raises(ConfigError, match="FULL_TRANSITIVE"):
        check_compatible(V1, [], bad)


def test_mode_properties():
    m = CompatibilityMode
    assert [x for x in m if x.transitive] == [m.BACKWARD_TRANSITIVE, m.FORWARD_TRANSITIVE, m.FULL_TRANSITIVE]
    assert not m.NONE.backward and not m.NONE.forward
    assert m.FULL.backward and m.FULL.forward and not m.FORWARD.backward


# --- the widening table --------------------------------------------------------------------

SAFE = [
    (pa.int8(), pa.int16()), (pa.int8(), pa.int64()), (pa.int16(), pa.int32()), (pa.int32(), pa.int64()),
    (pa.uint8(), pa.uint16()), (pa.uint32(), pa.uint64()), (pa.uint8(), pa.int16()), (pa.uint32(), pa.int64()),
    (pa.float16(), pa.float32()), (pa.float32(), pa.float64()), (pa.float16(), pa.float64()),
    (pa.int32(), pa.float64()), (pa.uint32(), pa.float64()), (pa.int8(), pa.float64()),
    (pa.string(), pa.large_string()), (pa.binary(), pa.large_binary()),
]
UNSAFE = [
    (pa.int64(), pa.int32()), (pa.int32(), pa.uint32()), (pa.int8(), pa.uint64()), (pa.uint32(), pa.int32()),
    (pa.uint64(), pa.int64()), (pa.int64(), pa.float64()), (pa.uint64(), pa.float64()),
    (pa.int32(), pa.float32()), (pa.float64(), pa.float32()), (pa.float32(), pa.int64()),
    (pa.large_string(), pa.string()), (pa.string(), pa.binary()), (pa.binary(), pa.string()),
    (pa.int32(), pa.string()), (pa.bool_(), pa.int8()), (pa.timestamp("s"), pa.timestamp("ms")),
    (pa.date32(), pa.date64()), (pa.decimal128(10, 2), pa.decimal128(20, 2)),
]


@pytest.mark.parametrize("writer, reader", SAFE, ids=str)
def test_safe_widenings_are_allowed(writer, reader):
    assert widens(writer, reader)
    assert read_issues(s(f("x", writer)), s(f("x", reader))) == []


@pytest.mark.parametrize("writer, reader", UNSAFE, ids=str)
def test_other_type_changes_are_refused_naming_both_types(writer, reader):
    assert not widens(writer, reader)
    [issue] = read_issues(s(f("x", writer)), s(f("x", reader)))
    assert issue.path == "x" and str(writer) in issue.reason and str(reader) in issue.reason


def _extremes(typ):
    if pa.types.is_integer(typ):
        bits = typ.bit_width
        lo, hi = (0, 2 ** bits - 1) if pa.types.is_unsigned_integer(typ) else (-2 ** (bits - 1), 2 ** (bits - 1) - 1)
        return pa.array([lo, hi, 1, None], typ)
    if pa.types.is_floating(typ):
        return pa.array([-65504.0, 65504.0, 0.5, None], pa.float32()).cast(typ)
    return pa.array(["", "é\x00x", None], typ)


@pytest.mark.parametrize("writer, reader", sorted(WIDENINGS, key=str), ids=str)
def test_every_widening_in_the_table_casts_without_loss(writer, reader):
    # The table is what projection relies on: a safe cast there and back gives the very values.
    values = _extremes(writer)
    wide = values.cast(reader, safe=True)
    assert wide.type == reader and wide.cast(writer, safe=True).equals(values)


# --- nullability, defaults, nesting --------------------------------------------------------

def test_nullable_may_not_become_non_nullable_but_the_reverse_is_fine():
    assert paths(read_issues(s(f("x", pa.int8())), s(f("x", pa.int8(), nullable=False)))) == ["x"]
    assert read_issues(s(f("x", pa.int8(), nullable=False)), s(f("x", pa.int8()))) == []


def test_an_added_non_nullable_field_needs_a_usable_default():
    old = s(f("x", pa.int8()))
    new = s(f("x", pa.int8()), f("y", pa.int32(), nullable=False, default=7))
    assert check_compatible(new, [old], "BACKWARD") == []
    for bad, why in [(None, "null"), ("seven", "does not fit"), (2 ** 40, "does not fit")]:
        new = s(f("x", pa.int8()), f("y", pa.int32(), nullable=False, default=bad))
        found = check_compatible(new, [old], "BACKWARD")
        assert "y" in paths(found) and any(why in i.reason for i in found)


def test_a_default_that_is_not_json_is_refused_in_every_mode():
    new = s(pa.field("x", pa.int8(), metadata={DEFAULT_METADATA_KEY: b"{nope"}))
    [issue] = check_compatible(new, [new], "NONE")
    assert issue == Incompatibility("x", None, issue.reason, "schema") and "not JSON" in issue.reason


def test_defaults_of_nested_types():
    point = pa.struct([("x", pa.int32()), ("y", pa.int32())])
    new = s(f("id", pa.int8()), f("p", point, nullable=False, default={"x": 1, "y": 2}),
            f("tags", pa.list_(pa.string()), nullable=False, default=["a"]))
    assert check_compatible(new, [s(f("id", pa.int8()))], "BACKWARD") == []


def test_structs_are_compared_field_by_field():
    old = s(f("s", pa.struct([f("a", pa.int32()), f("b", pa.string())])))
    ok = s(f("s", pa.struct([f("a", pa.int64()), f("c", pa.bool_())])))
    bad = s(f("s", pa.struct([f("a", pa.int16()), f("c", pa.bool_(), nullable=False)])))
    assert check_compatible(ok, [old], "BACKWARD") == []
    assert paths(check_compatible(bad, [old], "BACKWARD")) == ["s.a", "s.c"]


def test_lists_and_maps_are_compared_by_their_items():
    old = s(f("l", pa.list_(pa.int32())), f("m", pa.map_(pa.string(), pa.int32())))
    ok = s(f("l", pa.large_list(pa.int64())), f("m", pa.map_(pa.string(), pa.float64())))
    bad = s(f("l", pa.list_(pa.int16())), f("m", pa.map_(pa.binary(), pa.int32())))
    assert check_compatible(ok, [old], "BACKWARD") == []
    assert paths(check_compatible(bad, [old], "BACKWARD")) == ["l[]", "m{key}"]
    assert paths(check_compatible(old, [ok], "BACKWARD")) == ["l", "m{value}"]  # large_list -> list narrows


def test_a_nested_type_changing_kind_is_refused_with_a_reason():
    old = s(f("s", pa.struct([f("a", pa.int32())])))
    [issue] = check_compatible(s(f("s", pa.list_(pa.int32()))), [old], "BACKWARD")
    assert issue.field == "s" and "nested type" in issue.reason


def test_incompatible_schema_error_is_a_schema_mismatch_and_pickles_whole():
    with pytest.raises(SchemaMismatchError) as info:
        ensure_compatible(REFUSED["FULL"][0], [BASE], "full")
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is IncompatibleSchemaError and str(back) == str(info.value)
    assert back.mode == "FULL" and back.incompatibilities == info.value.incompatibilities


def test_a_fixed_size_list_is_read_only_unchanged():
    old = s(f("v", pa.list_(pa.int32(), 3)))
    assert check_compatible(old, [old], "FULL") == []
    [issue] = check_compatible(s(f("v", pa.list_(pa.int64(), 3))), [old], "BACKWARD")
    assert issue.field == "v" and "fixed-size list" in issue.reason
