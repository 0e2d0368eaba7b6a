"""The producer's batches: records gathered per partition, and the futures that wait on them.

A :class:`ProduceBatch` collects the records sent to one partition until the
sender hands it off (it is full, its linger passed, or a flush asked); it then
becomes one Arrow record batch and one actor call. Every record's future points
at its batch and its index in it, so completing a batch completes all of its
records at once: no per-record Python future, no per-record actor call.

Callbacks (``add_callback``, ``add_errback``, ``add_done_callback``) run when the
batch completes, on the thread that completed it; a callback added after that
runs at once in the caller's thread. ``settled`` is set only after every callback
of the batch returned, and ``Producer.flush()`` waits on it: when flush returns,
every callback of the flushed records has run.
"""

from __future__ import annotations

import logging
import threading
import time

import pyarrow as pa
import pyarrow.ipc as ipc

from rayka.clients.stubs import is_staged
from rayka.clients.types import RecordMetadata
from rayka.config import INLINE_BYTES_MAX as _SMALL_PAYLOAD
from rayka.errors import KafkaTimeoutError
from rayka.partitions.records import HEADERS_TYPE
from rayka.partitions.schema_versions import tag

__all__ = ["ProduceBatch", "FutureRecordMetadata", "TableFuture", "to_ipc", "in_callback"]


log = logging.getLogger(__name__)


def to_ipc(batch: pa.RecordBatch | pa.Table, options: ipc.IpcWriteOptions | None = None) -> pa.Buffer | bytes:
    """An Arrow IPC stream of ``batch``: compact (a slice ships only its rows) and cheap to ship.

    Small payloads go as ``bytes``, which Ray passes inline faster than a pyarrow Buffer
    (measured ~50 us less per call); large ones stay a Buffer to travel without a copy.
    ``options`` (``codec.write_options`` of the topic's compression): the buffers travel
    compressed, and the partition's ``ipc.open_stream`` decompresses them.
    """
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, batch.schema, options=options) as writer:
        writer.write(batch)
    buf = sink.getvalue()
    return buf.to_pybytes() if buf.size < _SMALL_PAYLOAD else buf


