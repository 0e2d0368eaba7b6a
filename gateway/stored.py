"""Stored batches out of a partition's fetch answer, for the Fetch handler to encode as Kafka records.

``Backend.fetch`` answers a :class:`rayka.messages.FetchResponse` whose ``payload`` is
the partition's stored Arrow IPC record-batch messages back to back (``bytes``, or a
tuple of buffers), each in the stored layout (``offset, timestamp_ms, key, headers,
value``: ``rayka.partitions.records.log_schema()``). The messages are read zero-copy
with the partition codec (pure pyarrow); a message is kept whole even when it starts
before the fetch offset, because Kafka clients skip the records before the offset
they asked for, and Kafka itself answers whole stored batches.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as ipc

from ..messages import FetchResponse
from ..partitions import codec
from ..partitions.records import log_schema

__all__ = ["stored_batches", "KAFKA_SCHEMA"]

KAFKA_SCHEMA = log_schema()


def _buffers(payload) -> tuple:
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return (pa.py_buffer(payload),) if len(payload) else ()
    return tuple(payload)


def stored_batches(answer: FetchResponse, schema: pa.Schema | None = None) -> list[pa.RecordBatch]:
    """The stored batches of ``answer`` that hold offsets at or past ``answer.offset``.

    ``schema``: the log's schema (default: the untyped one); ``answer.schema`` wins when
    the backend sent it. Raises CorruptRecordError for bytes that are not stored messages."""
    if answer.schema is not None:
        schema = ipc.read_schema(pa.py_buffer(answer.schema))
    schema = KAFKA_SCHEMA if schema is None else schema
    out = []
    for buf in _buffers(answer.payload):
        for msg in codec.iter_messages(buf):
            if msg.header.next_offset <= answer.offset:
                continue  # wholly before the fetch offset: a client would drop it anyway
            batch = codec.decode(msg, schema)
            if batch.num_rows:
                out.append(batch)
    return out
