"""Record formats of the CLI's input: JSON lines, CSV and Parquet, as Rows or Arrow tables.

Input, for a topic whose value schema is ``schema`` (None: values are bytes):

- **JSON lines**, one object per line (blank lines are skipped). Fields ``key``,
  ``headers`` (an object of strings), ``timestamp_ms``; then, untyped, ``value``
  (a JSON string is sent as its UTF-8 bytes, any other JSON value as its compact
  JSON text), or, typed, the topic's value columns by name (at the top level, or
  nested in a ``value`` object as ``consume --format json`` prints them; strings are
  cast to a column's type, e.g. ISO times to timestamps). Fields listed in a
  ``"base64"`` array (``"key"``, ``"value"``, ``"value.COL"``, ``"headers.NAME"``) hold
  base64 text. ``topic``, ``partition`` and ``offset`` are ignored, so what
  ``consume --format json`` prints can be produced again as it is.
- **CSV** with a header row: ``key``, ``timestamp_ms`` and ``value`` or the value
  columns; an empty cell is null.
- **Parquet**: the same columns as CSV, plus ``headers`` (map<string, binary>).

Any other field or column is refused with InputFormatError naming it and the line or
file, before anything is sent. Files become Arrow tables in chunks of ``chunk_rows``
(for ``send_table``); stdin lines become :class:`Row` s one by one (for ``send``).

The output side (records as JSON, raw lines or a table) is rayka.clients.render. No Ray
here: everything is tested in-process.
"""

from __future__ import annotations

import base64
import csv
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator, NamedTuple

import pyarrow as pa

if TYPE_CHECKING:
    import pyarrow.parquet as pq

from rayka.clients.record_checks import INT64_MAX, check_table_columns
from rayka.clients.serde import check_row
from rayka.errors import InputFormatError, InvalidRecordError, RecordTooLargeError, SchemaMismatchError
from rayka.partitions.records import HEADERS_TYPE, log_schema, prepare_batch

__all__ = [
    "Row", "FileSource", "format_of", "parse_schema", "parse_json_line", "parse_csv_row", "rows_to_table",
]

_IGNORED = ("topic", "partition", "offset")
_SUFFIXES = {".jsonl": "json", ".ndjson": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
             ".pq": "parquet"}


class Row(NamedTuple):
    """One record to send: key bytes, value (bytes, or a dict of columns), headers pairs, time."""

    key: bytes | None
    value: Any
    headers: list | None
    timestamp_ms: int | None


