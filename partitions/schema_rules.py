"""When data written under one Arrow schema can be read under another: the one rule set that
schema compatibility (coordinator/schema_compat.py) and batch projection
(partitions/schema_project.py) share, so that a change the coordinator accepts is exactly a
change every stored batch can be projected through.

A *reader* schema reads batches written under a *writer* schema when, field by field by
name (at the top level and inside structs, recursively):

- a field only the writer has is dropped;
- a field only the reader has is nullable (read as nulls) or carries a default in its field
  metadata under :data:`DEFAULT_METADATA_KEY` (read as that value);
- a field both have keeps its type or widens it safely (:func:`widens`; list, large_list,
  struct and map are compared recursively), and is not non-nullable in the reader while
  nullable in the writer (a null would have nowhere to go).

Field paths in issues: ``a.b`` for child ``b`` of struct ``a``, ``a[]`` for the items of list
``a``, ``m{key}`` and ``m{value}`` for a map's keys and values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from ..errors import SchemaMismatchError

__all__ = [
    "DEFAULT_METADATA_KEY",
    "FieldIssue",
    "WIDENINGS",
    "field_default",
    "read_issues",
    "schema_issues",
    "widens",
]

#: Field metadata key of a field's default: UTF-8 JSON text that ``pyarrow.scalar(value, type)``
#: accepts for the field's type (numbers, strings, booleans, lists for list types, objects for
#: structs; a binary field's default is therefore UTF-8 text). JSON ``null`` is a null default,
#: allowed only on a nullable field. A default fills a field that a batch's writer did not have;
#: it never replaces nulls that a writer wrote.
DEFAULT_METADATA_KEY = b"rayka.default"

_SIGNED = (pa.int8(), pa.int16(), pa.int32(), pa.int64())
_UNSIGNED = (pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())
_FLOATS = (pa.float16(), pa.float32(), pa.float64())


def _widening_pairs() -> frozenset[tuple[pa.DataType, pa.DataType]]:
    pairs = set()
    for ladder in (_SIGNED, _UNSIGNED, _FLOATS):
        pairs |= {(a, b) for i, a in enumerate(ladder) for b in ladder[i + 1:]}
    # An unsigned value fits a signed type of more bits, never one of the same bits.
    pairs |= {(u, s) for u in _UNSIGNED for s in _SIGNED if s.bit_width > u.bit_width}
    # float64's 53-bit mantissa holds every integer of up to 32 bits exactly; wider ones would round.
    pairs |= {(i, pa.float64()) for i in _SIGNED + _UNSIGNED if i.bit_width <= 32}
    pairs |= {(pa.string(), pa.large_string()), (pa.binary(), pa.large_binary())}
    return frozenset(pairs)


#: Every (writer type, reader type) pair of a safe widening of a primitive type; each value of
#: the writer type has exactly one value of the reader type, so the cast never fails or rounds.
WIDENINGS = _widening_pairs()


def widens(writer: pa.DataType, reader: pa.DataType) -> bool:
    """Whether a primitive ``writer`` type widens safely to ``reader`` (not equal types)."""
    return (writer, reader) in WIDENINGS


@dataclass(frozen=True)
class FieldIssue:
    """One field that cannot be read: its path (see the module docstring) and why."""

    path: str
    reason: str


def field_default(field: pa.Field) -> pa.Scalar | None:
    """The default of ``field`` from its metadata as a scalar of its type, or None if it has none.

    Raises SchemaMismatchError when the metadata is not JSON, does not fit the field's type, or is
    a null default on a non-nullable field.
    """
    meta = field.metadata or {}
    if DEFAULT_METADATA_KEY not in meta:
        return None
    text = meta[DEFAULT_METADATA_KEY]
    try:
        value = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SchemaMismatchError(f"default {text!r} of field {field.name!r} is not JSON ({exc})") from None
    if value is None and not field.nullable:
        raise SchemaMismatchError(f"default of non-nullable field {field.name!r} is null; give it a value")
    try:
        return pa.scalar(value, type=field.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
            OverflowError) as exc:
        raise SchemaMismatchError(
            f"default {text.decode('utf-8', 'replace')} of field {field.name!r} does not fit its type "
            f"{field.type} ({exc})"
        ) from None


def _children(typ: pa.DataType) -> list[tuple[str, pa.Field]]:
    """The nested fields of a type with their path suffixes (empty for a primitive)."""
    if pa.types.is_struct(typ):
        return [("." + typ.field(i).name, typ.field(i)) for i in range(typ.num_fields)]
    if pa.types.is_map(typ):
        return [("{key}", typ.key_field), ("{value}", typ.item_field)]
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_fixed_size_list(typ):
        return [("[]", typ.value_field)]
    return []


def schema_issues(fields) -> list[FieldIssue]:
    """What is wrong with a schema (or a list of fields) on its own, at any depth: two fields
    of one name in one struct (reading by name would be ambiguous) and defaults that are not
    valid (see :func:`field_default`)."""
    return _fields_issues(list(fields), "")


def _fields_issues(fields: list[pa.Field], prefix: str) -> list[FieldIssue]:
    issues, seen = [], set()
    for f in fields:
        path = prefix + f.name
        if f.name in seen:
            issues.append(FieldIssue(path, "appears twice; field names must be unique to be read by name"))
        seen.add(f.name)
        issues += _field_issues(f, path)
    return issues


def _field_issues(f: pa.Field, path: str) -> list[FieldIssue]:
    """The default of ``f`` and then its nested fields, ``path`` being ``f``'s own path."""
    issues = []
    try:
        field_default(f)
    except SchemaMismatchError as exc:
        issues.append(FieldIssue(path, str(exc)))
    if pa.types.is_struct(f.type):
        return issues + _fields_issues(list(f.type), path + ".")
    for suffix, child in _children(f.type):
        issues += _field_issues(child, path + suffix)
    return issues


