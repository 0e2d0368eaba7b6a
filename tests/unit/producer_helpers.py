"""A Producer without Ray: a fake cluster whose partition "actors" are real PartitionLogs.

The producer needs only ``cluster.topic(name, refresh=)`` -> (TopicMetadata, [PartitionClient]);
the real stubs (clients/stubs.py) wrap fake handles here, which answer
``handle.append.remote(payload, producer_id, sequence).future()``. Each handle runs its
appends one at a time on its own thread, as the actor's append concurrency group does; an
acks="all" append's wait for the replicas (``wait_acked``, or inside ``append``) passes
``ack_gate`` and may be failed with ``fail_acks``.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
import time

import pyarrow as pa
import pyarrow.ipc as ipc

from rayka.clients.stubs import PartitionClient
from rayka.config import TopicConfig
from rayka.coordinator.metadata import TopicMetadata
from rayka.errors import UnknownTopicError
from rayka.partitions import codec
from rayka.partitions.log import PartitionLog


class _Ref:
    def __init__(self, future):
        self._future = future

    def future(self):
        return self._future


class _Method:
    def __init__(self, fn, pool):
        self._fn, self._pool = fn, pool

    def remote(self, *args):
        return _Ref(self._pool.submit(self._fn, *args))


class FakePartition:
    """A partition handle: ``append.remote`` runs on this partition's single thread."""

    def __init__(self, directory, config: TopicConfig, value_schema):
        self.log = PartitionLog(directory, config=config, value_schema=value_schema)
        self.pool = concurrent.futures.ThreadPoolExecutor(1)
        self.calls = 0
        self.gate = threading.Event()  # cleared: appends wait (to hold batches in flight)
        self.gate.set()
        self.fail_next: list[BaseException] = []  # errors the next appends raise, in turn
        self.delay_s = 0.0  # added to every append, as an actor call's round trip
        self.append = _Method(self._append, self.pool)
        self.ack_gate = threading.Event()  # cleared: acks="all" waits hold (followers not copying)
        self.ack_gate.set()
        self.fail_acks: list[BaseException] = []  # errors the next acks="all" waits raise, in turn
        self.acks_waiting = 0  # acks="all" waits in progress now
        self._count_lock = threading.Lock()
        self.wait_acked = _Method(self._wait_acked, concurrent.futures.ThreadPoolExecutor(8))

    def _append(self, data, producer_id=None, sequence=-1, acks=1, leader_epoch=-1, wait_acks=True):
        self.gate.wait(30)
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls += 1
        if self.fail_next:
            raise self.fail_next.pop(0)
        if isinstance(data, (pa.Buffer, bytes)):
            data = ipc.open_stream(data).read_all()
        result = self.log.append(data, producer_id=producer_id, sequence=sequence)
        if acks == -1 and not wait_acks:
            return dataclasses.replace(result, leader_epoch=0)
        if acks == -1:
            self._wait_acked(result.last_offset, 0)
        return result

    def _wait_acked(self, last_offset, leader_epoch):
        with self._count_lock:
            self.acks_waiting += 1
        try:
            self.ack_gate.wait(30)
            if self.fail_acks:
                raise self.fail_acks.pop(0)
        finally:
            with self._count_lock:
                self.acks_waiting -= 1

    def records(self) -> list[dict]:
        """Every stored record as a dict of its columns, in offset order."""
        rows, offset = [], self.log.log_start_offset
        while offset < self.log.log_end_offset:
            result = self.log.read(offset, max_records=100_000, max_bytes=1 << 30)
            if not result.records:
                break
            for buf in result.buffers:
                for msg in codec.iter_messages(buf):
                    rows += [r for r in codec.decode(msg, result.schema).to_pylist() if r["offset"] >= offset]
            offset = result.next_offset
        return rows

    def close(self):
        self.pool.shutdown(wait=True)
        self.log.close()


class FakeCluster:
    """``create_topic`` then hand to ``Producer(cluster=...)``."""

    attachment = None  # not on a shared local runtime

    def __init__(self, root):
        self.root = root
        self.topics: dict[str, tuple[TopicMetadata, list[FakePartition]]] = {}

    def create_topic(self, name, partitions=1, config=None, schema=None):
        from rayka.coordinator.metadata import encode_schema

        # As the coordinator stores a typed topic: its schema is version 1.
        meta = TopicMetadata(name=name, partitions=partitions, config=dict(config or {}),
                             value_schema_b64=encode_schema(schema))
        cfg = meta.topic_config
        handles = [FakePartition(self.root / name / str(p), cfg, schema) for p in range(partitions)]
        self.topics[name] = (meta, handles)
        return handles

    def topic(self, name, *, refresh=False):
        if name not in self.topics:
            raise UnknownTopicError(f"unknown topic {name!r}")
        meta, handles = self.topics[name]
        return meta, [PartitionClient(h) for h in handles]

    def close(self):
        for _, handles in self.topics.values():
            for h in handles:
                h.close()
