"""Splitting a send_table into per-partition chunks (no Ray)."""

import pyarrow as pa
import pytest

from rayka.clients import bulk
from rayka.clients.partitioner import partition_for_key
from rayka.errors import UnknownPartitionError


def test_keyed_rows_go_to_their_murmur2_partition():
    keys = [b"k%d" % (i % 13) for i in range(500)]
    table = pa.table({"value": [b"v%d" % i for i in range(500)], "key": keys})
    chunks = list(bulk.split_table(table, "t", 4, None))
    seen = 0
    for part, chunk in chunks:
        assert all(partition_for_key(k, 4) == part for k in chunk.column("key").to_pylist())
        seen += chunk.num_rows
    assert seen == 500


def test_partition_column_and_keyless_contiguous_runs():
    table = pa.table({"value": [b"x"] * 10, "partition": [0, 1] * 5})
    chunks = dict(bulk.split_table(table, "t", 2, None))
    assert chunks[0].num_rows == chunks[1].num_rows == 5 and "partition" not in chunks[0].column_names
    runs = list(bulk.split_table(pa.table({"value": [b"%d" % i for i in range(10)]}), "t", 3, None))
    assert [p for p, _ in runs] == [0, 1, 2]
    assert sum((c.column("value").to_pylist() for _, c in runs), []) == [b"%d" % i for i in range(10)]
    with pytest.raises(UnknownPartitionError):
        list(bulk.split_table(table, "t", 2, 5))


def test_chunks_are_bounded(monkeypatch):
    monkeypatch.setattr(bulk, "MAX_CHUNK_BYTES", 10_000)
    table = pa.table({"value": [b"x" * 100] * 1000})
    chunks = list(bulk.split_table(table, "t", 1, 0))
    assert len(chunks) > 5 and all(c.nbytes <= 12_000 for _, c in chunks)
    assert sum(c.num_rows for _, c in chunks) == 1000
