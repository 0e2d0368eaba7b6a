"""The value schema versions of a typed topic, as :class:`~.metadata.TopicMetadata` keeps them.

Layout, per topic in the metadata document (``__cluster_metadata.json``):

- ``schema_versions_b64``: every value schema version, oldest first, each the base64 of
  ``schema.serialize()`` (an Arrow IPC schema message); version ``n`` is at index ``n - 1``.
  Versions are only ever appended: never removed, replaced or renumbered.
- ``schema_registered_ms``: when each version was registered (ms since the epoch), same indexes.
- ``value_schema_b64``: always equal to the latest version's, so every reader of
  ``meta.value_schema`` sees the latest schema.

A file written before versions existed has ``value_schema_b64`` and no list: it loads as
version 1, registered at the topic's ``created_ms`` (:func:`upgrade`). An untyped topic has
no versions at all.

A new version (:func:`next_version`) must pass the topic's ``schema.compatibility`` mode
against the versions before it (coordinator/schema_compat.py) and be a valid value schema
(partitions.records.log_schema). One equal to the latest, field metadata included, is not a
new version (Confluent Schema Registry answers the existing one); one equal to an older
version is registered again as a new version, if the mode allows it (Schema Registry would
answer the older version: here a topic can go back to an earlier schema as its latest).
"""

from __future__ import annotations

import base64
from functools import lru_cache

import pyarrow as pa

from ..errors import ConfigError, UnknownSchemaVersionError
from ..messages import SchemaVersionInfo
from .schema_compat import ensure_compatible

__all__ = ["encode_schema", "decode_schema", "upgrade", "schema_for", "decode_all", "next_version",
           "append_version", "version_infos"]


def encode_schema(schema: pa.Schema | None) -> str | None:
    """base64 text of ``schema.serialize()``; None for None (an untyped topic)."""
    if schema is None:
        return None
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


@lru_cache(maxsize=256)
def decode_schema(b64: str) -> pa.Schema:
    """The schema :func:`encode_schema` wrote. Cached: readers decode the same few versions
    again and again (a pa.Schema is immutable, so one object is shared)."""
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(b64)))


def upgrade(meta) -> None:
    """Fill the version lists of a topic loaded from a file written before them (version 1 is
    its schema, registered when the topic was created), and keep ``value_schema_b64`` the latest."""
    if meta.value_schema_b64 is not None and not meta.schema_versions_b64:
        meta.schema_versions_b64 = [meta.value_schema_b64]
    missing = len(meta.schema_versions_b64) - len(meta.schema_registered_ms)
    if missing > 0:
        meta.schema_registered_ms = list(meta.schema_registered_ms) + [meta.created_ms] * missing
    if meta.schema_versions_b64:
        meta.value_schema_b64 = meta.schema_versions_b64[-1]


def schema_for(meta, version: int) -> pa.Schema:
    """The value schema of ``version`` (1 = oldest); UnknownSchemaVersionError naming the
    versions the topic has otherwise."""
    count = len(meta.schema_versions_b64)
    if isinstance(version, int) and not isinstance(version, bool) and 1 <= version <= count:
        return decode_schema(meta.schema_versions_b64[version - 1])
    have = tuple(range(1, count + 1))
    where = (f"topic {meta.name!r} has value schema versions 1..{count}" if count else
             f"topic {meta.name!r} is untyped (bytes values): it has no value schema versions")
    raise UnknownSchemaVersionError(f"{where}; there is no version {version!r}", version=version, versions=have)


def decode_all(meta) -> dict[int, pa.Schema]:
    """Every version number -> its schema, oldest first (empty for an untyped topic)."""
    return {n: decode_schema(b64) for n, b64 in enumerate(meta.schema_versions_b64, start=1)}


def version_infos(meta) -> list[SchemaVersionInfo]:
    """Every version as ``(version, schema bytes, registered_ms)``, oldest first (what the
    coordinator answers: bytes cross Ray without pickling Arrow objects)."""
    return [SchemaVersionInfo(n, base64.b64decode(b64), ms)
            for n, (b64, ms) in enumerate(zip(meta.schema_versions_b64, meta.schema_registered_ms), start=1)]


def next_version(meta, new_schema: pa.Schema) -> str | None:
    """The encoded ``new_schema`` to append as the topic's next version, or None when it equals
    the latest (nothing to register). Raises, with nothing changed: ConfigError for an untyped
    topic or a non-schema, IncompatibleSchemaError (every offending field) when the topic's
    ``schema.compatibility`` refuses it, SchemaMismatchError for a reserved column name."""
    if not isinstance(new_schema, pa.Schema):
        raise ConfigError(f"evolve_schema needs a pyarrow.Schema, got {type(new_schema).__name__}")
    if not meta.schema_versions_b64:
        raise ConfigError(
            f"topic {meta.name!r} is untyped (its values are bytes), so it has no value schema to evolve; "
            "create a typed topic instead: Admin().create_topic(name, schema=pa.schema([...])) "
            "(`rayka topics create NAME --schema NAME:TYPE,...`)")
    previous = [decode_schema(b64) for b64 in meta.schema_versions_b64]
    if new_schema.equals(previous[-1], check_metadata=True):
        return None
    ensure_compatible(new_schema, previous, meta.config.get("schema.compatibility", "BACKWARD"), topic=meta.name)
    from ..partitions.records import log_schema

    log_schema(new_schema)  # the reserved columns, as create_topic checks them
    return encode_schema(new_schema)


def append_version(meta, encoded: str, registered_ms: int):
    """Append ``encoded`` as the topic's latest version; returns the function that undoes it
    (for a save that failed)."""
    old = (meta.value_schema_b64, meta.schema_versions_b64, meta.schema_registered_ms)
    # New lists rather than appends: a reader holding the old ones sees a consistent old state.
    meta.schema_versions_b64 = list(old[1]) + [encoded]
    meta.schema_registered_ms = list(old[2]) + [registered_ms]
    meta.value_schema_b64 = encoded

    def undo():
        meta.value_schema_b64, meta.schema_versions_b64, meta.schema_registered_ms = old

    return undo