class ProduceBatch:
    """Records bound for one partition, handed off together. Guarded by the producer's lock."""

    __slots__ = (
        "topic", "partition", "keys", "values", "timestamps", "headers", "nbytes", "created",
        "table", "sequence", "attempts", "deadline", "base_offset", "log_append_time", "error",
        "event", "settled", "lock", "has_keys", "has_headers", "value_schema", "callbacks", "count",
        "sizes", "record_errors", "positions", "splits", "leader_moved", "pipelined", "producer_id",
        "retry_at", "acked", "numbered", "schema_version",
    )

    def __init__(self, topic: str, partition: int, value_schema: pa.Schema | None = None,
                 table: pa.Table | None = None, schema_version: int | None = None):
        self.topic, self.partition = topic, partition
        self.schema_version = schema_version  # of value_schema, tagged on what build() ships
        self.keys: list = []
        self.values: list = []
        self.timestamps: list = []
        self.headers: list = []
        self.nbytes = 0
        self.created = time.monotonic()
        self.table = table
        self.sequence = -1
        self.numbered = -1  # when it took its sequence number (clients/sender.py): retries keep that order
        self.attempts = 0
        self.leader_moved = False  # the last attempt found another leader: ask for fresh metadata
        self.deadline = 0.0
        self.base_offset = -1
        self.log_append_time = -1
        self.error: BaseException | None = None
        self.event = threading.Event()  # acknowledged or failed: result() may return
        self.settled = threading.Event()  # ... and every callback has run: flush() may return
        self.lock = threading.Lock()  # orders callbacks added against completion
        self.count = 0  # records in the batch
        self.has_keys = False
        self.has_headers = False
        self.value_schema = value_schema
        self.callbacks: list | None = None
        self.sizes: list[int] = []  # each record's size (record_size's rule), to split the batch by
        # After a split (a partition refused the batch under a lowered max.message.bytes): the
        # records that failed, by their index, and each index's position in what was re-sent.
        self.record_errors: dict[int, BaseException] | None = None
        self.positions: list[int] | None = None
        self.splits = 0
        # Pipelined (a send_table chunk with acks="all" and idempotence, Sender): the producer id
        # it was numbered under, when a retry may go, and its AppendResult once acknowledged.
        self.pipelined = False
        self.producer_id: str | None = None
        self.retry_at = 0.0
        self.acked = None

    def add(self, key, value, timestamp_ms: int, headers, size: int) -> int:
        self.keys.append(key)
        self.values.append(value)
        self.timestamps.append(timestamp_ms)
        self.headers.append(headers)
        self.sizes.append(size)
        if key is not None:
            self.has_keys = True
        if headers is not None:
            self.has_headers = True
        self.nbytes += size + 16
        self.count += 1
        return self.count - 1

    def split(self, limit: int, error_for) -> list[int]:
        """Keep only the records of at most ``limit`` bytes (caller holds the producer's lock);
        the others fail with ``error_for(size)``. Returns the sizes of those dropped. The kept
        records are re-sent as a new batch: the built payload is dropped, and positions map
        each record's index to its place in it."""
        keep = [p for p, size in enumerate(self.sizes) if size <= limit]
        dropped = [size for size in self.sizes if size > limit]
        if self.positions is None:
            self.positions = list(range(len(self.sizes)))
        new_place = {old: new for new, old in enumerate(keep)}
        errors = self.record_errors if self.record_errors is not None else {}
        for index, place in enumerate(self.positions):
            if place >= 0 and place not in new_place:
                errors[index] = error_for(self.sizes[place])
                self.positions[index] = -1
            elif place >= 0:
                self.positions[index] = new_place[place]
        self.record_errors = errors
        for name in ("keys", "values", "timestamps", "headers", "sizes"):
            items = getattr(self, name)
            setattr(self, name, [items[p] for p in keep])
        self.table = None
        self.sequence = -1
        self.numbered = -1
        self.splits += 1
        return dropped

    def error_of(self, index: int) -> BaseException | None:
        """The error of record ``index``: the batch's, or its own after a split."""
        if self.error is not None:
            return self.error
        return self.record_errors.get(index) if self.record_errors else None

    def position_of(self, index: int) -> int:
        return index if self.positions is None else self.positions[index]

    def build(self, options: ipc.IpcWriteOptions | None = None) -> pa.Buffer:
        """The records as an Arrow IPC stream buffer, ready for PartitionActor.append
        (``options``: its IPC write options, the topic's compression)."""
        if isinstance(self.table, (pa.Buffer, bytes)) or is_staged(self.table):
            return self.table  # built already (send_table builds in the caller's thread)
        if self.table is not None:
            return to_ipc(tag(self.table, self.schema_version), options)
        n = len(self.values)
        arrays = [pa.array(self.timestamps, pa.int64())]
        names = ["timestamp_ms"]
        if self.has_keys:
            arrays.append(pa.array(self.keys, pa.binary()))
            names.append("key")
        if self.has_headers:
            arrays.append(pa.array(self.headers, HEADERS_TYPE))
            names.append("headers")
        if self.value_schema is None:
            arrays.append(pa.array(self.values, pa.binary()))
            names.append("value")
        else:
            # Column by column, converted as send()'s check_row converted each value.
            for field in self.value_schema:
                arrays.append(pa.array([v.get(field.name) for v in self.values], type=field.type))
                names.append(field.name)
        assert all(len(a) == n for a in arrays)
        return to_ipc(tag(pa.RecordBatch.from_arrays(arrays, names=names), self.schema_version), options)

    def complete(self, base_offset: int, log_append_time: int) -> None:
        self.base_offset, self.log_append_time = base_offset, log_append_time
        self._finish()

    def fail(self, error: BaseException) -> None:
        self.error = error
        self._finish()

    def _finish(self) -> None:
        # Drop the payload: completed batches may live on in users' futures.
        self.keys = self.values = self.headers = self.sizes = []
        self.table = None
        with self.lock:
            callbacks, self.callbacks = self.callbacks, None
            self.event.set()
        try:
            for fn in callbacks or ():
                _call(fn)
        finally:
            self.settled.set()

    def on_done(self, fn) -> None:
        """Call ``fn()`` once the batch is acknowledged or failed: later, or now if it is."""
        with self.lock:
            if not self.event.is_set():
                if self.callbacks is None:
                    self.callbacks = []
                self.callbacks.append(fn)
                return
        _call(fn)

    def wait(self, timeout: float | None, index: int | None = None) -> None:
        if not self.event.wait(timeout):
            raise KafkaTimeoutError(
                f"batch to {self.topic}-{self.partition} not acknowledged within {timeout}s"
            )
        if self.error is not None:
            raise self.error
        if index is not None and self.record_errors and index in self.record_errors:
            raise self.record_errors[index]


_callbacks_running = threading.local()


def in_callback() -> bool:
    """Whether this thread is running a producer callback (flush() here would wait for itself)."""
    return getattr(_callbacks_running, "depth", 0) > 0


def _call(fn) -> None:
    _callbacks_running.depth = getattr(_callbacks_running, "depth", 0) + 1
    try:
        fn()
    except Exception:  # noqa: BLE001 - one failing callback must not stop the others (kafka-python logs too)
        log.exception("a producer callback raised; the other callbacks still run")
    finally:
        _callbacks_running.depth -= 1