def read_issues(writer, reader) -> list[FieldIssue]:
    """Every field of ``reader`` (a schema or a list of fields) that data written under
    ``writer`` cannot be read into, with why; empty when every batch of ``writer`` projects
    into ``reader`` (partitions/schema_project.py)."""
    return _read_fields(list(writer), list(reader), "")


def _read_fields(writer: list[pa.Field], reader: list[pa.Field], prefix: str) -> list[FieldIssue]:
    by_name = {f.name: f for f in writer}
    issues = []
    for r in reader:
        path = prefix + r.name
        w = by_name.get(r.name)
        if w is None:
            issues += _added_field(r, path)
        else:
            issues += _read_field(w, r, path)
    return issues


def _added_field(r: pa.Field, path: str) -> list[FieldIssue]:
    try:
        default = field_default(r)
    except SchemaMismatchError as exc:
        return [FieldIssue(path, f"is missing from the writer's data and its default is not usable: {exc}")]
    if default is None and not r.nullable:
        return [FieldIssue(path, "is missing from the writer's data, is not nullable and has no default "
                                 f"(make it nullable or give it field metadata {DEFAULT_METADATA_KEY!r})")]
    return []


def _read_field(w: pa.Field, r: pa.Field, path: str) -> list[FieldIssue]:
    issues = []
    if w.nullable and not r.nullable:
        issues.append(FieldIssue(path, "is nullable in the writer but not in the reader; "
                                       "a null written would have nowhere to go"))
    return issues + _read_type(w.type, r.type, path)


def _read_type(w: pa.DataType, r: pa.DataType, path: str) -> list[FieldIssue]:
    ws, rs = pa.types.is_struct(w), pa.types.is_struct(r)
    if ws and rs:
        return _read_fields(list(w), list(r), path + ".")
    if _is_var_list(w) and _is_var_list(r):
        # list -> large_list only widens the offsets: as safe as string -> large_string.
        if pa.types.is_large_list(w) and pa.types.is_list(r):
            return [FieldIssue(path, f"narrows {w} to {r}; only list -> large_list is allowed")]
        return _read_field(w.value_field, r.value_field, path + "[]")
    if pa.types.is_map(w) and pa.types.is_map(r):
        return (_read_field(w.key_field, r.key_field, path + "{key}")
                + _read_field(w.item_field, r.item_field, path + "{value}"))
    if w.equals(r) or widens(w, r):
        return []
    if pa.types.is_fixed_size_list(w) and pa.types.is_fixed_size_list(r):
        return [FieldIssue(path, f"changes type from {w} to {r}; a fixed-size list is read only unchanged")]
    if ws or rs or _children(w) or _children(r):
        return [FieldIssue(path, f"changes type from {w} to {r}; a nested type is read only as the "
                                 "same kind (struct, list/large_list, map) with readable children")]
    return [FieldIssue(path, f"changes type from {w} to {r}, which is not a safe widening "
                             "(int8->int16->int32->int64, uint to wider uint or int, float16->float32->"
                             "float64, int of <= 32 bits -> float64, string->large_string, "
                             "binary->large_binary)")]


def _is_var_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)
