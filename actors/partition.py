"""PartitionActor: one Ray actor per partition, a thin shell around PartitionLog.

Concurrency groups keep a long-poll fetch from blocking appends: appends run one
at a time in ``append`` (the log serialises them anyway), fetches wait in
``fetch`` threads on the log's condition variable, and look-ups run in
``control``. The actor owns the log's tick loop (interval fsync, roll by age,
retention). It restarts after a crash (``max_restarts=-1``) and recovers from
its files when ``__init__`` runs again. A log that cannot open does not crash
``__init__`` (Ray would restart it into the same failure forever): the actor
comes up failed and answers every call with the LogOpenError that says why,
trying to open again now and then (log_opener.py).

Memory: every partition is a process of its own (benchmarks/partition_cost.py), so
the actor keeps what it holds small. It imports only the storage engine (``rayka``
loads its clients lazily), and after :data:`IDLE_RELEASE_S` without appends or
fetches it drops its maps, caches and buffers, collects garbage, asks Arrow's pool to
release what it does not use and trims the C heap.

Config changes (``Admin.alter_topic_config``) arrive through ``update_config`` with
the topic's config version; the newest is also written to the partition directory
(partitions/config_file.py), since Ray restarts the actor with its first arguments.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import shutil
import threading
import time

import pyarrow as pa
import pyarrow.ipc as ipc
import ray

from rayka.config import INLINE_BYTES_MAX as _INLINE_BYTES, TopicConfig
from rayka.messages import AppendResult, FetchResponse, LogBounds, PartitionStats, TimeLookup
from rayka.partitions import codec
from rayka.partitions.config_file import read_config, write_config
from rayka.partitions.log import PartitionLog
from rayka.partitions.log_opener import LogOpener

__all__ = ["PartitionActor", "TICK_INTERVAL_S", "IDLE_RELEASE_S"]

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.1
#: Seconds without an append or a fetch after which a partition gives its memory back.
IDLE_RELEASE_S = 5.0


def _malloc_trim():
    """glibc's malloc_trim(0), or a no-op where there is none (musl, macOS)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return lambda: None
    return lambda: trim(0)


