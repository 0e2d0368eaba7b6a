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
import dataclasses
import gc
import logging
import os
import shutil
import threading
import time

import pyarrow as pa
import ray

from rayka.actors.replication import Replication
from rayka.config import INLINE_BYTES_MAX as _INLINE_BYTES, TopicConfig
from rayka.coordinator.election import PartitionState
from rayka.errors import CorruptRecordError, NotLeaderError, OffsetOutOfRangeError, SchemaMismatchError
from rayka.messages import (AppendResult, FetchResponse, LogBounds, PartitionStats, ReplicaFetchRequest,
                            ReplicaFetchResponse, ReplicaStatus, TimeLookup)
from rayka.partitions import codec, pushdown, version_read
from rayka.partitions.reframe import ProducedBatch, read_produced
from rayka.partitions.leader_role import serve_replica_fetch
from rayka.partitions.config_file import read_config, write_config
from rayka.partitions.follower_role import FollowerRole
from rayka.partitions.replicated_log import ReplicaLog
from rayka.partitions.schema_versions import tagged_version
from rayka.partitions.log_opener import LogOpener

__all__ = ["PartitionActor", "TICK_INTERVAL_S", "IDLE_RELEASE_S"]

log = logging.getLogger(__name__)

TICK_INTERVAL_S = 0.1
#: Seconds without an append or a fetch after which a partition gives its memory back.
IDLE_RELEASE_S = 5.0
#: The longest an acks="all" append waits for its followers (Kafka's request.timeout.ms).
_ACK_TIMEOUT_S = 30.0


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
    # "append" has threads for acks="all" appends waiting for their followers; appends are
    # written one at a time under the log's lock, and a producer keeps one write in flight per
    # partition (plus up to clients.sender.MAX_ACKING pipelined send_table chunks in wait_acked).
    concurrency_groups={"append": 16, "fetch": 32, "control": 4},
)
class PartitionActor:
    """Owns the log files of one partition: append, fetch (long-poll), offset look-ups."""

    def __init__(self, directory: str, config: dict, value_schema: pa.Schema | None, topic: str,
                 partition: int, config_version: int = 0, replica_id: int = 0, initial_state: dict | None = None,
                 namespace: str = "rayka", schema_versions: dict | None = None):
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
            lambda: ReplicaLog(directory, config=self._config, value_schema=value_schema,
                               schema_versions=schema_versions),
            directory=directory, name=f"{topic}-{partition}")
        # ``namespace``: where its fellow replicas and the coordinator are named (the runtime
        # context gives the job's namespace, not the actor's).
        self._replication = Replication(self._owner or "", namespace, topic, partition,
                                        replica_id, lambda: self._config)
        # An unreplicated partition leads at once; a replica waits for the controller to name its role.
        self._initial_state = PartitionState.from_dict(initial_state) if initial_state else None
        self._reads = pushdown.ReadCounters()  # bytes read and shipped by fetches (stats)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="rayka-tick", daemon=True)
        self._ticker.start()

    def _ready(self) -> ReplicaLog:
        """The open log, or raise the LogOpenError that keeps it from opening (log_opener.py)."""
        plog = self._opener.ready()
        if self._initial_state is not None:
            state, self._initial_state = self._initial_state, None
            self._replication.apply(plog, state, high_watermark=plog.log_end_offset)
        return plog

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
        pushdown.release_scratch()
        gc.collect()
        pa.default_memory_pool().release_unused()
        self._trim()

    def _used(self) -> None:
        self._last_used = time.monotonic()
        self._released = False

    @ray.method(concurrency_group="append")
    def append(self, data, producer_id: str | None = None, sequence: int = -1, acks: int = 1,
               leader_epoch: int = -1, wait_acks: bool = True) -> AppendResult:
        """Append one batch (a RecordBatch, Table, or Arrow IPC stream buffer) as the leader.

        ``acks`` -1 ("all"): refused before it is written when the ISR is smaller than
        min.insync.replicas, and answered once every in-sync replica has it (the high
        watermark passed it); with ``wait_acks`` False it is answered once written, with the
        leader epoch, and the caller waits for the replicas with :meth:`wait_acked` (a
        producer pipelining its bulk chunks: the next one is written while this one is
        copied). ``leader_epoch`` (-1: unchecked) fences a producer whose
        metadata is older than this leader, or newer (this replica was deposed)."""
        plog = self._ready()
        self._used()
        leader = self._replication.leader()
        leader.check_request(leader_epoch, "append")
        if acks == -1:
            leader.check_acks_all()
        if isinstance(data, (pa.Buffer, bytes)):
            data = read_produced(data)  # kept with its compressed bytes: stored without compressing twice
        # The producer's version, kept with the batch.
        tagged = tagged_version(data.batch.schema if isinstance(data, ProducedBatch) else data.schema)
        try:
            result = plog.append(data, producer_id=producer_id, sequence=sequence, leader_epoch=leader.leader_epoch,
                                 schema_version=self._known_version(plog, tagged))
        except SchemaMismatchError:
            # An untagged batch (an older client) goes under the latest this replica knows, which may lag
            # the topic's: learn the versions once and try again.
            if tagged is not None or not plog.add_schema_versions(self._replication.topic_schema_versions()):
                raise
            result = plog.append(data, producer_id=producer_id, sequence=sequence, leader_epoch=leader.leader_epoch)
        leader.on_append(plog.log_end_offset)
        if acks == -1 and not wait_acks:
            return dataclasses.replace(result, leader_epoch=leader.leader_epoch)
        if acks == -1 and result.count:
            leader.wait_acked(result.last_offset, _ACK_TIMEOUT_S)
        return result

    @ray.method(concurrency_group="append")
    def wait_acked(self, last_offset: int, leader_epoch: int) -> None:
        """The acks="all" wait of an append sent with ``wait_acks`` False: returns once every
        in-sync replica has ``last_offset`` (the high watermark passed it), as ``append`` would
        have; NotLeaderError when this replica no longer leads at ``leader_epoch``, the epoch the
        batch was written at (a later epoch may have cut it), NotEnoughReplicasError as append."""
        self._ready()
        self._used()
        leader = self._replication.leader()
        if leader.leader_epoch != leader_epoch:
            raise NotLeaderError(
                f"the batch ending at offset {last_offset} was written at leader epoch {leader_epoch}; this "
                f"replica now leads at {leader.leader_epoch}, so it may have been cut: send it again")
        leader.wait_acked(last_offset, _ACK_TIMEOUT_S)

    @ray.method(concurrency_group="fetch")
    def fetch(self, offset: int, max_records: int, max_bytes: int, max_wait_ms: int,
              with_schema: bool = True, leader_epoch: int = -1, replica_read: bool = False,
              columns: list[str] | None = None, filter=None, schema_version: int | None = None) -> FetchResponse:
        """Read from ``offset``; at the log end, wait up to ``max_wait_ms`` for new records.

        ``replica_read``: this replica may answer as an in-sync follower (KIP-392: a consumer
        reading from a replica near it; Replication.reader says when one may), up to the high
        watermark it learned from its leader, so never a record the leader's HW has not passed.
        An offset outside the follower's own log, or a role lost during the read, is answered
        with NotLeaderError (the consumer asks the leader, which judges the offset), never with
        OffsetOutOfRangeError. The answer's ``payload`` is the stored IPC messages back to back,
        as ``bytes`` when small, else a tuple of zero-copy Arrow buffers; its ``schema`` is the
        log's serialised Arrow schema when ``with_schema`` (a consumer asks once), else None;
        its ``replica_id`` is this replica's. Damaged offsets met by the read of a replicated partition
        answer NotLeaderError (retriable) while another replica's copy can serve them (leader_role.py,
        follower_role.py), else CorruptRecordError.

        ``columns`` / ``filter`` (a ``pyarrow.compute`` expression): a pushed-down read
        (partitions/pushdown.py). The payload is then one fresh message of the kept rows, its
        columns ``offset`` and ``columns`` (all stored ones when None), ``schema`` (when asked)
        that message's schema, ``records`` the rows kept and ``next_offset`` past every offset
        scanned, a row kept or not. A bad column or filter raises ConfigError.

        ``schema_version``: the value-schema version to answer in (None: the latest this replica
        knows; the answer then carries its schema whenever the log holds several versions).
        Batches stored under another version are projected into it (partitions/version_read.py);
        SchemaMismatchError for a version that cannot read them, or that the topic does not have.
        """
        plog = self._ready()
        self._used()
        reader = self._replication.reader(replica_read)
        follower = isinstance(reader, FollowerRole)
        rid = self._replication.replica_id
        if not follower:
            reader.check_request(leader_epoch, "fetch")
        elif not plog.log_start_offset <= offset <= plog.log_end_offset:
            raise self._not_here(offset, plog)
        else:
            reader.note_read()
        if max_wait_ms > 0 and offset >= reader.high_watermark:
            reader.wait_for_hw(offset, max_wait_ms / 1000.0)
            self._used()
        version = self._known_version(plog, schema_version)
        reader_schema = plog.schemas.schema(version)
        pushed = None if columns is None and filter is None else pushdown.cached(reader_schema, columns, filter)
        shipped_schema = reader_schema if pushed is None else pushed.schema
        with_schema = with_schema or (schema_version is None and len(plog.schemas.versions) > 1)
        schema = shipped_schema.serialize().to_pybytes() if with_schema else None  # asked for once per consumer
        if plog.closed:
            # Closing or deleted: answer empty rather than leave an error nobody reads.
            return FetchResponse.empty(offset, schema)
        hw = reader.high_watermark
        if hw <= offset <= plog.log_end_offset:  # consumers see only what every in-sync replica has
            return FetchResponse(offset, b"", 0, offset, plog.log_start_offset, hw, schema, rid, version)
        try:
            if pushed is not None:
                result = pushdown.pushed_read(
                    lambda o, r, b: plog.read(o, max_records=r, max_bytes=b, upto=hw), offset, max_records,
                    max_bytes, pushed, reader_schema, pushdown.scratch(), schemas=plog.schemas,
                    reader_version=version)
            else:
                result = plog.read(offset, max_records=max_records, max_bytes=max_bytes, upto=hw)
        except OffsetOutOfRangeError:
            if not follower:
                raise
            raise self._not_here(offset, plog) from None  # retention here ran ahead of the leader's
        except CorruptRecordError as exc:
            # Retriable while another replica's copy can serve it (leader_role.py, follower_role.py).
            raise reader.damaged_read(exc) from None
        if follower and (reader.stopped or self._replication.role is not reader):
            # A new role may have truncated the log under this read: what was read is not served.
            raise NotLeaderError(f"replica {rid} of {self._topic}-{self._partition} changed its role during a "
                                 "replica read; read from the leader")
        if pushed is not None:
            self._reads.pushed(result)
            if result.message is None:
                payload = b""
            else:
                payload = result.message.to_pybytes() if result.bytes_shipped < _INLINE_BYTES else (result.message,)
            return FetchResponse(result.offset, payload, result.rows, result.next_offset,
                                 plog.log_start_offset, hw, schema, rid, version)
        buffers = result.buffers
        if result.records and result.schema_version != version:  # stored under another version
            buffers = (version_read.project_result(result, plog.schemas, version),)
        size = sum(buf.size for buf in buffers)
        self._reads.full(size)
        if size < _INLINE_BYTES:
            payload = b"".join(buffers)
        else:
            payload = buffers
        return FetchResponse(result.offset, payload, result.records, result.next_offset, result.log_start_offset,
                             hw, schema, rid, version)

    def _known_version(self, plog, version: int | None) -> int:
        """``version`` (None: the latest this replica knows), learnt from the coordinator first
        when it was registered since this replica opened its log (kept in schemas.json)."""
        if version is not None and version not in plog.schemas:
            plog.add_schema_versions(self._replication.topic_schema_versions())
        return plog.schemas.check(version)

    def _not_here(self, offset: int, plog) -> NotLeaderError:
        return NotLeaderError(
            f"offset {offset} is outside the log of follower replica {self._replication.replica_id} of "
            f"{self._topic}-{self._partition} ({plog.log_start_offset}..{plog.log_end_offset}); read it from the "
            "leader")

    @ray.method(concurrency_group="fetch")
    def replica_fetch(self, request: ReplicaFetchRequest) -> ReplicaFetchResponse:
        """A follower's fetch (follower_role.py): its records verbatim from its log end, after the
        leader checked the follower's epoch and that its log matches (else ``diverging``)."""
        return serve_replica_fetch(self._ready(), self._replication.leader(), request)

    @ray.method(concurrency_group="control")
    def become(self, state: dict) -> ReplicaStatus:
        """The controller's state of the partition: lead it or follow its leader (replication.py)."""
        plog = self._ready()
        self._replication.apply(plog, PartitionState.from_dict(state))
        return self._replication.status(plog)

    @ray.method(concurrency_group="control")
    def status(self) -> ReplicaStatus:
        """This replica's role, epochs and offsets: the controller's liveness check."""
        try:
            plog = self._ready()
        except Exception:  # noqa: BLE001 - a log that cannot open still answers (role "none")
            plog = None
        return self._replication.status(plog)

    @ray.method(concurrency_group="control")
    def offsets(self) -> LogBounds:
        """(log start, end) where a leader's end is its high watermark: what consumers can read."""
        plog = self._ready()
        leader = self._replication.leader()
        return LogBounds(plog.log_start_offset, min(leader.high_watermark, plog.log_end_offset))

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
            reads=self._reads.as_dict(),
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
        self._replication.stop()
        self._opener.stop()
        if self._opener.log is not None:
            self._opener.log.close()

    @ray.method(concurrency_group="control")
    def delete(self) -> None:
        """Remove the partition's files (topic deletion)."""
        self._stop.set()
        self._replication.stop()
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
