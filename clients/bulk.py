"""Splitting a bulk ``send_table`` into per-partition chunks of bounded size.

Rows with a ``partition`` column go where it says; rows with keys go to their
murmur2 partition (as ``send()`` would send them); the rest are cut in contiguous
runs, one per partition. Every chunk is at most :data:`MAX_CHUNK_BYTES`, so one
actor call never carries more than that and the producer's memory stays bounded.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rayka.clients.partitioner import partition_for_key
from rayka.errors import UnknownPartitionError

__all__ = ["split_table", "MAX_CHUNK_BYTES"]

MAX_CHUNK_BYTES = 16 * 1024 * 1024


def split_table(table: pa.Table, topic: str, n: int, partition: int | None):
    """(partition, chunk) pairs for a topic of ``n`` partitions: keyed rows by murmur2, the
    rest in contiguous runs; chunks are slices (or takes) of ``table``, not yet copied."""
    if partition is not None:
        if not 0 <= partition < n:
            raise UnknownPartitionError(f"topic {topic!r} has partitions 0..{n - 1}; no partition {partition}")
        yield from _chunks(partition, table)
        return
    if "partition" in table.column_names:
        parts = table.column("partition").to_numpy(zero_copy_only=False)
        table = table.drop_columns(["partition"])
    elif "key" in table.column_names and table.column("key").null_count < table.num_rows:
        keys = table.column("key").to_pylist()
        rr = iter(range(10**18))
        parts = np.fromiter(
            (partition_for_key(k, n) if k is not None else next(rr) % n for k in keys),
            dtype=np.int64, count=len(keys),
        )
    else:
        per = -(-table.num_rows // n) if table.num_rows else 0
        for p in range(n):
            if per and p * per < table.num_rows:
                yield from _chunks(p, table.slice(p * per, per))
        return
    if len(parts) and (parts.min() < 0 or parts.max() >= n):
        raise UnknownPartitionError(f"topic {topic!r} has partitions 0..{n - 1}; the table names others")
    for p in np.unique(parts):
        idx = np.nonzero(parts == p)[0]
        yield from _chunks(int(p), pc.take(table, pa.array(idx)))


def _chunks(partition: int, table: pa.Table):
    if table.num_rows == 0:
        return
    rows = max(1, int(table.num_rows * MAX_CHUNK_BYTES / max(table.nbytes, 1)))
    for start in range(0, table.num_rows, rows):
        yield partition, table.slice(start, rows)
