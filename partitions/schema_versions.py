"""The value-schema versions a partition log knows, and which one each segment was written under.

A typed topic's schema can evolve (``Admin.evolve_schema``: the coordinator numbers and keeps
every version). A segment file is one Arrow IPC stream, so it holds batches of one schema:
the log rolls to a new segment when a batch of another version arrives, and each segment's
schema message says its version. Version 1 is stored exactly as before versions existed (no
schema metadata), so older files read unchanged; version ``n >= 2`` carries the schema
metadata ``rayka.schema_version = n``. A stored batch's version is thus its segment's.

The versions are kept beside the segments in ``schemas.json`` (``{"versions": {n: base64
of the value schema}}``, rewritten atomically before the first batch of a new version is
written): Ray restarts a partition actor with the arguments it was first created with,
which do not name versions registered since, and a segment must never hold a schema the
log cannot name. An untyped topic has one "version", 0 (the binary ``value`` column).
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from ..coordinator.schema_versions import decode_schema, encode_schema
from ..errors import CorruptRecordError, LogOpenError, LogWriteError, SchemaMismatchError
from . import codec
from .atomic_file import atomic_write
from .records import log_schema
from .schema_rules import read_issues

__all__ = ["SCHEMAS_FILE", "VERSION_KEY", "SchemaSet", "stored_schema", "tagged_version", "tag"]

SCHEMAS_FILE = "schemas.json"
VERSION_KEY = b"rayka.schema_version"


def stored_schema(value_schema: pa.Schema | None, version: int) -> pa.Schema:
    """The log schema segments of ``version`` are written in (see the module docstring)."""
    schema = log_schema(value_schema)
    return schema if version <= 1 else schema.with_metadata({VERSION_KEY: str(version).encode()})


def tagged_version(schema: pa.Schema) -> int | None:
    """The version a producer tagged its batch's schema with (:func:`tag`), or None (untagged:
    the latest the partition knows)."""
    metadata = schema.metadata
    if not metadata or VERSION_KEY not in metadata:
        return None
    try:
        return int(metadata[VERSION_KEY])
    except ValueError:
        raise SchemaMismatchError(f"batch schema metadata {VERSION_KEY.decode()}={metadata[VERSION_KEY]!r} "
                                  "is not a version number") from None


def tag(batch, version: int | None):
    """``batch`` (a RecordBatch or Table) with its schema tagged as written under ``version``
    (no copy of the data); None or 0 leaves it as it is."""
    if not version:
        return batch
    metadata = dict(batch.schema.metadata or {})
    metadata[VERSION_KEY] = str(version).encode()
    return batch.replace_schema_metadata(metadata)


class SchemaSet:
    """Version -> stored schema (and its schema message) of one partition log. Not thread-safe:
    the log changes it under its lock; readers only look versions up (dict reads)."""

    def __init__(self, value_schemas: dict[int, pa.Schema | None]):
        if not value_schemas:
            raise ValueError("a SchemaSet needs at least one version")
        self._value: dict[int, pa.Schema | None] = {}
        self._schema: dict[int, pa.Schema] = {}
        self._bytes: dict[int, bytes] = {}
        self._by_bytes: dict[bytes, int] = {}
        self._read_problems: dict[tuple[int, int], str | None] = {}
        self._serialized: dict[int, bytes | None] = {}
        for version, schema in sorted(value_schemas.items()):
            self._put(version, schema)

    def _put(self, version: int, value_schema: pa.Schema | None) -> None:
        schema = stored_schema(value_schema, version)
        data = codec.schema_message(schema)
        self._value[version], self._schema[version], self._bytes[version] = value_schema, schema, data
        self._by_bytes[data] = version

    # -- looking up --------------------------------------------------------------------------

    @property
    def latest(self) -> int:
        """The newest version known."""
        return max(self._schema)

    @property
    def versions(self) -> list[int]:
        """Every version known, oldest first."""
        return sorted(self._schema)

    def __contains__(self, version: int) -> bool:
        return version in self._schema

    def schema(self, version: int) -> pa.Schema:
        """The stored (log) schema of ``version``."""
        return self._schema[version]

    def value_schema(self, version: int) -> pa.Schema | None:
        """The value schema of ``version`` as registered (None: an untyped topic's version 0)."""
        return self._value[version]

    def serialized(self, version: int) -> bytes | None:
        """``value_schema(version).serialize()`` as bytes (kept: a leader sends it to followers)."""
        if version not in self._serialized:
            value = self._value[version]
            self._serialized[version] = None if value is None else value.serialize().to_pybytes()
        return self._serialized[version]

    def read_problem(self, writer: int, reader: int) -> str | None:
        """Why batches of version ``writer`` cannot be read in version ``reader`` (each field and
        why, schema_rules.py), or None when they can; kept, as versions never change."""
        key = (writer, reader)
        if key not in self._read_problems:
            w, r = self._value[writer], self._value[reader]
            issues = [] if writer == reader or (w is None and r is None) else \
                read_issues(list(w or []), r or pa.schema([]))
            self._read_problems[key] = "; ".join(f"{i.path!r} {i.reason}" for i in issues) or None
        return self._read_problems[key]

    def message(self, version: int) -> bytes:
        """The schema message segments of ``version`` start with."""
        return self._bytes[version]

    def version_of(self, schema_bytes: bytes) -> int:
        """The version of a segment that starts with ``schema_bytes`` (one of :meth:`message`)."""
        return self._by_bytes[schema_bytes]

    def check(self, version: int | None) -> int:
        """``version`` (None: the latest) if the log knows it, else SchemaMismatchError."""
        if version is None:
            return self.latest
        if version not in self._schema:
            raise SchemaMismatchError(
                f"schema version {version!r} is unknown to this partition (it knows {self.versions}); "
                "refresh the topic's metadata, or register the schema with Admin.evolve_schema")
        return version

    def for_file(self, path: Path) -> bytes:
        """The schema message the segment file at ``path`` was written with: the known one it
        starts with. A damaged start (a flipped or torn schema message) is told only by its
        batches: the one version under whose schema the first batch that passes its CRC decodes
        and validates in full (recovery.py then writes that message back). A file too short to
        hold a batch takes the latest (nothing is lost by rewriting it). When the batches fit no
        version, or several (versions whose columns are laid out alike), CorruptRecordError: a
        guess could serve one field's values as another's."""
        try:
            with open(path, "rb") as f:
                head = f.read(max(len(b) for b in self._bytes.values()))
        except OSError:
            head = b""
        for message in sorted(self._bytes.values(), key=len, reverse=True):
            if head.startswith(message):
                return message
        try:
            data = path.read_bytes()  # damaged: only now is the whole file read
        except OSError:
            data = head
        fits, holds_batches = [], False
        for version, message in self._bytes.items():
            verdict = _first_batch_fits(data, message, self._schema[version])
            holds_batches |= verdict is not None
            if verdict:
                fits.append(version)
        if len(fits) == 1:
            return self._bytes[fits[0]]
        if not holds_batches:
            return self._bytes[self.latest]
        raise CorruptRecordError(
            f"segment {path} has a damaged schema message, and its batches "
            + (f"fit schema versions {sorted(fits)} alike" if fits else "fit no schema version this log knows")
            + ": its version cannot be told. Move the file aside or restore it from a backup (or from a replica)")

    def check_append(self, version: int | None, compatibility: str) -> int:
        """The version a batch tagged ``version`` is stored under (:meth:`check`). Under a
        ``schema.compatibility`` whose consumers read in the latest version (BACKWARD, FULL and
        their transitive forms), an older version the latest cannot read is refused
        (SchemaMismatchError): default consumers could not get past its batches."""
        version = self.check(version)
        latest = self.latest
        if version == latest or not compatibility.startswith(("BACKWARD", "FULL")):
            return version
        problem = self.read_problem(version, latest)
        if problem is not None:
            raise SchemaMismatchError(
                f"a batch of schema version {version} cannot be read in the topic's latest version {latest} "
                f"({problem}), which its consumers read in under {compatibility}: send it in a newer "
                "version (a Producer created now uses the latest)")
        return version

    def as_dict(self) -> dict[int, pa.Schema | None]:
        """Version -> value schema, for :func:`save`."""
        return {v: self._value[v] for v in self.versions}

    # -- learning versions ---------------------------------------------------------------------

    def add(self, value_schemas: dict[int, pa.Schema | None], directory: Path) -> list[int]:
        """Learn the versions not known yet, written to ``schemas.json`` in ``directory`` first
        (LogWriteError, nothing learnt, if that fails); the versions added. A known version
        given with another schema is a bug of the caller (ValueError): versions never change."""
        new = {}
        for version, schema in value_schemas.items():
            if version in self._value:
                if not _same(self._value[version], schema):
                    raise ValueError(f"schema version {version} is already known with another schema")
            else:
                new[version] = schema
        if not new:
            return []
        save(directory, {**self._value, **new})
        for version, schema in sorted(new.items()):
            self._put(version, schema)
        return sorted(new)


def _first_batch_fits(data: bytes, message: bytes, schema: pa.Schema) -> bool | None:
    """Whether the first batch of segment bytes ``data`` that passes its CRC, read as if the file
    started with ``message``, decodes under ``schema`` and validates in full; None if no batch
    passing its CRC starts where ``message`` would end (nothing to tell by)."""
    if len(data) <= len(message):
        return None
    buf = pa.py_buffer(data)
    try:
        for msg in codec.iter_messages(buf, len(message)):
            try:
                msg.verify()
            except CorruptRecordError:
                continue
            try:
                codec.decode(msg, schema).validate(full=True)
            except (CorruptRecordError, pa.ArrowException):
                return False
            return True
    except CorruptRecordError:
        pass  # framing broken past the first batches: judged by what came before
    return None


def _same(a: pa.Schema | None, b: pa.Schema | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a.equals(b, check_metadata=True))


def open_set(directory: Path, value_schema: pa.Schema | None,
             schema_versions: dict[int, pa.Schema] | None) -> tuple[SchemaSet, bool]:
    """A log's SchemaSet: the versions it is given (a typed topic's history; else ``value_schema``
    alone) over those kept in ``schemas.json`` (the coordinator's record wins: versions never
    change), and whether the file lacks some of them (the log saves it once it holds its lock)."""
    given = dict(schema_versions) if schema_versions else {0 if value_schema is None else 1: value_schema}
    kept = load(directory)
    schemas = SchemaSet({**kept, **given})
    return schemas, bool(set(given) - set(kept)) and len(schemas.versions) > 1


def load(directory: Path) -> dict[int, pa.Schema | None]:
    """The versions kept in ``directory``'s ``schemas.json`` (none if there is no file). A file
    that cannot be read is an error (LogOpenError naming it), never ignored: its versions may be
    the only record of what some segments hold."""
    path = Path(directory) / SCHEMAS_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
        return {int(v): None if s is None else decode_schema(s) for v, s in data["versions"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pa.ArrowException) as exc:
        cause = f"{type(exc).__name__}: {exc}"
        raise LogOpenError(
            f"partition log {directory} cannot be opened: {path} cannot be read ({cause}); move it aside (the "
            "topic's versions come from the coordinator; Admin.schema_history lists them)",
            directory=str(directory), cause=cause) from exc


def save(directory: Path, versions: dict[int, pa.Schema | None]) -> None:
    """Replace ``schemas.json`` with ``versions`` (atomic_file.py: LogWriteError, DiskFullError for a
    full disk, with the old file in place)."""
    path = Path(directory) / SCHEMAS_FILE
    data = json.dumps({"versions": {str(v): encode_schema(s) for v, s in sorted(versions.items())}}).encode()
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
    except OSError as exc:
        raise LogWriteError.from_os_error(exc, directory, f"writing schema versions {path}") from exc
