"""Helpers for the storage tests: make batches, read everything back as Python values."""

import pyarrow as pa

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
