"""Consumed records as text for the CLI: JSON lines, raw lines, an aligned table; and the
descriptions of topics and groups as JSON-able data (``--json`` of the listing commands).

JSON (:func:`record_json`): one object per record with ``topic``, ``partition``, ``offset``,
``timestamp_ms``, ``key``, ``headers`` and ``value`` (a typed topic's value is an object of its
columns). Bytes are printed as UTF-8 text where valid, else as base64, and then the field's path
(``key``, ``value``, ``value.COL``, ``headers.NAME``) is listed in the record's ``"base64"``
array, so rayka.clients.formats reads the line back to the same record. Times are ISO 8601,
decimals strings, NaN and infinities null. No Ray here: tested in-process.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math

import pyarrow as pa

__all__ = ["record_json", "raw_line", "TableWriter", "jsonable", "topic_description_json",
           "group_description_json", "schema_fields", "schema_version_json"]


# -- output -----------------------------------------------------------------------------------------


def _bytes_text(value: bytes, path: str, b64: list) -> str:
    try:
        return value.decode()
    except UnicodeDecodeError:
        b64.append(path)
        return base64.b64encode(value).decode()


def jsonable(value, path: str = "value", b64: list | None = None):
    """A Python value from Arrow as a JSON-able one: bytes as text (or base64, noting ``path``
    in ``b64``), times ISO 8601, decimals as strings, NaN/inf as null, maps as objects."""
    b64 = [] if b64 is None else b64
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _bytes_text(bytes(value), path, b64)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, dt.timedelta)):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, f"{path}.{k}", b64) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str) for x in value):
            return {k: jsonable(v, f"{path}.{k}", b64) for k, v in value}  # an Arrow map
        return [jsonable(v, path, b64) for v in value]
    return value


def record_json(rec) -> str:
    """A consumed Record as one line of JSON (see the module docstring)."""
    b64: list = []
    out = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset, "timestamp_ms": rec.timestamp_ms,
           "key": None if rec.key is None else jsonable(rec.key, "key", b64),
           "headers": None if rec.headers is None else {k: jsonable(v, f"headers.{k}", b64)
                                                        for k, v in rec.headers.items()},
           "value": jsonable(rec.value, "value", b64)}
    if b64:
        out["base64"] = b64
    return json.dumps(out, ensure_ascii=False, default=str)


def raw_line(rec, *, print_key: bool = False, print_offset: bool = False, sep: bytes = b"\t") -> bytes:
    """A Record as one raw line: [partition:offset SEP][key SEP]value; typed values as JSON."""
    parts = []
    if print_offset:
        parts.append(b"%d:%d" % (rec.partition, rec.offset))
    if print_key:
        parts.append(rec.key or b"")
    value = rec.value
    if isinstance(value, (bytes, bytearray)):
        parts.append(bytes(value))
    elif value is None:
        parts.append(b"")
    else:
        parts.append(json.dumps(jsonable(value), ensure_ascii=False, default=str).encode())
    return sep.join(parts) + b"\n"


class TableWriter:
    """Records as aligned text columns: the header and widths come from the first rows written
    (key and value cells wider than that, or than ``max_width``, are cut with ``…``), so the
    table streams."""

    def __init__(self, schema: pa.Schema | None, max_width: int = 40):
        self.columns = ["partition", "offset", "timestamp", "key"] + (["value"] if schema is None else schema.names)
        self.max_width = max_width
        self.widths: list[int] | None = None

    def _cells(self, rec) -> list[str]:
        ts = dt.datetime.fromtimestamp(rec.timestamp_ms / 1000, dt.timezone.utc)
        cells = [str(rec.partition), str(rec.offset), ts.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], _cell(rec.key)]
        if isinstance(rec.value, dict):
            cells += [_cell(rec.value.get(c)) for c in self.columns[4:]]
        else:
            cells.append(_cell(rec.value))
        return cells

    def lines(self, records: list) -> str:
        """The text of these records (after the header, the first time)."""
        rows = [self._cells(r) for r in records]
        if self.widths is None:
            # partition, offset and time are never cut; keys and values get at least 12 characters
            # (so short first values do not cut later ones) and are cut at max_width.
            self.widths = [max(len(c), max(len(r[i]) for r in rows)) if i < 3 else
                           max(len(c), min(self.max_width, max([12] + [len(r[i]) for r in rows])))
                           for i, c in enumerate(self.columns)]
            rows.insert(0, list(self.columns))
        out = []
        for row in rows:
            cells = [c if len(c) <= w else c[: w - 1] + "…" for c, w in zip(row, self.widths)]
            out.append("  ".join(c.ljust(w) for c, w in zip(cells, self.widths)).rstrip() + "\n")
        return "".join(out)


def _cell(value) -> str:
    if value is None:
        return "-"
    value = jsonable(value)
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


# -- descriptions (--json of the listing commands) ---------------------------------------------------


def topic_description_json(desc) -> dict:
    """A TopicDescription as JSON-able data."""
    schema = desc.value_schema
    return {
        "name": desc.name, "replication_factor": desc.replication_factor, "messages": desc.messages,
        "config": dict(desc.config), "schema_version": desc.schema_version,
        "value_schema": None if schema is None else [{"name": f.name, "type": str(f.type), "nullable": f.nullable}
                                                     for f in schema],
        "partitions": [{"partition": p.partition, "leader": p.leader, "log_start_offset": p.log_start_offset,
                        "log_end_offset": p.log_end_offset, "messages": p.log_end_offset - p.log_start_offset,
                        "size_bytes": p.size_bytes, "segments": p.segments,
                        "damaged_offsets": [list(r) for r in p.damaged_offsets],
                        "replicas": list(p.replica_ids), "replica_nodes": list(p.replicas),
                        "leader_replica": p.leader_replica, "isr": list(p.isr), "leader_epoch": p.leader_epoch,
                        "partition_epoch": p.partition_epoch, "under_replicated": p.under_replicated}
                       for p in desc.partitions],
    }


def group_description_json(desc) -> dict:
    """A GroupDescription as JSON-able data."""
    return {
        "group_id": desc.group_id, "state": desc.state, "protocol": desc.protocol, "generation": desc.generation,
        "members": [{"member_id": m.member_id, "instance_id": m.instance_id, "topics": list(m.topics),
                     "assignment": [[tp.topic, tp.partition] for tp in m.assignment]} for m in desc.members],
        "partitions": [{"topic": p.topic, "partition": p.partition, "committed": p.committed,
                        "end_offset": p.end_offset, "log_start_offset": p.log_start_offset, "lag": p.lag,
                        "member": p.member} for p in desc.partitions],
        "total_lag": desc.total_lag,
    }


def schema_fields(schema: pa.Schema) -> list[dict]:
    """Each field of a value schema as ``{"name", "type", "nullable", "default"}``; ``default`` is
    the JSON text of its ``rayka.default`` field metadata, None when it has none."""
    from rayka.partitions.schema_rules import DEFAULT_METADATA_KEY

    return [{"name": f.name, "type": str(f.type), "nullable": f.nullable,
             "default": (f.metadata or {}).get(DEFAULT_METADATA_KEY, b"").decode() or None} for f in schema]


def schema_version_json(topic: str, version) -> dict:
    """A SchemaVersion of ``topic`` as JSON-able data (registered also as ISO 8601 UTC)."""
    registered = dt.datetime.fromtimestamp(version.registered_ms / 1000, dt.timezone.utc)
    return {"topic": topic, "version": version.version, "registered_ms": version.registered_ms,
            "registered": registered.isoformat(timespec="milliseconds"), "fields": schema_fields(version.schema)}
