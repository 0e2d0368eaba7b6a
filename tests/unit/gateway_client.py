"""Helpers for gateway protocol tests: encode a request as a client does, decode the answer."""

from __future__ import annotations

import pyarrow as pa
from kafka.record.default_records import DefaultRecordBatchBuilder

from rayka.gateway import apis


def frame(request, correlation_id: int = 1, client_id: str = "test") -> bytes:
    """The request's frame without its size prefix (what Connection.handle takes)."""
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(request.encode(header=True))


def decode(request, answer: bytes):
    """Decode ``answer`` (a framed response) as the response to ``request``."""
    klass = apis.response_class(request.API_KEY)
    return klass.decode(answer, version=request.API_VERSION, header=True, framed=True)


async def call(conn, request, correlation_id: int = 1):
    """Send ``request`` through ``conn.handle`` and decode its answer (None: no answer)."""
    answer = await conn.handle(frame(request, correlation_id))
    if answer is None:
        return None
    resp = decode(request, answer)
    assert resp.header.correlation_id == correlation_id
    return resp


def kafka_batch(values, *, keys=None, headers=None, timestamps=None, producer_id=-1, epoch=-1, sequence=-1,
                compression=0) -> bytes:
    """One RecordBatch v2 of ``values`` as a Kafka producer writes it."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=compression, is_transactional=False,
                                  producer_id=producer_id, producer_epoch=epoch, base_sequence=sequence,
                                  batch_size=2**30)
    for i, v in enumerate(values):
        b.append(i, timestamp=(timestamps[i] if timestamps else 1_700_000_000_000 + i),
                 key=keys[i] if keys else None, value=v, headers=headers[i] if headers else [])
    return bytes(b.build())


def read_kafka_records(data: bytes) -> list[tuple[int, int, bytes | None, bytes | None, list]]:
    """``(offset, timestamp, key, value, headers)`` of every record in Kafka records bytes."""
    from kafka.record.memory_records import MemoryRecords

    out = []
    mr = MemoryRecords(bytes(data))
    while True:
        batch = mr.next_batch()
        if batch is None:
            return out
        assert batch.validate_crc()
        out.extend((r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in batch)


def values_in(backend, topic: str, partition: int) -> list:
    return [v for b in backend.topics[topic][partition].batches for v in b.column("value").to_pylist()]


__all__ = ["frame", "decode", "call", "kafka_batch", "read_kafka_records", "values_in", "pa"]
