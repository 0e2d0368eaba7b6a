"""Bounded reads of a topic: which offsets a read covers, and the records in them.

The pipelines (rayka.data, the exports, the Spark source, :func:`rayka.read_topic`) all
read a topic the same way: :func:`plan_ranges` turns the bounds a user gave (offsets,
datetimes or ISO times, for every partition or per partition) into one
:class:`PartitionRange` per partition, fixed when it is called, so a read sees the
records that were there then and no later ones; :func:`read_range` yields the records
of one range as Arrow record batches. Projection (``columns``) and filters (``filter``,
a ``pyarrow.compute`` expression) are applied before anything is shipped.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from rayka.clients.stubs import gather
from rayka.errors import (ConfigError, FencedLeaderEpochError, NotLeaderError, OffsetOutOfRangeError,
                          PartitionUnavailableError)
from rayka.partitions import codec

__all__ = ["PartitionRange", "plan_ranges", "split_ranges", "read_range", "read_topic", "to_timestamp_ms"]

#: Records asked for per fetch of a bounded read, and bytes.
FETCH_RECORDS = 262_144
#: Records per fetch of a pushed-down read: its rows are narrower (or fewer), so a fetch covers
#: more offsets for the same bytes shipped (max_bytes bounds those), and pays its call once.
PUSHED_FETCH_RECORDS = 4 * FETCH_RECORDS
FETCH_BYTES = 32 * 1024 * 1024
#: Partitions :func:`read_topic` reads at the same time.
READ_THREADS = 8
_RETRY_S = 60.0  # a leader that moves (or restarts) mid-read is waited for this long


@dataclass(frozen=True, slots=True)
class PartitionRange:
    """Offsets ``start .. end - 1`` of one partition of ``topic``; ``node_id`` is the Ray node
    of the partition's leader when the range was planned (for reading next to the data);
    ``schema_version`` the value-schema version it is read in (the topic's latest at planning,
    so every range of a plan reads alike; None: the latest when it is read)."""

    topic: str
    partition: int
    start: int
    end: int
    node_id: str | None = None
    schema_version: int | None = None

    @property
    def records(self) -> int:
        """How many offsets the range covers (a filter may keep fewer)."""
        return max(self.end - self.start, 0)


def to_timestamp_ms(value) -> int:
    """Milliseconds since the epoch of a ``datetime`` (naive ones are UTC), a pandas
    Timestamp, or an ISO 8601 string; ConfigError for anything else."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ConfigError(f"{value!r} is neither an offset nor an ISO 8601 time such as "
                              "'2026-12-01T10:00:00Z'") from None
    if not isinstance(value, dt.datetime):
        raise ConfigError(f"a time bound must be a datetime or an ISO 8601 string, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1000)


def _is_offset(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, str) and value.strip().isdigit()


def _bound_for(bound, partition: int, which: str):
    if isinstance(bound, Mapping):
        for key, value in bound.items():
            if isinstance(key, bool) or not isinstance(key, int):
                raise ConfigError(f"{which}= maps partition numbers to bounds; {key!r} is not a partition")
        return bound.get(partition)
    return bound


def plan_ranges(topic: str, start=None, end=None, *, cluster=None) -> list[PartitionRange]:
    """One :class:`PartitionRange` per partition of ``topic``, bounded as asked.

    ``start`` / ``end``: None (the log start / the end offsets now: everything written so far),
    an offset (int), a time (a ``datetime``, naive meaning UTC, or an ISO 8601 string; the first
    offset whose timestamp is at or after it), or a dict mapping partition numbers to such
    bounds (partitions it does not name are unbounded on that side). ``end`` is exclusive and
    capped at the end offsets now. An offset ``start`` below a partition's log start (retention
    deleted it) raises OffsetOutOfRangeError; ``start`` past ``end`` gives an empty range.
    """
    from rayka.clients.connection import current

    cluster = cluster or current()
    for value, which in ((start, "start"), (end, "end")):
        if isinstance(value, Mapping):
            bad = [p for p in value if isinstance(p, int) and not 0 <= p]
            if bad:
                raise ConfigError(f"{which}= names partition {bad[0]}, which does not exist")
    meta, handles = cluster.topic(topic, refresh=True)
    n = len(handles)
    for value, which in ((start, "start"), (end, "end")):
        if isinstance(value, Mapping):
            for p in value:
                meta.check_partition(p)
    bounds = _gather_each(topic, [h.offsets() for h in handles], "plan the read")
    lookups: dict[tuple[int, str], int] = {}
    wanted = []
    for p in range(n):
        for which, bound in (("start", _bound_for(start, p, "start")), ("end", _bound_for(end, p, "end"))):
            if bound is not None and not _is_offset(bound):
                wanted.append((p, which, to_timestamp_ms(bound)))
            elif bound is not None and int(bound) < 0:
                raise ConfigError(f"{which}= offset {bound} is negative; offsets start at 0")
    if wanted:
        hits = _gather_each(topic, [handles[p].offset_for_time(ms) for p, _, ms in wanted], "look up times")
        for (p, which, _), hit in zip(wanted, hits):
            lookups[p, which] = bounds[p].log_end_offset if hit is None else hit.offset
    ranges = []
    for p in range(n):
        log_start, log_end = bounds[p]
        lo, hi = _bound_for(start, p, "start"), _bound_for(end, p, "end")
        first = log_start if lo is None else lookups.get((p, "start"), None)
        if first is None:
            first = int(lo)
            if first < log_start:
                raise OffsetOutOfRangeError(
                    f"{topic}-{p} starts at offset {log_start} (retention deleted what came before); "
                    f"start= {first} cannot be read: start from {log_start} or later",
                    log_start_offset=log_start, log_end_offset=log_end)
        last = log_end if hi is None else lookups.get((p, "end"), None)
        if last is None:
            last = int(hi)
        last = min(last, log_end)
        first = max(first, log_start)
        ranges.append(PartitionRange(topic, p, first, max(first, last), meta.leader_node(p), meta.schema_version))
    return ranges


def split_ranges(ranges: list[PartitionRange], max_records: int) -> list[PartitionRange]:
    """``ranges`` cut into pieces of at most ``max_records`` offsets (a large partition read in
    parallel); empty ranges are dropped."""
    if max_records < 1:
        raise ConfigError(f"max_records must be at least 1, not {max_records}")
    out = []
    for r in ranges:
        for lo in range(r.start, r.end, max_records):
            out.append(PartitionRange(r.topic, r.partition, lo, min(lo + max_records, r.end), r.node_id,
                                      r.schema_version))
    return out


def _gather_each(topic: str, pending: list, what: str) -> list:
    answers = gather(pending)
    for p, a in enumerate(answers):
        if isinstance(a, BaseException):
            raise a
    return answers


def _check_columns(schema: pa.Schema, columns) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str):
        columns = [columns]
    columns = list(columns)
    missing = [c for c in columns if c not in schema.names]
    if missing:
        raise ConfigError(f"no column {missing[0]!r} in this topic; its columns are {schema.names}")
    return columns


