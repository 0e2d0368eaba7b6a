"""The checks a record passes in ``send()`` / ``send_table()``, before it joins a batch.

A record joins a batch shared with other records, and the batch is built into one
Arrow record batch by the sender thread: a value Arrow cannot take there (a str
timestamp, an int past int64, headers that are not pairs) would fail every record
of the batch, far from the call that was wrong. So every argument is checked
here, in the caller's thread, and refused with an InvalidRecordError (a TypeError
and a ValueError) naming the argument; nothing of it is queued.
"""

from __future__ import annotations

import numbers

import pyarrow as pa
import pyarrow.compute as pc

from rayka.errors import InvalidRecordError, UnknownPartitionError
from rayka.partitions.record_size import header_size
from rayka.partitions.records import HEADERS_TYPE

__all__ = [
    "INT64_MAX",
    "check_topic",
    "check_timestamp",
    "check_partition_type",
    "check_partition_range",
    "check_headers",
    "check_table_columns",
]

INT64_MAX = 2**63 - 1
_BYTES = (bytes, bytearray, memoryview)


def check_topic(topic) -> str:
    """``topic`` must be a non-empty str (the name rules are the coordinator's)."""
    if not isinstance(topic, str) or not topic:
        raise InvalidRecordError(f"topic must be a non-empty str (the topic's name), got {topic!r}")
    return topic


def check_timestamp(timestamp_ms) -> int:
    """An int of milliseconds since the epoch, 0 <= t <= 2**63 - 1; bool is refused."""
    if type(timestamp_ms) is int and 0 <= timestamp_ms <= INT64_MAX:
        return timestamp_ms  # the common case, without the slower ABC check below
    if isinstance(timestamp_ms, bool) or not isinstance(timestamp_ms, numbers.Integral):
        raise InvalidRecordError(
            f"timestamp_ms must be an int of milliseconds since the epoch (or None for now), got "
            f"{type(timestamp_ms).__name__} {timestamp_ms!r}; e.g. int(dt.timestamp() * 1000)"
        )
    ts = int(timestamp_ms)
    if not 0 <= ts <= INT64_MAX:
        raise InvalidRecordError(
            f"timestamp_ms must be between 0 and 2**63 - 1 (milliseconds since the epoch), got {ts}"
        )
    return ts


def check_partition_type(partition) -> int:
    """``partition`` must be an int (not a bool: ``True`` is not partition 1)."""
    if type(partition) is int:
        return partition
    if isinstance(partition, bool) or not isinstance(partition, numbers.Integral):
        raise InvalidRecordError(
            f"partition must be an int (or None to let the partitioner choose), got "
            f"{type(partition).__name__} {partition!r}"
        )
    return int(partition)


def check_partition_range(partition: int, topic: str, partitions: int) -> None:
    if not 0 <= partition < partitions:
        raise UnknownPartitionError(
            f"topic {topic!r} has partitions 0..{partitions - 1}; there is no partition {partition!r}"
        )


def check_headers(headers) -> tuple[list[tuple[str, bytes | None]], int]:
    """Headers as (str, bytes | None) pairs from a dict or a list/tuple of pairs, and their size."""
    if isinstance(headers, dict):
        items = headers.items()
    elif isinstance(headers, (list, tuple)):
        items = headers
    else:
        raise InvalidRecordError(
            f"headers must be a dict {{str: bytes}} or a list of (str, bytes) pairs, got "
            f"{type(headers).__name__} {headers!r:.60}"
        )
    out = []
    size = 0
    for item in items:
        if type(item) is not tuple or len(item) != 2:
            if not isinstance(item, (tuple, list)) or len(item) != 2:
                raise InvalidRecordError(f"headers must be (str, bytes) pairs; {item!r:.60} is not a pair")
        k, v = item
        if type(k) is not str and not isinstance(k, str):
            raise InvalidRecordError(f"header names must be str, got {type(k).__name__} {k!r:.60}")
        if v is not None and type(v) is not bytes:
            if not isinstance(v, _BYTES):
                raise InvalidRecordError(
                    f"header {k!r:.60} must have a bytes value (or None), got {type(v).__name__}; "
                    "encode it (e.g. str.encode)"
                )
            v = bytes(v)
        try:
            size += header_size(k, v)
        except UnicodeEncodeError as exc:
            raise InvalidRecordError(
                f"header name {k!r:.60} is not valid text ({exc.reason} at position {exc.start}): "
                "header names are stored as UTF-8; remove the character (a lone surrogate?)"
            ) from None
        out.append((k, v))
    return out, size


