"""Producer: batches records per partition and ships each batch as one Arrow IPC buffer.

``send()`` only appends to the open batch of the record's partition and returns
a future; a sender thread hands a batch to its partition actor when it holds
``batch_size`` bytes, when ``linger_ms`` has passed, or on ``flush()``. Each
partition has at most one append in flight, so while one call travels, the
next batch grows: under load a batch carries everything that arrived during a
round trip, which is what hides the ~1 ms actor call.

Idempotence (default on): the producer has a random id, and numbers its
batches per partition; a batch whose call failed with the actor unavailable is
re-sent with the same number until ``delivery_timeout_ms``, and the partition
answers a re-sent batch with the offsets it got the first time. So a retry
never writes a record twice, and per-partition order holds.

Memory is bounded: records waiting or in flight take at most ``buffer_memory``
bytes; ``send()`` blocks up to ``max_block_ms`` for room, then raises
BufferFullError (at once inside a callback).

A batch the partition refuses because the topic's ``max.message.bytes`` was lowered
after its records were checked is split (Sender._split): the records over the new
limit fail, the others are sent again under a new sequence.

Bad input is refused by the call that was wrong (record_checks): a record joins a
batch shared with others, and nothing that would fail the batch may get in.
"""

from __future__ import annotations

import threading
import time
import uuid
import warnings

import pyarrow.compute as pc

from rayka.clients.accumulator import FutureRecordMetadata, ProduceBatch, TableFuture, in_callback, to_ipc
from rayka.clients.bulk import split_table
from rayka.clients.connection import Cluster, current
from rayka.clients.producer_options import producer_config
from rayka.clients.partitioner import StickyPartitioner, partition_for_key
from rayka.clients.produce_queue import ProduceQueue
from rayka.clients.record_checks import (
    check_headers,
    check_partition_range,
    check_partition_type,
    check_table_columns,
    check_timestamp,
    check_topic,
)
from rayka.partitions.codec import write_options
from rayka.partitions.producer_state import KAFKA_ID_PREFIX
from rayka.partitions.record_size import bytes_record_size
from rayka.partitions.records import log_schema, prepare_batch
from rayka.partitions.schema_versions import tag
from rayka.clients.sender import Sender
from rayka.clients.stubs import stage
from rayka.clients.serde import check_bytes, check_row, explain_mismatch, table_from
from rayka.clients.typed_inputs import as_row
from rayka.client_config import schema_version_for
from rayka.errors import (
    BufferFullError,
    ConfigError,
    InvalidCallError,
    KafkaTimeoutError,
    OldTimestampWarning,
    ProducerClosedError,
    RecordTooLargeError, SchemaMismatchError,
)

__all__ = ["Producer"]


class _Topic:
    __slots__ = ("name", "partitions", "handles", "max_message_bytes", "value_schema", "log_append_time",
                 "retention_ms", "replicated", "ipc_options", "schema_version")

    def __init__(self, meta, handles, schema_version: int | None = None):
        self.name = meta.name
        self.partitions = meta.partitions
        self.handles = handles
        self.max_message_bytes = meta.topic_config.max_message_bytes
        # Batches are tagged with the version written in: the one pinned, else the latest known.
        self.schema_version = None if meta.value_schema is None else schema_version or meta.schema_version
        self.value_schema = None if self.schema_version is None else meta.schema_for(self.schema_version)
        self.log_append_time = meta.topic_config.message_timestamp_type == "LogAppendTime"
        self.retention_ms = meta.topic_config.retention_ms
        # A replicated partition has another replica to lead it when its leader's node is gone.
        self.replicated = meta.replicated()
        # The topic's compression.type: batches cross the wire compressed with it.
        self.ipc_options = write_options(meta.topic_config.compression_type, meta.topic_config.compression_level)