def _check_filter(flt):
    if flt is not None and not isinstance(flt, pc.Expression):
        raise ConfigError("filter= takes a pyarrow.compute expression such as pc.field('amount') > 10, "
                          f"not {type(flt).__name__}")
    return flt


def read_range(rng: PartitionRange, *, columns=None, filter=None, cluster=None,
               max_bytes: int = FETCH_BYTES) -> Iterator[pa.RecordBatch]:
    """The records of ``rng`` as record batches in offset order, with just ``columns`` (all of
    the stored layout when None: offset, timestamp_ms, key, headers, then value or the topic's
    value columns) and just the rows ``filter`` keeps. Both are applied inside the partition
    (partitions/pushdown.py): only those columns are read from its segments and only the kept
    rows are shipped. A leader that moves or restarts during the read is followed (for up to a
    minute); damage raises CorruptRecordError."""
    from rayka.clients.connection import current
    from rayka.partitions.records import log_schema

    cluster = cluster or current()
    _check_filter(filter)
    cols = None
    meta, _ = cluster.topic(rng.topic)
    if columns is not None:
        cols = _check_columns(log_schema(meta.value_schema), columns)  # before any fetch is sent
    # Every partition answers in one version (older batches projected): the plan's, else the latest.
    version = rng.schema_version if rng.schema_version is not None else meta.schema_version
    pushed = cols is not None or filter is not None
    offset, schema = rng.start, None
    deadline = None
    while offset < rng.end:
        _, handles = cluster.topic(rng.topic, refresh=deadline is not None)
        try:
            args = (offset, min(rng.end - offset, PUSHED_FETCH_RECORDS if pushed else FETCH_RECORDS), max_bytes, 0,
                    schema is None)
            call = handles[rng.partition].fetch(*args, columns=cols, filter=filter, schema_version=version) \
                if pushed or version is not None else handles[rng.partition].fetch(*args)
            answer = call.result()
        except (NotLeaderError, FencedLeaderEpochError, PartitionUnavailableError):
            deadline = deadline or time.monotonic() + _RETRY_S
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # backoff before asking the coordinator for the new leader
            continue
        if answer.schema is not None:
            schema = ipc.read_schema(pa.py_buffer(answer.schema))
        if answer.next_offset <= offset:
            # Nothing at an offset below the end the plan saw: a partition closing, or a new leader
            # whose high watermark has not yet reached the old one's. Never end the range early (an
            # export would commit offsets it did not write): ask again, then fail clearly.
            deadline = deadline or time.monotonic() + _RETRY_S
            if time.monotonic() > deadline:
                raise PartitionUnavailableError(
                    f"{rng.topic}-{rng.partition} answers no records at offset {offset} although the read "
                    f"was planned up to {rng.end} (its high watermark is {answer.high_watermark}); the log "
                    "may have been cut by an unclean leader election: plan the read again")
            time.sleep(0.2)
            continue
        deadline = None
        payload = answer.payload
        for buf in (pa.py_buffer(payload),) if isinstance(payload, bytes) else payload:
            for msg in codec.iter_messages(buf):
                batch = codec.decode(msg, schema)
                if pushed:
                    # One message of kept rows, all in [offset, rng.end): its offsets may jump (a filter).
                    batch = batch.select(cols) if cols is not None else batch
                else:
                    first, nxt = msg.header.base_offset, msg.header.next_offset
                    if nxt <= offset or first >= rng.end:
                        continue
                    lo, hi = max(offset - first, 0), min(rng.end, nxt) - first
                    batch = batch.slice(lo, hi - lo)
                if batch.num_rows:
                    yield batch
        offset = answer.next_offset


