"""Compatibility of a typed topic's new value schema with its earlier versions.

The modes and their meanings are Confluent Schema Registry's (the topic config
``schema.compatibility``, case-insensitive, default BACKWARD). "Reads" is decided field by
field by partitions/schema_rules.py, the same rules by which a stored batch is projected into
a reader's schema (partitions/schema_project.py)::

    mode                 the new schema (version n+1) must ...
    BACKWARD             read data written under version n          (upgrade consumers first)
    BACKWARD_TRANSITIVE  read data written under every version 1..n
    FORWARD              be read by consumers still on version n     (upgrade producers first)
    FORWARD_TRANSITIVE   be read by consumers on every version 1..n
    FULL                 both, against version n
    FULL_TRANSITIVE      both, against every version 1..n
    NONE                 nothing (only be a valid schema on its own)

Versions are numbered from 1, oldest first. In every mode the new schema must be valid on
its own (unique field names, no value field named like a reserved column, usable defaults);
such problems carry ``version=None``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pyarrow as pa

from ..errors import ConfigError, IncompatibleSchemaError
from ..partitions.records import RESERVED_COLUMNS
from ..partitions.schema_rules import DEFAULT_METADATA_KEY, read_issues, schema_issues

__all__ = [
    "DEFAULT_COMPATIBILITY",
    "CompatibilityMode",
    "Incompatibility",
    "check_compatible",
    "ensure_compatible",
    "parse_mode",
]


class CompatibilityMode(str, Enum):
    """A ``schema.compatibility`` mode; see the module docstring for each one's meaning."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @property
    def transitive(self) -> bool:
        """Checked against every earlier version, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """The new schema must read data of the earlier version(s)."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Consumers on the earlier version(s) must read data of the new schema."""
        return self.value.startswith(("FORWARD", "FULL"))


#: Confluent Schema Registry's default, and rayka's.
DEFAULT_COMPATIBILITY = CompatibilityMode.BACKWARD


def parse_mode(mode: str | CompatibilityMode) -> CompatibilityMode:
    """The mode named by ``mode``, any case; ConfigError naming the valid modes otherwise."""
    if isinstance(mode, CompatibilityMode):
        return mode
    if isinstance(mode, str):
        try:
            return CompatibilityMode(mode.upper())
        except ValueError:
            pass
    valid = ", ".join(m.value for m in CompatibilityMode)
    raise ConfigError(f"schema.compatibility {mode!r} is not a compatibility mode; use one of {valid} "
                      "(any case)")


#: Incompatibility.direction values.
BACKWARD_DIRECTION = "backward"  # the new schema reading data written under ``version``
FORWARD_DIRECTION = "forward"    # version ``version`` reading data written under the new schema
SCHEMA_DIRECTION = "schema"      # the new schema on its own (version is None)


@dataclass(frozen=True)
class Incompatibility:
    """One reason the new schema is refused.

    ``field`` is the field's path (``a.b`` inside struct ``a``, ``a[]`` list items,
    ``m{key}``/``m{value}`` map keys/values); ``version`` is the earlier version it conflicts
    with (1 = oldest), None for a problem of the new schema alone; ``reason`` says why;
    ``direction`` is which way the read fails: ``"backward"`` (the new schema reading data of
    ``version``), ``"forward"`` (``version`` reading data of the new schema) or ``"schema"``.
    """

    field: str
    version: int | None
    reason: str
    direction: str = BACKWARD_DIRECTION

    def describe(self) -> str:
        """One line for an error message."""
        if self.version is None:
            return f"field {self.field!r}: {self.reason}"
        who = (f"the new schema reading data of version {self.version}" if self.direction == BACKWARD_DIRECTION
               else f"version {self.version} reading data of the new schema")
        return f"field {self.field!r} ({who}): {self.reason}"


def check_compatible(new: pa.Schema, previous: list[pa.Schema], mode: str | CompatibilityMode) -> list[Incompatibility]:
    """Every reason ``new`` may not follow ``previous`` (oldest first) under ``mode``; empty
    when it may. ``mode`` is validated (ConfigError) even when there is no earlier version."""
    mode = parse_mode(mode)
    found = _own_issues(new)
    if mode is CompatibilityMode.NONE or not previous:
        return found
    first = 1 if mode.transitive else len(previous)
    for version in range(first, len(previous) + 1):
        old = previous[version - 1]
        if mode.backward:
            found += [Incompatibility(i.path, version, i.reason, BACKWARD_DIRECTION) for i in read_issues(old, new)]
        if mode.forward:
            found += [Incompatibility(i.path, version, i.reason, FORWARD_DIRECTION) for i in read_issues(new, old)]
    return found


def ensure_compatible(new: pa.Schema, previous: list[pa.Schema], mode: str | CompatibilityMode, *,
                      topic: str | None = None) -> None:
    """Raise IncompatibleSchemaError, listing every offending field, why, and the mode, unless
    ``new`` may follow ``previous`` under ``mode`` (see :func:`check_compatible`)."""
    mode = parse_mode(mode)
    found = check_compatible(new, previous, mode)
    if not found:
        return
    where = f"topic {topic!r}" if topic else "the topic"
    lines = "\n".join("  - " + i.describe() for i in found)
    fields = sorted({i.field for i in found})
    raise IncompatibleSchemaError(
        f"the new schema (version {len(previous) + 1}) of {where} is not {mode.value} compatible: "
        f"{len(found)} problem(s) in field(s) {', '.join(map(repr, fields))}:\n{lines}\n"
        f"Make added fields nullable or give them a default (field metadata {DEFAULT_METADATA_KEY!r}, JSON), "
        "change types only by safe widening, or choose another schema.compatibility "
        "(NONE checks nothing).",
        mode=mode.value, incompatibilities=tuple(found),
    )


def _own_issues(new: pa.Schema) -> list[Incompatibility]:
    found = [Incompatibility(f.name, None, f"clashes with rayka's reserved column of that name "
                                           f"{RESERVED_COLUMNS}; rename it", SCHEMA_DIRECTION)
             for f in new if f.name in RESERVED_COLUMNS]
    return found + [Incompatibility(i.path, None, i.reason, SCHEMA_DIRECTION) for i in schema_issues(new)]