class Producer:
    """Sends records to topics. Thread-safe; use as a context manager or call ``close()``.

    - ``acks``: 0 (do not wait), 1 (the leader wrote the batch) or "all" (every in-sync
      replica has it; with one replica per partition the same as 1). See README, Replication.
    - ``linger_ms`` (5), ``batch_size`` (16384 bytes): when a partition's batch is handed off.
    - ``idempotent`` (True): retries never duplicate (see module docs).
    - ``buffer_memory`` (32 MiB), ``max_block_ms`` (60 s): the memory bound.
    - ``delivery_timeout_ms`` (120 s): how long a batch may be retried before its futures fail.
    - ``key_serializer`` / ``value_serializer``: callables to bytes; without them keys and
      values must be bytes (or, for a topic with a schema, values are dicts of columns).

    The options and their defaults are :class:`rayka.config.ProducerConfig`'s fields (read back
    as ``producer.config``). Any other keyword (a Kafka setting such as ``bootstrap_servers``)
    raises ConfigError naming what rayka does instead. ``metrics()`` gives the producer's counters.

    ``producer_id``: the idempotence id, instead of a random one, for a writer that may run
    again (a retried Ray task): the same id sending the same batches, numbered again from 0
    per partition, is answered as the duplicate it is, so the rerun writes nothing twice (see
    rayka.data.write_topic). Two live producers must never share one.
    """

    def __init__(self, *, cluster: Cluster | None = None, producer_id: str | None = None, **options):
        self.config = config = producer_config(options)
        if producer_id is not None and (not isinstance(producer_id, str) or not producer_id):
            raise ConfigError(f"producer_id must be a non-empty string, not {producer_id!r}")
        if isinstance(producer_id, str) and producer_id.startswith(KAFKA_ID_PREFIX):
            raise ConfigError(f"producer_id {producer_id!r}: ids starting {KAFKA_ID_PREFIX!r} are the Kafka "
                              "gateway's (Kafka's record-sequence rules apply to them); choose another")
        if producer_id is not None and not config.idempotent:
            raise ConfigError("producer_id= needs idempotent=True: without idempotence no id is sent")
        self.acks = config.acks
        self.linger_s = config.linger_ms / 1000.0
        self.batch_size = config.batch_size
        self.idempotent = config.idempotent
        self.producer_id = (producer_id or uuid.uuid4().hex) if config.idempotent else None
        self.buffer_memory = config.buffer_memory
        self.max_block_s = config.max_block_ms / 1000.0
        self.delivery_timeout_s = config.delivery_timeout_ms / 1000.0
        self.retry_backoff_s = config.retry_backoff_ms / 1000.0
        self._key_ser = config.key_serializer
        self._value_ser = config.value_serializer
        self._cluster = cluster or current()
        self._topics: dict[str, _Topic] = {}
        self._pinned = config.schema_version  # schema_version: None, a version, or topic -> version
        self._schema_checked: dict[str, float] = {}  # topic -> when send() last looked for a newer schema
        self._queue = ProduceQueue()  # shared with the sender: see ProduceQueue for its fields
        self._closed = False
        self._sticky = StickyPartitioner(config.batch_size)
        self._warned_old: set[str] = set()  # topics warned about a record older than retention.ms
        self._sending = Sender(self._queue, config, producer_id=self.producer_id, topic=self._topic,
                               cached_topic=self._topics.get)
        self._sender = threading.Thread(target=self._sending.run, name="rayka-producer", daemon=True)
        self._sender.start()

    # -- metadata -------------------------------------------------------------------------------

    def _topic(self, name: str, refresh: bool = False) -> _Topic:
        topic = self._topics.get(name)
        if topic is None or refresh:
            meta, handles = self._cluster.topic(name, refresh=refresh)
            pinned = schema_version_for(self._pinned, name)
            if pinned is not None and meta.value_schema is not None and pinned > meta.schema_version:
                meta, handles = self._cluster.topic(name, refresh=True)  # registered since it was cached
            topic = self._topics[name] = _Topic(meta, handles, pinned)  # UnknownSchemaVersionError
        return topic

    def _checked_chunks(self, t: _Topic, data, partition: int | None) -> list:
        """send_table's ``data`` as (partition, chunk) pairs, each checked as the partition will:
        a rejected chunk would leave the others written, so a bad table is refused whole."""
        table = check_table_columns(table_from(data, t.value_schema, t.name), t.name, t.partitions)
        if "timestamp_ms" in table.column_names and table.num_rows:
            oldest = pc.min(table.column("timestamp_ms")).as_py()
            if oldest is not None:
                self._check_age(t, oldest)
        chunks = list(split_table(table, t.name, t.partitions, partition))
        stored = log_schema(t.value_schema)
        for _, chunk in chunks:
            try:
                prepare_batch(chunk, stored, now_ms=0, max_message_bytes=t.max_message_bytes)
            except SchemaMismatchError as exc:
                raise explain_mismatch(chunk, t.value_schema, exc) from None
        return chunks

    def _newer_schema(self, t: _Topic) -> _Topic:
        """``t`` refreshed when the topic has a newer schema version than ``t`` knows (a look-up
        that found none is not repeated for a second); else the SchemaMismatchError being handled
        is raised again."""
        now = time.monotonic()
        if t.value_schema is not None and schema_version_for(self._pinned, t.name) is None and now - self._schema_checked.get(t.name, 0.0) >= 1.0:
            fresh = self._topic(t.name, refresh=True)
            if fresh.schema_version != t.schema_version:
                return fresh
            self._schema_checked[t.name] = now  # nothing newer: bad rows do not ask again at once
        raise  # noqa: PLE0704 - called in an except block: the mismatch stands

    def partitions_for(self, topic: str) -> list[int]:
        return list(range(self._topic(topic, refresh=True).partitions))

    def metrics(self) -> dict:
        """Counters since the producer started: ``records_sent``, ``bytes_sent``, ``batches_sent``,
        ``retries``, ``errors`` (records that failed for good), the gauges ``buffered_bytes`` and
        ``batches_in_flight``, and the same counters per topic under ``topics``."""
        with self._queue.cv:
            in_flight = len(self._queue.inflight) + sum(map(len, self._queue.acking.values()))
            return self._queue.metrics.snapshot(buffered_bytes=self._queue.buffered, batches_in_flight=in_flight)

    def _check_age(self, t: _Topic, timestamp_ms: int) -> None:
        """Warn (once per topic) when a record is older than the topic's retention.ms."""
        if t.retention_ms <= 0 or t.log_append_time or t.name in self._warned_old:
            return
        now_ms = time.time_ns() // 1_000_000
        if timestamp_ms < now_ms - t.retention_ms:
            self._warned_old.add(t.name)
            warnings.warn(
                f"a record sent to topic {t.name!r} has timestamp_ms={timestamp_ms}, "
                f"{(now_ms - timestamp_ms) / 3_600_000:.1f} h ago, older than the topic's retention.ms "
                f"({t.retention_ms} ms): it is written, but retention deletes it with its segment as soon "
                "as the segment holds nothing newer (at the next pass, if the records beside it are as "
                "old). Send current timestamps, or raise the topic's retention.ms (-1 keeps records "
                "forever). Warned once per producer and topic",
                OldTimestampWarning,
                stacklevel=3,
            )

    # -- sending ----------------------------------------------------------------------------------

    def send(self, topic: str, value=None, key=None, headers=None, timestamp_ms: int | None = None,
             partition: int | None = None) -> FutureRecordMetadata:
        """Queue one record; returns a future of its RecordMetadata.

        ``value``: bytes (or what ``value_serializer`` takes); for a topic with a schema, a dict
        of its columns, a dataclass instance or a pydantic model (fields by name), checked here
        (SchemaMismatchError naming the column, its type and what was found).

        ``headers``: a dict ``{str: bytes}`` or a list of ``(str, bytes)`` pairs; ``timestamp_ms``:
        an int, 0 <= t < 2**63 (default now); ``partition``: an int (default: the key's partition,
        or the sticky partitioner's for keyless records). An argument that does not fit raises
        InvalidRecordError here and nothing is queued; so does a record over the topic's
        max.message.bytes (RecordTooLargeError), measured by the partition's own rule.

        With the buffer full, send() waits up to ``max_block_ms`` for room, then raises
        BufferFullError; inside a producer callback it raises BufferFullError at once, since
        the thread running callbacks is the one whose completions would free the room.
        """
        if self._queue.closing:
            raise ProducerClosedError("send() on a closed Producer; create a new one")
        t = self._topics.get(topic) if type(topic) is str else None
        if t is None:
            t = self._topic(check_topic(topic))
        if self._key_ser is not None and key is not None:
            key = self._key_ser(key)
        if self._value_ser is not None and value is not None:
            value = self._value_ser(value)
        if key is not None and type(key) is not bytes:
            check_bytes(key, "key", "key_serializer")
            key = bytes(key)  # bytearray/memoryview: hashable for the partitioner, one Arrow type
        if t.value_schema is None:
            if value is not None and type(value) is not bytes:
                check_bytes(value, "value", "value_serializer")
                value = bytes(value)  # a memoryview's len() counts items, not bytes
            value_bits = 8 * len(value) if value is not None else 0
        else:
            if type(value) is not dict:
                value = as_row(value)  # a dataclass or pydantic model: its fields by name
            try:
                value_bits = check_row(value, t.value_schema, topic)
            except SchemaMismatchError:
                t = self._newer_schema(t)  # the row may be of a version registered since
                value_bits = check_row(value, t.value_schema, topic)
        header_bytes = 0
        if headers is not None:
            headers, header_bytes = check_headers(headers)
        # The partition's own rule (rayka.partitions.record_size), so it cannot refuse what passes here.
        size = bytes_record_size(key, value_bits, header_bytes)
        if size > t.max_message_bytes:
            raise RecordTooLargeError(
                f"record of {size} bytes is over topic {topic!r}'s max.message.bytes "
                f"({t.max_message_bytes}); split it or raise the topic's max.message.bytes",
                max_message_bytes=t.max_message_bytes,
            )
        if partition is not None:
            partition = check_partition_type(partition)
            if not 0 <= partition < t.partitions:
                t = self._topic(topic, refresh=True)  # partitions may have been added since
                check_partition_range(partition, topic, t.partitions)
        elif key is not None:
            partition = partition_for_key(key, t.partitions)
        if timestamp_ms is None:
            ts = time.time_ns() // 1_000_000
        else:
            ts = check_timestamp(timestamp_ms)
            self._check_age(t, ts)
        with self._queue.cv:
            if self._queue.closing:  # checked again under the lock: the sender may have stopped meanwhile
                raise ProducerClosedError("send() on a closed Producer; create a new one")
            if self._queue.buffered + size > self.buffer_memory:
                self._wait_for_room(size)
            if partition is None:
                partition = self._sticky.partition(topic, t.partitions, size + 16)
            tp = (topic, partition)
            batch = self._queue.open.get(tp)
            if batch is not None and batch.schema_version != t.schema_version:
                # A row of another schema version cannot join it: it goes as it is, first.
                del self._queue.open[tp]
                self._queue.queued.setdefault(tp, []).append(batch)
                batch = None
            if batch is None:
                batch = ProduceBatch(topic, partition, t.value_schema, schema_version=t.schema_version)
                self._queue.open[tp] = batch
                self._queue.cv.notify()
            index = batch.add(key, value, ts, headers, size)
            self._queue.buffered += size + 16
            if batch.nbytes >= self.batch_size:
                self._queue.cv.notify()
        return FutureRecordMetadata(batch, index, -1 if t.log_append_time else ts)

    def send_table(self, topic: str, data, partition: int | None = None) -> TableFuture:
        """Send a pyarrow Table/RecordBatch, a pandas or Polars DataFrame, or a list of rows (dicts,
        dataclasses, pydantic models) in bulk, Arrow end to end.

        Columns: ``value`` (or the topic's schema columns), and optional ``key``,
        ``timestamp_ms``, ``headers`` (map<string, binary>), ``partition``. Rows with a
        key go to the key's partition; rows without one are split in contiguous chunks.
        """
        if self._queue.closing:
            raise ProducerClosedError("send_table() on a closed Producer; create a new one")
        t = self._topic(check_topic(topic))
        if partition is not None:
            partition = check_partition_type(partition)  # an int: np.int64(1) answers as 1
            check_partition_range(partition, topic, t.partitions)
        try:
            chunks = self._checked_chunks(t, data, partition)
        except SchemaMismatchError:
            t = self._newer_schema(t)  # the table may be of a version registered since
            chunks = self._checked_chunks(t, data, partition)
        batches = []
        for part, chunk in chunks:
            size = chunk.nbytes
            with self._queue.cv:
                if self._queue.buffered + size > self.buffer_memory:
                    self._wait_for_room(min(size, self.buffer_memory))
                self._queue.buffered += size  # reserved before the copy below, so memory stays bounded
            try:
                # Serialised here, in the caller's thread: the sender ships chunk k+1 the moment
                # chunk k is acknowledged, and this copy overlaps the partition's work on chunk k.
                payload = to_ipc(tag(chunk, t.schema_version), t.ipc_options)
                if not isinstance(payload, bytes):
                    # Into the object store here too: this copy then also overlaps the append in
                    # flight, instead of happening in the sender when the call is made.
                    payload = stage(payload)
                batch = ProduceBatch(topic, part, t.value_schema, table=payload, schema_version=t.schema_version)
                batch.pipelined = True  # a bulk chunk: the Sender pipelines it under acks="all"
            except BaseException:
                with self._queue.cv:
                    self._queue.buffered -= size
                raise
            batch.nbytes = size
            batch.count = chunk.num_rows
            with self._queue.cv:
                self._queue.queued.setdefault((topic, part), []).append(batch)
                self._queue.cv.notify()
            batches.append(batch)
        return TableFuture(batches, [chunk.num_rows for _, chunk in chunks])

    def _wait_for_room(self, size: int) -> None:
        if in_callback():
            # This thread completes batches: while it waits, no room is freed. Refuse at once.
            raise BufferFullError(
                f"producer buffer ({self.buffer_memory} bytes) is full, and send() in a producer callback "
                "cannot wait for room (the callback holds up the completions that free it); send from "
                "your own thread, or raise buffer_memory"
            )
        deadline = time.monotonic() + self.max_block_s
        self._queue.flushing += 1  # hand everything off so memory frees up
        try:
            while self._queue.buffered + size > self.buffer_memory and self._queue.buffered > 0:
                self._queue.cv.notify()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BufferFullError(
                        f"producer buffer ({self.buffer_memory} bytes) stayed full for "
                        f"{self.max_block_s:.1f}s (max_block_ms); the partitions are not keeping up. "
                        "Raise buffer_memory or max_block_ms, or send less"
                    )
                self._queue.cv.wait(remaining)
        finally:
            self._queue.flushing -= 1

    def flush(self, timeout: float | None = None) -> None:
        """Send everything queued so far and wait until it is acknowledged (or failed) and every
        callback of those records has run. Not from inside a callback (InvalidCallError)."""
        _refuse_in_callback("flush")
        with self._queue.cv:
            pending = self._queue.pending_locked()
            self._queue.flushing += 1
            self._queue.cv.notify()
        try:
            deadline = None if timeout is None else time.monotonic() + timeout
            for batch in pending:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not batch.settled.wait(remaining):
                    raise KafkaTimeoutError(f"flush did not finish within {timeout}s")
        finally:
            with self._queue.cv:
                self._queue.flushing -= 1

    def close(self, timeout: float | None = None) -> None:
        """Flush, then stop the sender; further sends raise ProducerClosedError.

        With ``timeout`` (seconds), close takes at most about that long, as Kafka's
        ``close(timeout)``: records not yet handed to their partition by then fail with
        ProducerClosedError (their futures and errbacks say so); batches already in flight
        still complete when their partition answers. close() itself does not raise.
        """
        if self._closed:
            return
        _refuse_in_callback("close")
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self.flush(timeout)
        except KafkaTimeoutError:
            self._sending.abandon_unsent(timeout)
        finally:
            with self._queue.cv:
                self._queue.closing = True
                self._queue.cv.notify()
            self._sender.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
            self._closed = True

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        if getattr(self, "_sender", None) is not None and not getattr(self, "_closed", True):
            with self._queue.cv:
                self._queue.closing = True
                self._queue.cv.notify()


def _refuse_in_callback(call: str) -> None:
    if in_callback():
        raise InvalidCallError(
            f"Producer.{call}() inside a producer callback would wait for that callback to return; "
            f"call {call}() from your own thread once the callback is done"
        )