class FutureRecordMetadata:
    """The future of one ``send()``: ``result()``/``get()`` give its RecordMetadata or raise its error.

    kafka-python's habits work: ``add_callback(fn, *args)`` calls ``fn(*args, metadata)`` when
    the record is written, ``add_errback(fn, *args)`` calls ``fn(*args, exception)`` when it
    failed (both return the future, to chain); ``get(timeout)`` raises KafkaTimeoutError
    when it is not done in time. ``add_done_callback(fn)`` is concurrent.futures' ``fn(future)``.
    """

    __slots__ = ("_batch", "_index", "_timestamp")

    def __init__(self, batch: ProduceBatch, index: int, timestamp_ms: int):
        self._batch, self._index, self._timestamp = batch, index, timestamp_ms

    def result(self, timeout: float | None = None) -> RecordMetadata:
        self._batch.wait(timeout, self._index)
        return self._metadata()

    def get(self, timeout: float | None = None) -> RecordMetadata:
        """kafka-python's name for :meth:`result`."""
        return self.result(timeout)

    def _metadata(self) -> RecordMetadata:
        batch = self._batch
        offset = batch.base_offset + batch.position_of(self._index) if batch.base_offset >= 0 else -1
        ts = batch.log_append_time if self._timestamp < 0 else self._timestamp
        return RecordMetadata(batch.topic, batch.partition, offset, ts)

    def done(self) -> bool:
        return self._batch.event.is_set()

    @property
    def is_done(self) -> bool:
        return self._batch.event.is_set()

    def succeeded(self) -> bool:
        return self._batch.event.is_set() and self._batch.error_of(self._index) is None

    def failed(self) -> bool:
        return self._batch.event.is_set() and self._batch.error_of(self._index) is not None

    def add_callback(self, fn, *args, **kwargs) -> "FutureRecordMetadata":
        """Call ``fn(*args, metadata, **kwargs)`` when the record is written (at once if it is)."""
        batch = self._batch

        def run():
            if batch.error_of(self._index) is None:
                fn(*args, self._metadata(), **kwargs)

        batch.on_done(run)
        return self

    def add_errback(self, fn, *args, **kwargs) -> "FutureRecordMetadata":
        """Call ``fn(*args, exception, **kwargs)`` when the record failed (at once if it has)."""
        batch = self._batch

        def run():
            error = batch.error_of(self._index)
            if error is not None:
                fn(*args, error, **kwargs)

        batch.on_done(run)
        return self

    def exception(self, timeout: float | None = None) -> BaseException | None:
        try:
            self._batch.wait(timeout, self._index)
        except KafkaTimeoutError:
            raise
        except BaseException as exc:  # the batch's own error
            return exc
        return None

    def add_done_callback(self, fn) -> None:
        """Call ``fn(future)`` when the record is acknowledged or failed (maybe at once)."""
        self._batch.on_done(lambda: fn(self))


class TableFuture:
    """The future of ``send_table``: ``result()``/``get()`` list (partition, base_offset, count) per
    chunk. ``add_callback(fn)`` gets that list once every chunk is written, ``add_errback(fn)``
    the first chunk's error once every chunk is done and one failed."""

    def __init__(self, batches: list[ProduceBatch], counts: list[int]):
        self._batches = batches
        self._counts = counts

    def get(self, timeout: float | None = None) -> list[tuple[int, int, int]]:
        return self.result(timeout)

    def _when_all_done(self, fn) -> None:
        left = [len(self._batches)]
        lock = threading.Lock()

        def one_done():
            with lock:
                left[0] -= 1
                last = left[0] == 0
            if last:
                fn()

        if not self._batches:
            _call(fn)
        for batch in self._batches:
            batch.on_done(one_done)

    def _error(self) -> BaseException | None:
        return next((b.error for b in self._batches if b.error is not None), None)

    def add_callback(self, fn, *args, **kwargs) -> "TableFuture":
        def run():
            if self._error() is None:
                fn(*args, [(b.partition, b.base_offset, c) for b, c in zip(self._batches, self._counts)], **kwargs)

        self._when_all_done(run)
        return self

    def add_errback(self, fn, *args, **kwargs) -> "TableFuture":
        def run():
            error = self._error()
            if error is not None:
                fn(*args, error, **kwargs)

        self._when_all_done(run)
        return self

    def result(self, timeout: float | None = None) -> list[tuple[int, int, int]]:
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for batch, count in zip(self._batches, self._counts):
            batch.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            out.append((batch.partition, batch.base_offset, count))
        return out

    def done(self) -> bool:
        return all(b.event.is_set() for b in self._batches)

    @property
    def records(self) -> int:
        return sum(self._counts)
