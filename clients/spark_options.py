"""The pure parts of the Spark source: its options, its offsets and its pushed-down filters.

No PySpark, no Ray here (the unit tests run it without a JVM). The options follow Spark's
Kafka source where they mean the same thing:

- ``startingOffsets`` / ``endingOffsets``: ``"earliest"``, ``"latest"``, or JSON mapping
  partition numbers to offsets, ``{"0": 10, "1": 20}`` (also Kafka's ``{"clicks": {"0": 10}}``),
  where ``-2`` is earliest and ``-1`` latest; partitions it does not name are unbounded.
- ``startingTimestamp`` / ``endingTimestamp``: milliseconds since the epoch or an ISO 8601
  time; they take precedence over the offsets options, as in Kafka's source.
- ``maxRecordsPerPartition``: the largest number of offsets one Spark input partition reads.
- ``maxOffsetsPerTrigger``: the most offsets one streaming micro-batch takes, shared between
  the partitions in proportion to how far behind each is (Kafka's rule).
- ``columns``: comma-separated columns to read (Spark's Python data sources cannot prune
  columns themselves in 4.3, so this is how a read drops columns at the source).

Streaming offsets, as Spark keeps them in its checkpoint, are ``{"<partition>": next_offset}``.
Spark filters become one ``pyarrow.compute`` expression (see :func:`to_expression`); the ones
on the ``partition`` column choose which partitions are read at all.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

from rayka.errors import ConfigError

__all__ = ["EARLIEST", "LATEST", "parse_offsets", "parse_timestamp", "parse_positive_int", "parse_columns",
           "offsets_to_json", "offsets_from_json", "cap_offsets", "to_expression", "checked_expression",
           "PARTITION_COLUMN", "spark_ready"]

EARLIEST, LATEST = -2, -1  # Kafka's markers in per-partition offsets JSON
PARTITION_COLUMN = "partition"


def parse_offsets(value: str | None, topic: str, which: str):
    """``"earliest"`` / ``"latest"`` / None as themselves, or ``{partition: offset}`` (ints,
    with EARLIEST and LATEST kept as markers) from the JSON of ``startingOffsets`` or
    ``endingOffsets`` (named by ``which`` in errors)."""
    if value is None:
        return None
    text = value.strip()
    if text.lower() in ("earliest", "latest"):
        return text.lower()
    try:
        parsed = json.loads(text)
    except ValueError:
        raise ConfigError(f"{which} must be 'earliest', 'latest' or JSON such as {{\"0\": 10, \"1\": 20}}, "
                          f"not {value!r}") from None
    if not isinstance(parsed, dict):
        raise ConfigError(f"{which} JSON must map partition numbers to offsets, not {value!r}")
    if set(parsed) == {topic} and isinstance(parsed[topic], dict):
        parsed = parsed[topic]  # Kafka's form names the topic first
    out = {}
    for key, offset in parsed.items():
        try:
            partition = int(key)
        except (TypeError, ValueError):
            raise ConfigError(f"{which} names {key!r}, which is not a partition number of topic {topic!r}") from None
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < LATEST - 1 or partition < 0:
            raise ConfigError(f"{which}: partition {key} -> {offset!r}; use an offset >= 0, "
                              "-2 (earliest) or -1 (latest)")
        out[partition] = offset
    return out


def parse_timestamp(value: str | None, which: str) -> dt.datetime | None:
    """A UTC datetime from milliseconds since the epoch or an ISO 8601 string (naive = UTC)."""
    if value is None:
        return None
    text = value.strip()
    if text.lstrip("-").isdigit():
        return dt.datetime.fromtimestamp(int(text) / 1000, tz=dt.timezone.utc)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{which} must be milliseconds since the epoch or an ISO 8601 time such as "
                          f"'2026-12-01T10:00:00Z', not {value!r}") from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


def parse_positive_int(value: str | None, which: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1:
        raise ConfigError(f"{which} must be a whole number of at least 1, not {value!r}")
    return number


def parse_columns(value: str | None, available: list[str]) -> list[str] | None:
    """The ``columns`` option as a list (in the order given), each checked against ``available``."""
    if value is None:
        return None
    names = [c.strip() for c in value.split(",") if c.strip()]
    if not names:
        raise ConfigError("columns must name at least one column, comma-separated")
    missing = [c for c in names if c not in available]
    if missing:
        raise ConfigError(f"columns names {missing[0]!r}, which this topic does not have; its columns are "
                          f"{available}")
    return names


def offsets_to_json(offsets: Mapping[int, int]) -> dict[str, int]:
    """A streaming offset as Spark keeps it: ``{"<partition>": next_offset}``."""
    return {str(p): int(o) for p, o in sorted(offsets.items())}


def offsets_from_json(offsets: Mapping[str, int]) -> dict[int, int]:
    try:
        return {int(p): int(o) for p, o in offsets.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"{offsets!r} is not a rayka streaming offset ({{\"<partition>\": offset}}); "
                          "was this checkpoint written by another source?") from None


def cap_offsets(start: Mapping[int, int], latest: Mapping[int, int], max_total: int | None) -> dict[int, int]:
    """The end offsets of the next micro-batch: ``latest``, or with ``max_total`` at most that
    many offsets past ``start`` in all, shared in proportion to each partition's lag (every
    partition that lags gets at least one while the budget lasts, so none starves)."""
    lag = {p: max(latest[p] - start.get(p, 0), 0) for p in latest}
    total = sum(lag.values())
    if max_total is None or total <= max_total:
        return dict(latest)
    share = {p: (n * max_total) // total for p, n in lag.items()}
    left = max_total - sum(share.values())
    for p in sorted(lag, key=lambda q: (-lag[q] + share[q], q)):
        if left <= 0:
            break
        if share[p] < lag[p]:
            share[p] += 1
            left -= 1
    return {p: start.get(p, 0) + share[p] for p in latest}


def _column(f) -> str | None:
    path = getattr(f, "attribute", None)
    return path[0] if isinstance(path, tuple) and len(path) == 1 else None


def to_expression(f) -> pc.Expression | None:
    """One Spark data source filter (``pyspark.sql.datasource.EqualTo`` and the rest, matched
    by class name) as a ``pyarrow.compute`` expression with Spark's null semantics, or None
    when it has no such form (nested columns, unknown filters)."""
    kind = type(f).__name__
    if kind == "Not":
        inner = to_expression(f.child)
        return None if inner is None else ~inner
    name = _column(f)
    if name is None:
        return None
    col = pc.field(name)
    if kind == "IsNull":
        return col.is_null()
    if kind == "IsNotNull":
        return col.is_valid()
    value = f.value
    if kind == "In":
        if any(v is None for v in value):
            return None  # x IN (1, NULL) is null, never false, where x != 1: left to Spark
        values = list(value)
        if not values:
            return None
        # isin says False for a null row, where Spark's IN says null: keep null nulls, so that
        # NOT IN drops them as Spark does.
        return pc.if_else(col.is_null(), pa.scalar(None, pa.bool_()), col.isin(values))
    if value is None:
        return None
    if kind == "EqualTo":
        return col == value
    if kind == "EqualNullSafe":
        return pc.if_else(col.is_null(), pa.scalar(False), col == value)
    compare = {"GreaterThan": col.__gt__, "GreaterThanOrEqual": col.__ge__, "LessThan": col.__lt__,
               "LessThanOrEqual": col.__le__}.get(kind)
    if compare is not None:
        return compare(value)
    text = {"StringStartsWith": pc.starts_with, "StringEndsWith": pc.ends_with,
            "StringContains": pc.match_substring}.get(kind)
    if text is not None and isinstance(value, str):
        return text(col, pattern=value)
    return None


def _columns_of(f) -> set[str]:
    if type(f).__name__ == "Not":
        return _columns_of(f.child)
    name = _column(f)
    return {name} if name is not None else {"<nested>"}


def checked_expression(f, schema: pa.Schema) -> pc.Expression | None:
    """:func:`to_expression` of ``f`` if every column it names is in ``schema`` and the
    expression type-checks there (tried on an empty table, so a literal of the wrong type is
    left for Spark instead of failing the read)."""
    if not _columns_of(f) <= set(schema.names):
        return None
    if any(pa.types.is_floating(schema.field(c).type) for c in _columns_of(f)):
        return None  # Spark orders NaN above every number and NaN = NaN; Arrow does neither
    expr = to_expression(f)
    if expr is None:
        return None
    try:
        schema.empty_table().filter(expr)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, TypeError):
        return None
    return expr


#: Arrow types Spark has no counterpart for, and the type each is read as (Spark's own choice
#: for unsigned Parquet columns): every value fits.
_WIDER = {pa.uint8(): pa.int16(), pa.uint16(): pa.int32(), pa.uint32(): pa.int64(),
          pa.uint64(): pa.decimal128(20, 0), pa.float16(): pa.float32()}


def spark_ready(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the top-level columns Spark cannot take (unsigned ints, half floats)
    widened to a type holding every value."""
    return pa.schema([f.with_type(_WIDER.get(f.type, f.type)) for f in schema])