def check_table_columns(table: pa.Table, topic: str, partitions: int) -> pa.Table:
    """Check send_table's reserved columns before anything is sent; returns the table with a
    datetime ``timestamp_ms`` as int milliseconds and ``headers`` cast to map<string, binary>
    when it was given in another castable type."""
    names = table.column_names
    if "offset" in names:
        raise InvalidRecordError(
            "column 'offset' cannot be sent: offsets are assigned by the partition as it appends; "
            "drop it (table.drop_columns(['offset'])); nothing was sent"
        )
    if "key" in names:
        typ = table.column("key").type
        if not (pa.types.is_binary(typ) or pa.types.is_large_binary(typ) or pa.types.is_null(typ)):
            hint = (" encode it first (e.g. pyarrow.compute.cast(col, pa.binary()))"
                    if pa.types.is_string(typ) or pa.types.is_large_string(typ) else "")
            raise InvalidRecordError(f"column 'key' must be binary, got {typ};{hint} nothing was sent")
    if "timestamp_ms" in names:
        col = table.column("timestamp_ms")
        if pa.types.is_timestamp(col.type):
            # A datetime column (pandas' datetime64): milliseconds since the epoch, sub-ms cut off.
            col = pc.cast(col, pa.timestamp("ms", col.type.tz), safe=False).cast(pa.int64())
            table = table.set_column(names.index("timestamp_ms"), "timestamp_ms", col)
        if not (pa.types.is_integer(col.type) or pa.types.is_null(col.type)):
            raise InvalidRecordError(
                f"column 'timestamp_ms' must hold ints (milliseconds since the epoch) or datetimes, "
                f"got {col.type}; nothing was sent"
            )
        if not pa.types.is_null(col.type) and col.null_count < len(col):
            low, high = pc.min(col).as_py(), pc.max(col).as_py()
            if low < 0 or high > INT64_MAX:
                bad = low if low < 0 else high
                raise InvalidRecordError(
                    f"column 'timestamp_ms' must be between 0 and 2**63 - 1, it holds {bad}; nothing was sent"
                )
    if "partition" in names:
        col = table.column("partition")
        if not pa.types.is_integer(col.type):
            raise InvalidRecordError(f"column 'partition' must hold ints, got {col.type}; nothing was sent")
        if col.null_count:
            raise InvalidRecordError(
                f"column 'partition' has {col.null_count} nulls; give every row a partition "
                "(or drop the column to let the partitioner choose); nothing was sent"
            )
        if len(col):
            low, high = pc.min(col).as_py(), pc.max(col).as_py()
            if low < 0 or high >= partitions:
                raise UnknownPartitionError(
                    f"topic {topic!r} has partitions 0..{partitions - 1}; column 'partition' holds "
                    f"{low if low < 0 else high}; nothing was sent"
                )
    if "headers" in names:
        col = table.column("headers")
        if col.type != HEADERS_TYPE and not pa.types.is_null(col.type):
            try:
                cast = col.cast(HEADERS_TYPE)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise InvalidRecordError(
                    f"column 'headers' must be map<string, binary>, got {col.type}; build it with "
                    "pa.array([[('name', b'value')], ...], type=pa.map_(pa.string(), pa.binary())); "
                    "nothing was sent"
                ) from None
            table = table.set_column(names.index("headers"), "headers", cast)
    return table
