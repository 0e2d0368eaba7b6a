"""What a poll hands out, made from the record batches it drained: Records or one Arrow table.

Batches come from the fetcher in the log's schema (offset, timestamp_ms, key, headers,
then ``value`` or the topic's value columns; see rayka.partitions.records). These
functions are the consumer's only per-record work, column by column: keep them so.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rayka.clients.types import Record, TopicPartition
from rayka.errors import DeserializationError

__all__ = ["to_records", "projected_records", "decode_drained", "to_table", "empty_table"]


def to_records(tp: TopicPartition, batch: pa.RecordBatch, value_cols: list[str] | None, key_de,
               value_de) -> list[Record]:
    """The batch's rows as Records; ``value_cols`` of a typed topic become a dict value."""
    topic, partition = tp
    offsets = batch.column(0).to_numpy().tolist()
    stamps = batch.column(1).to_numpy().tolist()
    keys = batch.column(2).to_pylist() if batch.column(2).null_count < batch.num_rows else [None] * batch.num_rows
    hcol = batch.column(3)
    headers = ([dict(h) if h is not None else None for h in hcol.to_pylist()]
               if hcol.null_count < batch.num_rows else [None] * batch.num_rows)
    if value_cols is None:
        values = batch.column(4).to_pylist()
    else:
        values = batch.select(value_cols).to_pylist()
    bad = None
    if key_de is not None:
        keys, bad = _decode(key_de, keys, "key", tp, offsets)
    if value_de is not None:
        values, bad_v = _decode(value_de, values, "value", tp, offsets)
        bad = _first(bad, bad_v)
    return _records(tp, offsets, stamps, keys, values, headers, bad)


def projected_records(tp: TopicPartition, batch: pa.RecordBatch, value_cols: list[str] | None, key_de,
                      value_de) -> list[Record]:
    """Records of a pushed-down fetch's batch (``offset`` then the columns asked): a field not
    asked for is None; ``value`` is a dict of the value columns asked (typed topic), or the
    ``value`` column (untyped), or None."""
    n, names = batch.num_rows, batch.schema.names
    none = [None] * n

    def col(name):
        return batch.column(name).to_pylist() if name in names else none

    keys, stamps, values = col("key"), col("timestamp_ms"), col("value") if value_cols is None else none
    headers = [dict(h) if h is not None else None for h in col("headers")]
    if value_cols is not None:
        asked = [c for c in value_cols if c in names]
        values = batch.select(asked).to_pylist() if asked else none
    offsets = batch.column(0).to_numpy().tolist()
    bad = None
    if key_de is not None and "key" in names:
        keys, bad = _decode(key_de, keys, "key", tp, offsets)
    if value_de is not None and value_cols is None and "value" in names:
        values, bad_v = _decode(value_de, values, "value", tp, offsets)
        bad = _first(bad, bad_v)
    return _records(tp, offsets, stamps, keys, values, headers, bad)


def _decode(fn, items: list, what: str, tp: TopicPartition, offsets: list):
    """``fn`` applied to each non-null item; on the first failure, the items decoded so far and
    the DeserializationError naming the record (topic, partition, offset, deserializer)."""
    out = []
    append = out.append
    for i, item in enumerate(items):
        if item is None:
            append(None)
            continue
        try:
            append(fn(item))
        except Exception as exc:  # any deserializer's failure: the user's callable may raise anything
            from rayka.clients.serializers import describe

            name = describe(fn)
            off = offsets[i]
            err = DeserializationError(
                f"the {what} of {tp.topic}-{tp.partition} at offset {off} ({len(item)} bytes) cannot be "
                f"decoded by {what}_deserializer {name}: {type(exc).__name__}: {exc}. The records before it "
                f"were returned; seek(TopicPartition({tp.topic!r}, {tp.partition}), {off + 1}) skips it, or "
                "read it with another deserializer",
                topic=tp.topic, partition=tp.partition, offset=off, next_offset=off + 1, deserializer=name)
            err.__cause__ = exc
            return out, (i, err)
    return out, None


def _first(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return a if a[0] <= b[0] else b


def _records(tp, offsets, stamps, keys, values, headers, bad) -> list[Record]:
    """The Records; with ``bad`` = (row, error), the error raised carrying the rows before it
    as ``error.records`` (the consumer hands those out and leaves the position at the row)."""
    topic, partition = tp
    if bad is None:
        return [Record(topic, partition, o, t, k, v, h) for o, t, k, v, h in zip(offsets, stamps, keys, values, headers)]
    row, err = bad
    err.records = [Record(topic, partition, o, t, k, v, h)
                   for o, t, k, v, h in zip(offsets[:row], stamps[:row], keys[:row], values[:row], headers[:row])]
    raise err


def decode_drained(drained, to_records, seek) -> list:
    """``[(tp, records), ...]`` of a poll's drained ``[(state, [batch, ...]), ...]``, made by
    ``to_records(tp, batch)``. A record its deserializer cannot decode (DeserializationError)
    ends its partition's records there and the partition is ``seek``-ed to it, as Kafka does:
    the records before it and the other partitions' are returned. When nothing of its partition
    comes before it, the error is raised and every other partition drained is moved back to
    its first record drained, so no record is skipped unseen."""
    out, failed = [], []
    for state, batches in drained:
        for batch in batches:
            try:
                out.append((state.tp, to_records(state.tp, batch)))
            except DeserializationError as exc:
                out.append((state.tp, exc.records))
                seek(state.tp, exc.offset)
                failed.append(exc)
                break
    failed_tps = {TopicPartition(e.topic, e.partition) for e in failed}
    for exc in failed:
        tp = TopicPartition(exc.topic, exc.partition)
        if any(recs for t, recs in out if t == tp):
            continue
        firsts: dict = {}
        for state, batches in drained:
            if state.tp not in failed_tps and batches and state.tp not in firsts:
                firsts[state.tp] = batches[0].column(0)[0].as_py()
        for other, offset in firsts.items():
            seek(other, offset)
        raise exc
    return out


def to_table(drained) -> pa.Table | None:
    """``[(state, [batch, ...]), ...]`` as one table with ``topic`` and ``partition`` columns in
    front (zero-copy for the batches' own columns); None if nothing was drained."""
    tables = []
    for state, batches in drained:
        for batch in batches:
            n = batch.num_rows
            topic = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([state.tp.topic]))
            part = pa.array(np.full(n, state.tp.partition, np.int32))
            tables.append(pa.Table.from_batches([batch]).add_column(0, "partition", part)
                          .add_column(0, "topic", topic))
    if not tables:
        return None
    return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]


def empty_table(value_schema: pa.Schema | None, schema: pa.Schema | None = None) -> pa.Table:
    """An empty poll's table, with the columns a poll of a topic of ``value_schema`` has (or, given
    ``schema``, those of a pushed-down fetch)."""
    from rayka.partitions.records import log_schema

    if schema is None:
        schema = log_schema(value_schema) if value_schema is not None else log_schema()
    return (schema.empty_table().add_column(0, "partition", pa.array([], pa.int32()))
            .add_column(0, "topic", pa.array([], pa.dictionary(pa.int32(), pa.string()))))
