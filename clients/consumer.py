"""Consumer: reads partitions by manual assignment or (with a group) by subscription.

``Consumer("clicks")`` takes every partition of the topics it names;
``Consumer()`` waits for ``assign([...])``. Positions start from
``auto_offset_reset`` ("latest" by default, as Kafka; "earliest"; or "none",
which raises NoOffsetForPartitionError) unless ``seek`` sets them. Records come
out as ``Record`` tuples (``poll``, iteration) or as one Arrow table
(``poll_batch``: zero-copy from the partition files through the object store).

A partition that cannot be reached (its actor died, its node is gone) never
holds back the others: it is reported (``unavailable()``, a warning, a callback)
and retried while the rest are read (positions.Positions, which the Consumer
delegates its position methods to). Damage on disk is raised
as CorruptRecordError only when the position reaches it (fetcher.py).

Consumer groups plug in through ``self._group`` (see rayka.clients.group): it
decides the assignment and supplies committed offsets; without it the
consumer is a plain manual-assignment reader. Not thread-safe, like Kafka's.
"""

from __future__ import annotations

import functools
import time
from typing import Iterator

import pyarrow as pa

from rayka.clients.consumer_options import consumer_configs, pushed_schema, reader_schema
from rayka.clients.connection import Cluster, current
from rayka.clients.fetcher import Fetcher, PartitionState
from rayka.clients.positions import Positions, reset_out_of_range
from rayka.clients.read_replicas import ReadReplicas
from rayka.clients.record_views import decode_drained, empty_table, projected_records, to_records, to_table
from rayka.clients.types import OffsetAndMetadata, OffsetAndTimestamp, Record, TopicPartition
from rayka.errors import ConfigError, ConsumerClosedError