def format_of(path: str) -> str:
    """``json``, ``csv`` or ``parquet`` from a file name's suffix; InputFormatError if unknown."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in _SUFFIXES:
        raise InputFormatError(
            f"cannot tell the format of {path!r} from its suffix (known: {', '.join(sorted(_SUFFIXES))}); "
            "say it with --format json|csv|parquet"
        )
    return _SUFFIXES[suffix]


def parse_schema(text: str) -> pa.Schema:
    """``"sym:string,px:double,at:timestamp[ms]"`` as an Arrow schema (pyarrow's type names)."""
    fields = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, alias = part.partition(":")
        if not sep or not name.strip():
            raise InputFormatError(f"schema field {part!r} is not NAME:TYPE (e.g. px:double)")
        try:
            fields.append(pa.field(name.strip(), pa.type_for_alias(alias.strip())))
        except ValueError:
            raise InputFormatError(f"schema field {part!r}: unknown type {alias.strip()!r}; use pyarrow's "
                                   "names: string, binary, bool, int32, int64, double, timestamp[ms], date32 ...") from None
    if not fields:
        raise InputFormatError("the schema names no fields; give NAME:TYPE[,NAME:TYPE...]")
    return pa.schema(fields)


def _allowed(schema: pa.Schema | None, headers: bool) -> list[str]:
    names = ["key", "timestamp_ms"] + (["headers"] if headers else [])
    return names + (["value"] if schema is None else list(schema.names))


# -- JSON lines and CSV rows ------------------------------------------------------------------------


def _text_to_bytes(value, path: str, b64: set, where: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InputFormatError(f"{where}: {path!r} must be a string or null, got {type(value).__name__}")
    if path in b64:
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise InputFormatError(f"{where}: {path!r} is listed in \"base64\" but is not base64") from None
    return _utf8(value, path, where)


def _utf8(text: str, path: str, where: str) -> bytes:
    """``text`` as UTF-8; a JSON escape can carry a lone surrogate (``"\\udc80"``), which has none."""
    try:
        return text.encode()
    except UnicodeEncodeError as exc:
        raise InputFormatError(
            f"{where}: {path!r} is not valid text ({exc.reason} at position {exc.start}, from a JSON "
            "escape such as \\udc80); send bytes as base64 (list the field in \"base64\")") from None


def _kind(typ: pa.DataType) -> str:
    if pa.types.is_binary(typ) or pa.types.is_large_binary(typ):
        return "binary"
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        return "string"
    return "other"


def _coerce(value, field: pa.Field, kind: str, b64: set, where: str):
    """A JSON or CSV value as a Python value of the column's type (strings are cast)."""
    if value is None:
        return None
    if kind == "binary":
        return _text_to_bytes(value, f"value.{field.name}", b64, where)
    if kind == "other" and isinstance(value, str):
        try:
            return pa.array([value], pa.string()).cast(field.type)[0].as_py()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InputFormatError(f"{where}: column {field.name!r} is {field.type}; {value!r} does not fit: {exc}") from None
    return value


def _timestamp(value, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputFormatError(f"{where}: timestamp_ms must be an integer (ms since the epoch), got {value!r}")
    if not 0 <= value <= INT64_MAX:
        raise InputFormatError(f"{where}: timestamp_ms must be between 0 and 2**63 - 1 (ms since the epoch), "
                               f"got {value}")
    return value


def _value(obj: dict, schema: pa.Schema | None, b64: set, where: str, topic: str, check: bool = True):
    if schema is None:
        value = obj.pop("value", None)
        if value is None or isinstance(value, str):
            return _text_to_bytes(value, "value", b64, where)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    nested = obj.get("value")
    if isinstance(nested, dict) and "value" not in schema.names:
        del obj["value"]
        cols = nested
    else:
        cols, obj = dict(obj), obj
        obj.clear()
    unknown = [k for k in cols if k not in schema.names]
    if unknown:
        raise InputFormatError(f"{where}: fields {unknown} are not columns of topic {topic!r}; "
                               f"its fields are {_allowed(schema, True)}")
    fields = _fields(schema)
    value = {name: _coerce(v, *fields[name], b64, where) for name, v in cols.items()}
    if check:
        try:
            check_row(value, schema, topic)
        except (SchemaMismatchError, TypeError) as exc:
            raise InputFormatError(f"{where}: {exc}") from None
    return value


_FIELDS: dict = {}


def _fields(schema: pa.Schema) -> dict:
    """name -> (field, kind), computed once per schema (this runs for every line)."""
    key = id(schema)
    cached = _FIELDS.get(key)
    if cached is None or cached[0] is not schema:
        cached = _FIELDS[key] = (schema, {f.name: (f, _kind(f.type)) for f in schema})
        if len(_FIELDS) > 64:
            _FIELDS.clear()
            _FIELDS[key] = cached
    return cached[1]


def parse_json_line(line: str | bytes, schema: pa.Schema | None, where: str = "line",
                    topic: str = "the topic", check: bool = True) -> Row | None:
    """One JSON line as a Row (None for a blank line); InputFormatError names ``where``.

    ``check=False`` leaves the check of typed values against their columns to the caller
    (a file builds whole columns, and looks for the bad line only if that fails)."""
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputFormatError(f"{where}: not valid JSON ({exc}); each line must be one JSON object "
                               "(--format raw sends lines as they are)") from None
    if not isinstance(obj, dict):
        raise InputFormatError(f"{where}: expected a JSON object, got {type(obj).__name__} "
                               "(--format raw sends lines as they are)")
    b64 = obj.pop("base64", None) or []
    if not isinstance(b64, list) or not all(isinstance(p, str) for p in b64):
        raise InputFormatError(f"{where}: \"base64\" must be a list of field names")
    b64 = set(b64)
    for name in _IGNORED:
        obj.pop(name, None)
    key = _text_to_bytes(obj.pop("key", None), "key", b64, where)
    ts = _timestamp(obj.pop("timestamp_ms", None), where)
    headers = obj.pop("headers", None)
    if headers is not None:
        if not isinstance(headers, dict):
            raise InputFormatError(f"{where}: headers must be an object of strings, got {type(headers).__name__}")
        headers = [(str(k), _text_to_bytes(v, f"headers.{k}", b64, where)) for k, v in headers.items()]
        for name, _ in headers:
            _utf8(name, "headers", where)  # a header name too can carry a lone surrogate
    value = _value(obj, schema, b64, where, topic, check)
    if obj:
        raise InputFormatError(f"{where}: unknown fields {sorted(obj)}; the fields are "
                               f"{_allowed(schema, True)} (see rayka produce --help)")
    return Row(key, value, headers, ts)


def parse_csv_row(row: dict, schema: pa.Schema | None, where: str = "row", topic: str = "the topic") -> Row:
    """One ``csv.DictReader`` row (strings; empty is null) as a Row."""
    cells = {k: (v if v != "" else None) for k, v in row.items()}
    if None in cells:
        raise InputFormatError(f"{where}: more cells than the header row has columns")
    bad = [k for k in cells if k not in _allowed(schema, False)]
    if bad:
        raise InputFormatError(f"{where}: columns {bad} are not fields of topic {topic!r}; "
                               f"CSV columns are {_allowed(schema, False)}")
    key = _text_to_bytes(cells.pop("key", None), "key", set(), where)
    ts = _timestamp(cells.pop("timestamp_ms", None), where)
    return Row(key, _value(cells, schema, set(), where, topic), None, ts)


def rows_to_table(rows: list[Row], schema: pa.Schema | None) -> pa.Table:
    """Rows as one Arrow table for ``send_table`` (key/headers/timestamp_ms only if any is set)."""
    cols: dict[str, pa.Array] = {}
    for i, (name, typ) in enumerate((("key", pa.binary()), ("value", None), ("headers", HEADERS_TYPE),
                                     ("timestamp_ms", pa.int64()))):
        if name == "value":
            if schema is None:
                cols["value"] = pa.array([r.value for r in rows], pa.binary())
            else:
                for field in schema:
                    cols[field.name] = pa.array([r.value.get(field.name) for r in rows], field.type)
        elif any(r[i] is not None for r in rows):
            cols[name] = pa.array([r[i] for r in rows], typ)
    return pa.table(cols)


# -- files ------------------------------------------------------------------------------------------


@dataclass
class FileSource:
    """A file read as Arrow tables of at most ``chunk_rows`` rows, checked against the topic.

    ``total`` is the file's size in bytes (rows for Parquet, see ``unit``); iterating yields
    ``(table, progress)`` with ``progress`` in that unit.
    """

    path: str
    schema: pa.Schema | None
    fmt: str | None = None
    topic: str = "the topic"
    chunk_rows: int = 65_536
    max_message_bytes: int = 1 << 62

    def __post_init__(self):
        self.fmt = self.fmt or format_of(self.path)
        if self.fmt not in ("json", "csv", "parquet"):
            raise InputFormatError(f"files are json, csv or parquet, not {self.fmt!r}")
        self.rows = 0
        self.unit = "rows" if self.fmt == "parquet" else "B"
        self.total = self._parquet_file().metadata.num_rows if self.fmt == "parquet" else os.path.getsize(self.path)

    def _parquet_file(self) -> "pq.ParquetFile":
        import pyarrow.parquet as pq  # only for Parquet input: 0.2 s of import every command would pay

        try:
            return pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            raise InputFormatError(f"{self.path}: not a Parquet file ({exc}); say the format with "
                                   "--format json|csv if it is another") from None

    def __iter__(self) -> Iterator[tuple[pa.Table, int]]:
        return getattr(self, f"_{self.fmt}")()

    def _json(self):
        with open(self.path, "rb") as f:
            rows, lines, done = [], [], 0
            for lineno, line in enumerate(f, 1):
                done += len(line)
                row = parse_json_line(line, self.schema, f"{self.path} line {lineno}", self.topic, check=False)
                if row is not None:
                    rows.append(row)
                    lines.append((lineno, line))
                if len(rows) >= self.chunk_rows:
                    yield self._checked(self._json_table(rows, lines)), done
                    rows, lines, done = [], [], 0
            if rows or done:
                yield self._checked(self._json_table(rows, lines)), done

    def _json_table(self, rows: list[Row], lines: list) -> pa.Table:
        try:
            return rows_to_table(rows, self.schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, TypeError, ValueError,
                ArithmeticError):
            for lineno, line in lines:  # find the line that does not fit, to name it
                parse_json_line(line, self.schema, f"{self.path} line {lineno}", self.topic, check=True)
            raise

    def _checked(self, table: pa.Table) -> pa.Table:
        """The table if the topic takes it whole, else InputFormatError naming the file: the checks
        send_table makes (its reserved columns, timestamps in range) and the partition's (types,
        nullability, record sizes), made here on every chunk, so a bad file sends nothing."""
        try:
            table = check_table_columns(table, self.topic, partitions=1)
            prepare_batch(table, log_schema(self.schema), now_ms=0, max_message_bytes=self.max_message_bytes)
        except (SchemaMismatchError, RecordTooLargeError, InvalidRecordError) as exc:
            raise InputFormatError(f"{self.path}: {str(exc).replace('; nothing was sent', '')}") from None
        self.rows += table.num_rows
        return table

    def _columns(self, names: Iterable[str], headers: bool) -> None:
        bad = [n for n in names if n not in _allowed(self.schema, headers)]
        if bad:
            hint = " (CSV has no headers column: use JSON lines or Parquet)" if "headers" in bad else ""
            raise InputFormatError(f"{self.path}: columns {bad} are not fields of topic {self.topic!r}; "
                                   f"the columns are {_allowed(self.schema, headers)}{hint}")

    def _csv(self):
        with open(self.path, newline="", encoding="utf-8-sig") as f:  # a BOM is not part of a name
            header = next(csv.reader(f), [])
        self._columns(header, headers=False)
        types = {"key": pa.binary(), "value": pa.binary(), "timestamp_ms": pa.int64()}
        for field in self.schema or []:
            types[field.name] = field.type
        import pyarrow.csv as pacsv  # only for CSV input

        convert = pacsv.ConvertOptions(column_types={n: t for n, t in types.items() if n in header},
                                       strings_can_be_null=True)
        with open(self.path, "rb") as f:
            try:
                reader = pacsv.open_csv(f, read_options=pacsv.ReadOptions(block_size=4 << 20, use_threads=False),
                                        convert_options=convert)
                done = 0
                for batch in reader:
                    # Read without threads, so the file position is where the parser got to.
                    yield self._checked(pa.Table.from_batches([batch])), f.tell() - done
                    done = f.tell()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise InputFormatError(f"{self.path}: {exc}") from None

    def _parquet(self):
        pf = self._parquet_file()
        self._columns(pf.schema_arrow.names, headers=True)
        for batch in _parquet_batches(pf, self.chunk_rows, self.path):
            table = pa.Table.from_batches([batch])
            for name in ["key"] + (["value"] if self.schema is None else []):
                if name in table.column_names:
                    col = table.column(name)
                    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
                        table = table.set_column(table.column_names.index(name), name, col.cast(pa.binary()))
            yield self._checked(table), batch.num_rows


def _parquet_batches(pf: "pq.ParquetFile", rows: int, path: str):
    """The file's record batches; a damaged page is an InputFormatError naming the file."""
    batches = pf.iter_batches(batch_size=rows)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputFormatError(f"{path}: cannot read it as Parquet ({exc})") from None
        yield batch
