"""Helpers for the storage tests: make batches, read everything back, damage files, crash."""

import re

import pyarrow as pa
import pyarrow.ipc as ipc

from rayka.errors import CorruptRecordError
from rayka.partitions import codec


def batch(values, start_ts=None, keys=None, headers=None):
    cols = {"value": pa.array(values, pa.binary())}
    if start_ts is not None:
        cols["timestamp_ms"] = pa.array([start_ts + i for i in range(len(values))], pa.int64())
    if keys is not None:
        cols["key"] = pa.array(keys, pa.binary())
    if headers is not None:
        cols["headers"] = pa.array(headers, pa.map_(pa.string(), pa.binary()))
    return pa.table(cols)


def decode(result, offset=None, max_records=None):
    """(offsets, values) of a ReadResult, sliced like a consumer: from ``offset``, at most max_records."""
    offsets, values = [], []
    start = result.offset if offset is None else offset
    for buf in result.buffers:
        for msg in codec.iter_messages(buf):
            b = codec.decode(msg, result.schema)
            offsets += b.column("offset").to_pylist()
            values += b.column("value").to_pylist()
    keep = [(o, v) for o, v in zip(offsets, values) if o >= start]
    if max_records is not None:
        keep = keep[:max_records]
    return [o for o, _ in keep], [v for _, v in keep]


def read_all(log, offset=None):
    offset = log.log_start_offset if offset is None else offset
    out_o, out_v = [], []
    while offset < log.log_end_offset:
        r = log.read(offset, max_records=10_000)
        if not r.records:
            break
        o, v = decode(r)
        out_o += o
        out_v += v
        offset = r.next_offset
    return out_o, out_v


def crash(log):
    """Abandon ``log`` as a killed process would: no fsync, no clean-shutdown marker, and the
    kernel drops its directory lock (flock dies with its process). The object must not be used
    again; the next PartitionLog on the directory recovers."""
    log._dir_lock.release()


def spans(segment_path):
    """(position, size, base_offset, next_offset) of every stored batch of a segment file."""
    buf = pa.py_buffer(segment_path.read_bytes())
    schema_size = len(codec.schema_message(ipc.read_schema(buf)))
    return [(m.position, m.size, m.header.base_offset, m.header.next_offset)
            for m in codec.iter_messages(buf, schema_size)]


def flip_byte(path, position):
    """Invert one byte of a file in place (Kafka's testRecoveryWithCorruptMessage, one byte)."""
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        f.seek(position)
        f.write(bytes([byte[0] ^ 0xFF]))


def read_around_damage(log):
    """Read the whole log as a consumer that seeks past damage would: ({offset: value}, holes),
    holes as the (first, last) offsets each CorruptRecordError named."""
    got, holes, offset = {}, [], log.log_start_offset
    while offset < log.log_end_offset:
        try:
            r = log.read(offset, max_records=10_000)
        except CorruptRecordError as exc:
            first, last = map(int, re.search(r"offsets (\d+)\.\.(\d+)", str(exc)).groups())
            resume = int(re.search(r"seek to (\d+)", str(exc)).group(1))
            assert first <= offset <= last < resume, (offset, str(exc))
            holes.append((first, last))
            offset = resume
            continue
        o, v = decode(r)
        got.update(zip(o, v))
        offset = r.next_offset
    return got, holes