@ray.remote(
    num_cpus=0,
    max_restarts=-1,
    max_task_retries=0,
    concurrency_groups={"append": 1, "fetch": 32, "control": 4},
)
class PartitionActor:
    """Owns the log files of one partition: append, fetch (long-poll), offset look-ups."""

    def __init__(self, directory: str, config: dict, value_schema: pa.Schema | None, topic: str,
                 partition: int, config_version: int = 0):
        self._trim = _malloc_trim()
        self._topic, self._partition, self._directory = topic, partition, directory
        self._owner = ray.get_runtime_context().get_actor_name()  # names the topic's id
        stored = read_config(directory, self._owner)
        if stored is not None and stored[0] > config_version:
            config_version, config = stored  # changed since Ray first created this actor
        self._config_version = config_version
        self._config = TopicConfig.from_dict(config)  # what a log opened later starts with
        self._config_lock = threading.Lock()
        self._last_used = time.monotonic()
        self._released = False  # opening the log (recovery) may have mapped and cached files
        self._opener = LogOpener(
            lambda: PartitionLog(directory, config=self._config, value_schema=value_schema),
            directory=directory, name=f"{topic}-{partition}")
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="rayka-tick", daemon=True)
        self._ticker.start()

    def _ready(self) -> PartitionLog:
        """The open log, or raise the LogOpenError that keeps it from opening (log_opener.py)."""
        return self._opener.ready()

    def _tick_loop(self) -> None:
        while not self._stop.wait(TICK_INTERVAL_S):
            if self._opener.log is None:
                continue
            try:
                self._opener.log.tick()
                if not self._released and time.monotonic() - self._last_used > IDLE_RELEASE_S:
                    self._release_memory()
            except Exception:  # keep ticking; the next append or fetch reports real trouble
                log.exception("tick of %s-%d failed", self._topic, self._partition)

    def _release_memory(self) -> None:
        self._released = True
        self._opener.log.release_memory()
        gc.collect()
        pa.default_memory_pool().release_unused()
        self._trim()

    def _used(self) -> None:
        self._last_used = time.monotonic()
        self._released = False

    @ray.method(concurrency_group="append")
    def append(self, data, producer_id: str | None = None, sequence: int = -1) -> AppendResult:
        """Append one batch (a RecordBatch, Table, or Arrow IPC stream buffer)."""
        plog = self._ready()
        self._used()
        if isinstance(data, (pa.Buffer, bytes)):
            data = ipc.open_stream(data).read_all()
        return plog.append(data, producer_id=producer_id, sequence=sequence)  # a rayka.messages.AppendResult

    @ray.method(concurrency_group="fetch")
    def fetch(self, offset: int, max_records: int, max_bytes: int, max_wait_ms: int,
              with_schema: bool = True) -> FetchResponse:
        """Read from ``offset``; at the log end, wait up to ``max_wait_ms`` for new records.

        The answer's ``payload`` is the stored IPC messages back to back, as ``bytes`` when
        small, else a tuple of zero-copy Arrow buffers; its ``schema`` is the log's serialised
        Arrow schema when ``with_schema`` (a consumer asks once), else None.
        """
        plog = self._ready()
        self._used()
        if max_wait_ms > 0 and offset >= plog.log_end_offset:
            plog.wait_for(offset, max_wait_ms / 1000.0)
            self._used()
        schema = plog.schema.serialize().to_pybytes() if with_schema else None  # asked for once per consumer
        if plog.closed:
            # Closing or deleted: answer empty rather than leave an error nobody reads.
            return FetchResponse.empty(offset, schema)
        result = plog.read(offset, max_records=max_records, max_bytes=max_bytes)
        if sum(buf.size for buf in result.buffers) < _INLINE_BYTES:
            payload = b"".join(result.buffers)
        else:
            payload = result.buffers
        return FetchResponse(result.offset, payload, result.records, result.next_offset, result.log_start_offset,
                             result.high_watermark, schema)

    @ray.method(concurrency_group="control")
    def offsets(self) -> LogBounds:
        plog = self._ready()
        return LogBounds(plog.log_start_offset, plog.log_end_offset)

    @ray.method(concurrency_group="control")
    def offset_for_time(self, timestamp_ms: int) -> TimeLookup | None:
        """The earliest record at or after ``timestamp_ms``, or None."""
        plog = self._ready()
        offset = plog.offset_for_time(timestamp_ms)
        if offset is None:
            return None
        result = plog.read(offset, max_records=1)
        for buf in result.buffers:
            for msg in codec.iter_messages(buf):
                if msg.header.base_offset <= offset < msg.header.next_offset:
                    batch = codec.decode(msg, result.schema)
                    return TimeLookup(offset, batch.column(1)[offset - msg.header.base_offset].as_py())
        return TimeLookup(offset, timestamp_ms)

    @ray.method(concurrency_group="control")
    def stats(self) -> PartitionStats:
        plog = self._ready()
        return PartitionStats(
            log_start_offset=plog.log_start_offset, log_end_offset=plog.log_end_offset,
            size_bytes=plog.size_bytes, segments=plog.segment_count,
            node_id=ray.get_runtime_context().get_node_id(), recovered_batches=plog.recovered_batches,
            truncated_bytes=plog.truncated_bytes,
            damaged_offsets=tuple(tuple(r) for r in plog.damaged_offsets),  # each hole kept in place
        )

    @ray.method(concurrency_group="control")
    def update_config(self, config: dict, version: int) -> int:
        """Apply the topic config of ``version`` if it is newer than the one in use (an older
        one, delivered late, is ignored); returns the version in use. The new values take
        effect at once: segment.bytes at the next append, retention and segment.ms at the
        next tick, index.interval.bytes for new segments."""
        new = TopicConfig.from_dict(config)
        with self._config_lock:
            if version > self._config_version:
                write_config(self._directory, version, new.to_dict(), self._owner)
                self._config = new  # a log that opens later starts with it
                if self._opener.log is not None:
                    # Readers of log.config see the old or the new object, never a mix.
                    self._opener.log.config = new
                self._config_version = version
            return self._config_version

    @ray.method(concurrency_group="control")
    def config(self) -> tuple[int, dict]:
        """(version, config) in use."""
        return self._config_version, self._config.to_dict()

    @ray.method(concurrency_group="control")
    def roll(self) -> None:
        self._ready().roll()

    @ray.method(concurrency_group="control")
    def close(self) -> None:
        """Flush and close the log cleanly (the actor should be killed afterwards)."""
        self._stop.set()
        self._opener.stop()
        if self._opener.log is not None:
            self._opener.log.close()

    @ray.method(concurrency_group="control")
    def delete(self) -> None:
        """Remove the partition's files (topic deletion)."""
        self._stop.set()
        self._opener.stop()
        if self._opener.log is not None:
            self._opener.log.delete()
        else:  # a log that never opened: its files go all the same (topic deletion must work)
            shutil.rmtree(self._directory, ignore_errors=True)
        try:  # the last partition of a topic on this node removes the topic's folder
            os.rmdir(os.path.dirname(self._directory))
        except OSError:
            pass

    @ray.method(concurrency_group="control")
    def ping(self) -> bool:
        """Liveness only: True even while the log cannot open (calls that need it raise)."""
        return True
