"""Consumer: reads partitions by manual assignment or (with a group) by subscription.

``Consumer("clicks")`` takes every partition of the topics it names;
``Consumer()`` waits for ``assign([...])``. Positions start from
``auto_offset_reset`` ("latest" by default, as Kafka; "earliest"; or "none",
which raises NoOffsetForPartitionError) unless ``seek`` sets them. Records come
out as ``Record`` tuples (``poll``, iteration) or as one Arrow table
(``poll_batch``: zero-copy from the partition files through the object store).

Consumer groups plug in through ``self._group`` (see rayka.clients.group): it
decides the assignment and supplies committed offsets; without it the
consumer is a plain manual-assignment reader. Not thread-safe, like Kafka's.
"""

from __future__ import annotations

import logging
import time
from typing import Iterator

import numpy as np
import pyarrow as pa

from rayka.clients.connection import Cluster, current, resolve
from rayka.clients.fetcher import Fetcher, PartitionState
from rayka.clients.types import OffsetAndTimestamp, Record, TopicPartition
from rayka.errors import ConfigError, ConsumerClosedError, NoOffsetForPartitionError, UnknownPartitionError

__all__ = ["Consumer"]

log = logging.getLogger(__name__)

_RESETS = ("earliest", "latest", "none")


class Consumer:
    """Reads records from partitions, by manual assignment or by topic subscription.

    - ``auto_offset_reset``: where to start without a committed offset or seek.
    - ``fetch_max_wait_ms`` (500): how long a partition holds a fetch open waiting for data.
    - ``max_poll_records`` (500): default ``max_records`` of ``poll``.
    - ``max_partition_fetch_records`` (500_000), ``max_partition_fetch_bytes`` (32 MiB): one fetch.
      The record bound sits above what one 16 MiB ``send_table`` chunk holds of small values, so
      bulk-written batches travel whole and zero-copy; the byte bound is what limits memory.
    - ``consumer_timeout_ms`` (None = forever): iteration stops after this long without records.
    - ``key_deserializer`` / ``value_deserializer``: callables applied to each record's bytes.
    - with a ``group_id``: ``session_timeout_ms``, ``heartbeat_interval_ms``, ``max_poll_interval_ms``,
      ``partition_assignment_strategy``, ``group_instance_id``, ``listener`` and
      ``default_api_timeout_ms`` (60 s: how long a synchronous commit waits out a coordinator restart).
    """

    def __init__(
        self,
        *topics: str,
        group_id: str | None = None,
        auto_offset_reset: str = "latest",
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5000,
        key_deserializer=None,
        value_deserializer=None,
        fetch_max_wait_ms: int = 500,
        max_poll_records: int = 500,
        max_partition_fetch_records: int = 500_000,
        max_partition_fetch_bytes: int = 32 * 1024 * 1024,
        consumer_timeout_ms: float | None = None,
        cluster: Cluster | None = None,
        **group_options,
    ):
        if auto_offset_reset not in _RESETS:
            raise ConfigError(f"auto_offset_reset must be one of {_RESETS}, got {auto_offset_reset!r}")
        if len(topics) == 1 and isinstance(topics[0], (list, tuple)):
            topics = tuple(topics[0])
        self._cluster = cluster or current()
        self.group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self.enable_auto_commit = enable_auto_commit
        self.auto_commit_interval_ms = auto_commit_interval_ms
        self._key_de = key_deserializer
        self._value_de = value_deserializer
        self.max_poll_records = max_poll_records
        self.consumer_timeout_ms = consumer_timeout_ms
        self._closed = False
        self._fetcher = Fetcher(
            max_wait_ms=fetch_max_wait_ms, max_partition_records=max_partition_fetch_records,
            max_partition_bytes=max_partition_fetch_bytes,
            max_buffered_records=max(2 * max_partition_fetch_records, 2 * max_poll_records),
            on_out_of_range=self._out_of_range,
            refresh_handle=lambda tp: self._cluster.topic(tp.topic, refresh=True)[1][tp.partition],
        )
        self._value_columns: dict[str, list[str] | None] = {}
        self._group = None
        if group_id is not None:
            from rayka.clients.group import GroupMembership

            self._group = GroupMembership(self, group_id, **group_options)
        elif group_options:
            raise ConfigError(f"options {sorted(group_options)} need a group_id")
        if topics:
            self.subscribe(list(topics))

    # -- assignment ---------------------------------------------------------------------------------

    def subscribe(self, topics: list[str] | None = None, pattern: str | None = None, listener=None) -> None:
        """Read these topics (or those matching ``pattern``): all their partitions, or with a
        group, the group's share of them; ``listener`` hears about rebalances."""
        self._check_open()
        if self._group is not None:
            if listener is not None:
                self._group.listener = listener
            self._group.subscribe(topics, pattern)
            return
        if pattern is not None:
            raise ConfigError("subscribe(pattern=...) needs a group_id")
        tps = []
        for topic in topics or []:
            meta, _ = self._cluster.topic(topic, refresh=True)
            tps += [TopicPartition(topic, p) for p in range(meta.partitions)]
        self._set_assignment(tps)

    def assign(self, partitions: list[TopicPartition]) -> None:
        """Read exactly these partitions (no group membership)."""
        self._check_open()
        if self._group is not None and self._group.subscribed:
            raise ConfigError("assign() cannot be mixed with a group subscription; unsubscribe first")
        tps = [TopicPartition(*tp) for tp in partitions]
        for tp in tps:
            meta, _ = self._cluster.topic(tp.topic)
            meta.check_partition(tp.partition)
        self._set_assignment(tps)

    def _set_assignment(self, tps: list[TopicPartition]) -> None:
        old = self._fetcher.states
        new = {}
        for tp in tps:
            if tp in old:
                new[tp] = old[tp]
            else:
                meta, handles = self._cluster.topic(tp.topic)
                if tp.partition >= len(handles):
                    meta, handles = self._cluster.topic(tp.topic, refresh=True)
                meta.check_partition(tp.partition)
                new[tp] = PartitionState(tp, handles[tp.partition])
                if tp.topic not in self._value_columns:
                    schema = meta.value_schema
                    self._value_columns[tp.topic] = None if schema is None else schema.names
        self._fetcher.states = new

    def assignment(self) -> set[TopicPartition]:
        return set(self._fetcher.states)

    def unsubscribe(self) -> None:
        if self._group is not None:
            self._group.unsubscribe()
        self._fetcher.states = {}

    # -- positions ----------------------------------------------------------------------------------

    def _state(self, tp) -> PartitionState:
        tp = TopicPartition(*tp)
        try:
            return self._fetcher.states[tp]
        except KeyError:
            raise UnknownPartitionError(
                f"{tp.topic}-{tp.partition} is not assigned to this consumer; assign() it first"
            ) from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record read from ``tp`` (checked on the next fetch)."""
        if not isinstance(offset, int) or offset < 0:
            raise ValueError(f"offset must be a non-negative int, got {offset!r}")
        self._state(tp).seek(offset)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self._seek_ends(partitions, beginning=True)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        self._seek_ends(partitions, beginning=False)

    def _seek_ends(self, partitions, beginning: bool) -> None:
        states = [self._state(tp) for tp in partitions] if partitions else list(self._fetcher.states.values())
        ends = resolve([s.handle.offsets.remote() for s in states])
        for s, (start, end) in zip(states, ends):
            s.seek(start if beginning else end)

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp``."""
        state = self._state(tp)
        if state.position is None:
            self._resolve_positions([state])
        return state.position

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: start for tp, (start, _) in self._offsets(partitions).items()}

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: end for tp, (_, end) in self._offsets(partitions).items()}

    def _offsets(self, partitions) -> dict[TopicPartition, tuple[int, int]]:
        tps = [TopicPartition(*tp) for tp in partitions]
        handles = [self._handle(tp) for tp in tps]
        return dict(zip(tps, resolve([h.offsets.remote() for h in handles])))

    def _handle(self, tp: TopicPartition):
        state = self._fetcher.states.get(tp)
        if state is not None:
            return state.handle
        meta, handles = self._cluster.topic(tp.topic)
        meta.check_partition(tp.partition)
        return handles[tp.partition]

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the earliest offset whose timestamp is >= the given ms (None if none)."""
        tps = [TopicPartition(*tp) for tp in timestamps]
        refs = [self._handle(tp).offset_for_time.remote(int(timestamps[tp])) for tp in tps]
        out = {}
        for tp, hit in zip(tps, resolve(refs)):
            out[tp] = None if hit is None else OffsetAndTimestamp(*hit)
        return out

    def _resolve_positions(self, states=None) -> None:
        states = [s for s in (states or self._fetcher.states.values()) if s.position is None]
        if not states:
            return
        committed = self._group.committed_offsets([s.tp for s in states]) if self._group else {}
        missing = []
        for s in states:
            offset = committed.get(s.tp)
            if offset is not None and offset >= 0:
                s.seek(offset)
            else:
                missing.append(s)
        if not missing:
            return
        if self.auto_offset_reset == "none":
            raise NoOffsetForPartitionError(
                f"no committed offset for {[f'{s.tp.topic}-{s.tp.partition}' for s in missing]} and "
                "auto_offset_reset='none'; seek() first or choose 'earliest'/'latest'"
            )
        ends = resolve([s.handle.offsets.remote() for s in missing])
        for s, (start, end) in zip(missing, ends):
            s.seek(start if self.auto_offset_reset == "earliest" else end)

    def _out_of_range(self, state: PartitionState, exc) -> None:
        if self.auto_offset_reset == "none":
            raise exc
        target = exc.log_start_offset if self.auto_offset_reset == "earliest" else exc.log_end_offset
        log.warning("%s-%d: %s; resetting to %d (%s)", state.tp.topic, state.tp.partition, exc, target,
                    self.auto_offset_reset)
        state.seek(target)

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop fetching these partitions (positions are kept) until resume()."""
        for tp in partitions:
            state = self._state(tp)
            state.paused = True
            if state.position is not None:
                state.seek(state.position)  # drop buffered and in-flight data

    def resume(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            self._state(tp).paused = False

    def paused(self) -> set[TopicPartition]:
        return {tp for tp, s in self._fetcher.states.items() if s.paused}

    # -- reading ------------------------------------------------------------------------------------

    def _gather(self, timeout_ms: float, max_records: int):
        self._check_open()
        if self._group is not None:
            started = time.monotonic()
            self._group.on_poll(timeout_ms)
            timeout_ms = max(0.0, timeout_ms - (time.monotonic() - started) * 1000)
        self._resolve_positions()
        if self._fetcher.buffered() == 0:
            self._fetcher.deadline_wait(timeout_ms)
        else:
            self._fetcher.wait(0)
        out = self._fetcher.drain(max_records)
        if self._group is not None:
            out = self._group.after_poll(out)  # never a record of a partition the member lost meanwhile
        return out

    def poll(self, timeout_ms: float = 1000, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records, waiting up to ``timeout_ms`` for the first."""
        drained = self._gather(timeout_ms, max_records or self.max_poll_records)
        records: list[Record] = []
        for state, batches in drained:
            for batch in batches:
                records.extend(self._to_records(state.tp, batch))
        return records

    def poll_batch(self, timeout_ms: float = 1000, max_records: int = 100_000) -> pa.Table:
        """Up to ``max_records`` records as one Arrow table (columns topic, partition, offset,
        timestamp_ms, key, headers, value or the topic's value columns)."""
        drained = self._gather(timeout_ms, max_records)
        tables = []
        for state, batches in drained:
            for batch in batches:
                n = batch.num_rows
                topic = pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int32)), pa.array([state.tp.topic]))
                part = pa.array(np.full(n, state.tp.partition, np.int32))
                tables.append(pa.Table.from_batches([batch]).add_column(0, "partition", part)
                              .add_column(0, "topic", topic))
        if not tables:
            return self._empty_table()
        return pa.concat_tables(tables, promote_options="permissive") if len(tables) > 1 else tables[0]

    def _empty_table(self) -> pa.Table:
        from rayka.partitions.records import log_schema

        schema = log_schema()
        for topic, cols in self._value_columns.items():
            if cols is not None:
                meta, _ = self._cluster.topic(topic)
                schema = log_schema(meta.value_schema)
                break
        return (schema.empty_table().add_column(0, "partition", pa.array([], pa.int32()))
                .add_column(0, "topic", pa.array([], pa.dictionary(pa.int32(), pa.string()))))

    def _to_records(self, tp: TopicPartition, batch: pa.RecordBatch) -> list[Record]:
        topic, partition = tp
        offsets = batch.column(0).to_numpy().tolist()
        stamps = batch.column(1).to_numpy().tolist()
        keys = batch.column(2).to_pylist() if batch.column(2).null_count < batch.num_rows else [None] * batch.num_rows
        hcol = batch.column(3)
        headers = ([dict(h) if h is not None else None for h in hcol.to_pylist()]
                   if hcol.null_count < batch.num_rows else [None] * batch.num_rows)
        value_cols = self._value_columns.get(topic)
        if value_cols is None:
            values = batch.column(4).to_pylist()
        else:
            values = batch.select(value_cols).to_pylist()
        if self._key_de is not None:
            keys = [self._key_de(k) if k is not None else None for k in keys]
        if self._value_de is not None:
            values = [self._value_de(v) if v is not None else None for v in values]
        return [Record(topic, partition, o, t, k, v, h) for o, t, k, v, h in zip(offsets, stamps, keys, values, headers)]

    def __iter__(self) -> Iterator[Record]:
        idle_since = time.monotonic()
        while not self._closed:
            records = self.poll(timeout_ms=min(self.consumer_timeout_ms or 1000, 1000))
            if records:
                idle_since = time.monotonic()
                yield from records
            elif self.consumer_timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= self.consumer_timeout_ms:
                return

    # -- offsets (groups) ---------------------------------------------------------------------------

    def commit(self, offsets: dict[TopicPartition, int] | None = None) -> None:
        """Commit the positions of the partitions this member owns (or the given offsets) for the
        group, synchronously. Waits out a coordinator restart (up to ``default_api_timeout_ms``,
        60 s); raises CommitFailedError if the member lost the partitions (the group rebalanced
        without it): records read since the last commit will be read again by their new owner."""
        self._require_group("commit").commit(offsets, sync=True)

    def commit_async(self, offsets: dict[TopicPartition, int] | None = None, callback=None):
        """Commit without waiting; ``callback(offsets, error_or_None)`` runs when it is done
        (on a Ray thread). Returns the Ray ObjectRef of the commit, or None if nothing to commit."""
        return self._require_group("commit_async").commit(offsets, sync=False, callback=callback)

    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset of ``tp`` (None if there is none)."""
        tp = TopicPartition(*tp)
        return self._require_group("committed").committed_offsets([tp]).get(tp)

    def _require_group(self, what: str):
        self._check_open()
        if self._group is None:
            raise ConfigError(f"{what}() needs a Consumer with a group_id")
        return self._group

    # -- closing ------------------------------------------------------------------------------------

    def close(self, autocommit: bool = True) -> None:
        """Leave the group (committing first if auto-commit is on) and stop fetching."""
        if self._closed:
            return
        try:
            if self._group is not None:
                self._group.close(autocommit=autocommit and self.enable_auto_commit)
        finally:
            self._fetcher.states = {}
            self._closed = True

    def _check_open(self) -> None:
        if self._closed:
            raise ConsumerClosedError("this Consumer is closed; create a new one")

    def __enter__(self) -> "Consumer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