def read_topic(topic: str, start=None, end=None, columns=None, filter=None, *, cluster=None) -> pa.Table:
    """Every record of ``topic`` between ``start`` and ``end`` (see :func:`plan_ranges`) as one
    ``pyarrow.Table``, partition by partition in offset order, with just ``columns`` and the
    rows ``filter`` keeps (pushed down to the partitions). The partitions are read in parallel
    (up to :data:`READ_THREADS` at once)."""
    from rayka.clients.connection import current

    cluster = cluster or current()
    _check_filter(filter)
    ranges = [r for r in plan_ranges(topic, start, end, cluster=cluster) if r.records]
    if columns is not None and ranges:
        _empty_schema(cluster, topic, columns)  # a bad column fails once, before any thread starts

    def one(rng: PartitionRange) -> list[pa.RecordBatch]:
        return list(read_range(rng, columns=columns, filter=filter, cluster=cluster))

    # The partitions are read at once, one thread each (they wait on their actors, GIL released),
    # so several partition actors work together; the table keeps partition order.
    if len(ranges) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(len(ranges), READ_THREADS)) as pool:
            per_range = list(pool.map(one, ranges))
    else:
        per_range = [one(r) for r in ranges]
    batches = [b for part in per_range for b in part]
    schema = batches[0].schema if batches else None
    if schema is None:
        schema = _empty_schema(cluster, topic, columns)
    return pa.Table.from_batches(batches, schema=schema)


def _empty_schema(cluster, topic: str, columns) -> pa.Schema:
    from rayka.partitions.records import log_schema

    meta, _ = cluster.topic(topic)
    schema = log_schema(meta.value_schema)
    cols = _check_columns(schema, columns)
    return schema if cols is None else pa.schema([schema.field(c) for c in cols])