__all__ = ["Consumer"]


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
    - ``on_partitions_unavailable``: called (in ``poll()``, the consumer's thread) with the set of
      assigned TopicPartitions that became unreachable; they are also in ``unavailable()``.
    - ``client_rack`` (None: read from each partition's leader): ``"local"`` reads each partition
      from an in-sync replica on this consumer's Ray node when there is one, a zone name from
      one on a node of that ``rayka-zone``, else from the leader (Kafka's KIP-392; see
      clients/read_replicas.py). Positions, offset look-ups and commits still go to the leader
      and the coordinator; ``metrics()["read_replicas"]`` shows which replica answered.
    - ``columns`` / ``filter`` (a ``pyarrow.compute`` expression): pushed down into the partitions
      (consumer_options.pushed_schema says what poll and poll_batch then return).
    - with a ``group_id``: ``session_timeout_ms``, ``heartbeat_interval_ms``, ``max_poll_interval_ms``,
      ``partition_assignment_strategy``, ``group_instance_id``, ``listener`` and
      ``default_api_timeout_ms`` (60 s: how long a synchronous commit waits out a coordinator restart).

    The options and their defaults are :class:`rayka.config.ConsumerConfig`'s and (with a group)
    :class:`rayka.config.GroupConfig`'s fields (read back as ``config`` and ``group_config``).
    Any other keyword (a Kafka setting such as ``bootstrap_servers``) is refused with a
    ConfigError naming the rayka equivalent.
    """

    def __init__(self, *topics: str, cluster: Cluster | None = None, **options):
        # before connecting: a bad call must start nothing
        self.config, self.group_config = config, group_config = consumer_configs(options)
        if len(topics) == 1 and isinstance(topics[0], (list, tuple)):
            topics = tuple(topics[0])
        self._cluster = cluster or current()
        self.group_id = None if group_config is None else group_config.group_id
        self.auto_offset_reset = config.auto_offset_reset
        self.enable_auto_commit = config.enable_auto_commit
        self.auto_commit_interval_ms = config.auto_commit_interval_ms
        self._key_de = config.key_deserializer
        self._value_de = config.value_deserializer
        self.max_poll_records = config.max_poll_records
        self.consumer_timeout_ms = config.consumer_timeout_ms
        self._records_received = 0
        self._polls = 0
        self._closed = False
        self._fetcher = Fetcher(
            max_wait_ms=config.fetch_max_wait_ms, max_partition_records=config.max_partition_fetch_records,
            max_partition_bytes=config.max_partition_fetch_bytes,
            max_buffered_records=max(2 * config.max_partition_fetch_records, 2 * config.max_poll_records),
            on_out_of_range=functools.partial(reset_out_of_range, config.auto_offset_reset),
            refresh_handle=lambda tp: self._cluster.topic(tp.topic, refresh=True, timeout_s=0.2)[1][tp.partition],
            read_replicas=None if config.client_rack is None else ReadReplicas(self._cluster, config.client_rack),
            columns=config.columns, filter=config.filter,
        )
        self._pushed: dict[str, pa.Schema] = {}  # per topic, the schema pushed-down fetches answer in
        self._value_columns: dict[str, list[str] | None] = {}
        self._group = None
        if group_config is not None:
            from rayka.clients.group import GroupMembership

            self._group = GroupMembership(
                group_config, cluster=self._cluster, assign=self._set_assignment, positions=self._positions_known,
                auto_commit_interval_ms=config.auto_commit_interval_ms if config.enable_auto_commit else None)
        self._positions = Positions(self._fetcher, self._cluster, group=self._group,
                                    auto_offset_reset=config.auto_offset_reset,
                                    on_unavailable=config.on_partitions_unavailable)
        if topics:
            self.subscribe(list(topics))

    # -- assignment ---------------------------------------------------------------------------------

    def subscribe(self, topics: list[str] | None = None, pattern: str | None = None, listener=None) -> None:
        """Read these topics (or those matching ``pattern``): all their partitions, or with a
        group, the group's share of them; ``listener`` hears about rebalances."""
        self._check_open()
        if self._group is not None:
            for topic in topics or []:
                self._check_pushdown(topic)  # bad columns fail here, not at the first poll
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
                    schema = self._reader_schema(tp.topic, meta)
                    self._check_pushdown(tp.topic, meta)
                    self._value_columns[tp.topic] = None if schema is None else schema.names
        self._fetcher.states = new

    def assignment(self) -> set[TopicPartition]:
        return set(self._fetcher.states)

    # -- positions (rayka.clients.positions.Positions does the work) ---------------------------------

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record read from ``tp`` (checked on the next fetch)."""
        self._positions.seek(tp, offset)

    def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Move these partitions (default: all assigned) to their log start."""
        self._positions.seek_to_beginning(*partitions)

    def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Move these partitions (default: all assigned) to their log end."""
        self._positions.seek_to_end(*partitions)

    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp`` (see Positions.position)."""
        return self._positions.position(tp)

    def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's log start offset."""
        return self._positions.beginning_offsets(partitions)

    def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's log end offset (the offset the next record written gets)."""
        return self._positions.end_offsets(partitions)

    def offsets_for_times(self, timestamps: dict[TopicPartition, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the earliest offset whose timestamp is >= the given ms (None if none)."""
        return self._positions.offsets_for_times(timestamps)

    def unavailable(self) -> set[TopicPartition]:
        """Assigned partitions that cannot be reached now (see Positions.unavailable)."""
        return self._positions.unavailable()

    def pause(self, partitions: list[TopicPartition]) -> None:
        """Stop fetching these partitions (positions are kept) until resume()."""
        self._positions.pause(partitions)

    def resume(self, partitions: list[TopicPartition]) -> None:
        """Fetch these paused partitions again."""
        self._positions.resume(partitions)

    def paused(self) -> set[TopicPartition]:
        """The partitions paused by pause()."""
        return self._positions.paused()

    def _positions_known(self) -> dict[TopicPartition, int]:
        """The position of every assigned partition that has one (what a commit sends)."""
        return {tp: s.position for tp, s in self._fetcher.states.items() if s.position is not None}

    @property
    def member_id(self) -> str | None:
        """This consumer's member id in its group (None without a group, or while not a member)."""
        return None if self._group is None else self._group.member_id

    @property
    def generation(self) -> int:
        """The group generation of the partitions this consumer holds (-1 without a group, or
        while not a member)."""
        return -1 if self._group is None else self._group.generation

    def unsubscribe(self) -> None:
        if self._group is not None:
            self._group.unsubscribe()
        self._fetcher.states = {}

    # -- reading ------------------------------------------------------------------------------------

    def _gather(self, timeout_ms: float, max_records: int):
        self._check_open()
        if self._cluster.attachment is not None:  # fetches would fail in Ray's words, or never answer
            self._cluster.attachment.check()
        started = time.monotonic()
        if self._group is not None:
            self._group.on_poll(timeout_ms)
        left_s = lambda: max(0.0, timeout_ms / 1000.0 - (time.monotonic() - started))  # noqa: E731
        self._positions.first_positions(left_s)
        self._fetcher.raise_due_error()
        if self._fetcher.buffered() == 0:
            self._fetcher.deadline_wait(left_s() * 1000.0)
        else:
            self._fetcher.wait(0)
        self._positions.report_unavailable()
        open_error = self._fetcher.take_open_error()
        if open_error is not None:  # once per failure; the other partitions' records stay buffered
            raise open_error
        out = self._fetcher.drain(max_records)
        if not out:
            self._fetcher.raise_due_error()  # met during this poll's wait, with nothing before it to hand out
        if self._group is not None:
            out = self._group.after_poll(out)  # never a record of a partition the member lost meanwhile
        self._polls += 1
        self._records_received += sum(b.num_rows for _, batches in out for b in batches)
        return out

    def poll(self, timeout_ms: float = 1000, max_records: int | None = None) -> list[Record]:
        """Up to ``max_records`` records (default ``max_poll_records``), waiting up to
        ``timeout_ms`` for the first.

        Returns a flat ``list[Record]``, empty if nothing arrived in time. Records of one
        partition come in offset order with no gap (bar a damaged run, see below) and no
        duplicate; records of different partitions are grouped by partition, the partitions
        taken in turn across polls. ``poll_by_partition()`` gives the same records as a dict
        per partition, as kafka-python's ``poll`` does.

        Raises CorruptRecordError when the position of a partition reaches damaged offsets
        (after every record before them was returned; the error names the offset to seek
        to). Partitions that cannot be reached are skipped and reported (``unavailable()``).
        """
        drained = self._gather(timeout_ms, max_records or self.max_poll_records)
        return [r for _, recs in self._decoded(drained) for r in recs]

    def poll_by_partition(self, timeout_ms: float = 1000,
                          max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        """``poll()``, its records grouped as ``{TopicPartition: [Record, ...]}`` (kafka-python's
        ``poll`` shape); partitions with no new record are left out."""
        drained = self._gather(timeout_ms, max_records or self.max_poll_records)
        out: dict[TopicPartition, list[Record]] = {}
        for tp, recs in self._decoded(drained):
            if recs:
                out.setdefault(tp, []).extend(recs)
        return out

    def _decoded(self, drained) -> list:
        """``[(tp, records), ...]`` of the drained batches (record_views.decode_drained: an
        undecodable record ends its partition's records there, Kafka's way)."""
        return decode_drained(drained, self._to_records, self.seek)

    def poll_batch(self, timeout_ms: float = 1000, max_records: int = 100_000) -> pa.Table:
        """Up to ``max_records`` records as one Arrow table (columns topic, partition, offset,
        timestamp_ms, key, headers, value or the topic's value columns; with ``columns=``,
        topic, partition, offset and those columns in the order given)."""
        table = to_table(self._gather(timeout_ms, max_records))
        return table if table is not None else self._empty_table()

    def _empty_table(self) -> pa.Table:
        for schema in self._pushed.values():
            return empty_table(None, schema)
        for topic, cols in self._value_columns.items():
            if cols is not None:
                return empty_table(self._reader_schema(topic))
        return empty_table(None)

    def _to_records(self, tp: TopicPartition, batch: pa.RecordBatch) -> list[Record]:
        if self._fetcher.pushdown:
            return projected_records(tp, batch, self._value_columns.get(tp.topic), self._key_de, self._value_de)
        return to_records(tp, batch, self._value_columns.get(tp.topic), self._key_de, self._value_de)

    def _check_pushdown(self, topic: str, meta=None) -> None:
        """ConfigError unless ``columns`` and ``filter`` apply to ``topic``; remembers the schema its
        pushed-down fetches answer in (``offset`` then the columns asked)."""
        if self._fetcher.pushdown and topic not in self._pushed:
            meta = meta or self._cluster.topic(topic, refresh=True)[0]
            self._pushed[topic] = pushed_schema(self._reader_schema(topic, meta), self._fetcher.columns,
                                                self._fetcher.filter)

    def _reader_schema(self, topic: str, meta=None):
        """The value schema ``topic`` is read in (consumer_options.reader_schema); None: untyped."""
        return reader_schema(topic, meta or self._cluster.topic(topic)[0], self.config.schema_version,
                             self._fetcher.schema_versions, lambda: self._cluster.topic(topic, refresh=True)[0])

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

    def commit(self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None) -> None:
        """Commit the positions of the partitions this member owns (or the given offsets) for the
        group, synchronously. An offset may be an ``OffsetAndMetadata(offset, metadata)``: the
        metadata string is stored with it and ``committed(tp, metadata=True)`` returns it. Waits
        out a coordinator restart (up to ``default_api_timeout_ms``, 60 s); raises
        CommitFailedError if the member lost the partitions (the group rebalanced without it):
        records read since the last commit will be read again by their new owner."""
        self._require_group("commit").commit(offsets, sync=True)

    def commit_async(self, offsets: dict[TopicPartition, int | OffsetAndMetadata] | None = None, callback=None):
        """Commit without waiting; ``callback(offsets, error_or_None)`` runs when it is done
        (on a Ray thread). Returns the Ray ObjectRef of the commit, or None if nothing to commit."""
        return self._require_group("commit_async").commit(offsets, sync=False, callback=callback)

    def committed(self, tp: TopicPartition, metadata: bool = False) -> int | OffsetAndMetadata | None:
        """The group's committed offset of ``tp`` (None if there is none); with ``metadata=True``
        an ``OffsetAndMetadata`` carrying the metadata committed with it (kafka-python's flag)."""
        tp = TopicPartition(*tp)
        group = self._require_group("committed")
        if metadata:
            return group.committed_offsets([tp], with_metadata=True).get(tp)
        return group.committed_offsets([tp]).get(tp)

    def _require_group(self, what: str):
        self._check_open()
        if self._group is None:
            raise ConfigError(f"{what}() needs a Consumer with a group_id")
        return self._group

    # -- information ----------------------------------------------------------------------------

    def topics(self) -> set[str]:
        """Names of every topic of the cluster (kafka-python's ``topics()``)."""
        self._check_open()
        return set(self._cluster.coordinator.list_topics())

    def partitions_for_topic(self, topic: str) -> set[int]:
        """The partition numbers of ``topic`` (UnknownTopicError if there is no such topic)."""
        meta, _ = self._cluster.topic(topic, refresh=True)
        return set(range(meta.partitions))

    def metrics(self) -> dict:
        """Counters since this consumer was created, as a plain dict:

        ``records_received`` (handed out by poll/poll_batch/iteration), ``polls``,
        ``fetches`` (answers from partitions), ``fetch_errors``, ``records_fetched``,
        ``bytes_fetched`` and ``batches_fetched`` (what the fetches brought, read-ahead
        included), ``records_lag`` (``{TopicPartition: high watermark - position}`` as of the
        partition's last fetch, None before it), ``records_lag_max``, ``unavailable`` (the
        number of partitions that cannot be reached now), ``read_replicas`` (``{TopicPartition:
        replica id}`` of the replica that answered the partition's last fetch, None before it),
        ``records_fetched_from_followers`` and ``read_replica_fallbacks`` (fetches a follower
        could not serve, read from the leader instead) with ``client_rack``.
        """
        m = self._fetcher.metrics
        lag = self._fetcher.lags()
        known_lags = [v for v in lag.values() if v is not None]
        return {
            "records_received": self._records_received, "polls": self._polls,
            "fetches": m.fetches, "fetch_errors": m.fetch_errors, "records_fetched": m.records_fetched,
            "bytes_fetched": m.bytes_fetched, "batches_fetched": m.batches_fetched,
            "records_lag": lag, "records_lag_max": max(known_lags, default=None),
            "unavailable": sum(1 for s in self._fetcher.states.values() if s.unavailable is not None),
            "read_replicas": {tp: s.served_by for tp, s in self._fetcher.states.items()},
            "records_fetched_from_followers": m.records_fetched_from_followers,
            "read_replica_fallbacks": m.read_replica_fallbacks,
        }

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


def group_membership(consumer: Consumer):
    """The consumer's GroupMembership (rayka.clients.group), or None without a ``group_id``:
    the supported way for tools and tests (rayka.testing's heartbeat helpers) to reach it."""
    return consumer._group
