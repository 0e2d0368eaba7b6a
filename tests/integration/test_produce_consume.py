"""Producer to partition actors to Consumer, on one shared Ray."""

import time

import pandas as pd
import pyarrow as pa
import pytest

import rayka
from rayka import TopicPartition
from rayka.clients.partitioner import partition_for_key

from rayka.testing import consume_all


def test_send_returns_dense_offsets_and_consumer_reads_them_back_in_order(cluster, admin):
    admin.create_topic("orders", partitions=1)
    base = time.time_ns() // 1_000_000  # recent: retention.ms (7 days) would drop 1970 timestamps
    with rayka.Producer(linger_ms=2) as p:
        futures = [p.send("orders", value=b"v%d" % i, key=b"k", headers={"n": b"%d" % i}, timestamp_ms=base + i)
                   for i in range(2500)]
        metas = [f.result(timeout=30) for f in futures]
    assert [m.offset for m in metas] == list(range(2500))
    assert {m.partition for m in metas} == {0}
    assert metas[7].timestamp_ms == base + 7
    c = rayka.Consumer("orders", auto_offset_reset="earliest")
    records = consume_all(c, 2500)
    assert [r.offset for r in records] == list(range(2500))
    assert [r.value for r in records] == [b"v%d" % i for i in range(2500)]
    assert records[42].headers == {"n": b"42"}
    assert records[42].key == b"k" and records[42].timestamp_ms == base + 42
    assert c.position(TopicPartition("orders", 0)) == 2500
    c.close()


def test_keys_go_to_their_murmur2_partition_and_keep_order_per_partition(cluster, admin):
    admin.create_topic("keyed", partitions=4)
    keys = [b"user-%d" % (i % 37) for i in range(4000)]
    with rayka.Producer() as p:
        metas = [p.send("keyed", value=b"%d" % i, key=k) for i, k in enumerate(keys)]
        metas = [m.result(timeout=30) for m in metas]
    for k, m in zip(keys, metas):
        assert m.partition == partition_for_key(k, 4)
    c = rayka.Consumer("keyed", auto_offset_reset="earliest")
    records = consume_all(c, 4000)
    assert len(records) == 4000
    for part in range(4):
        seq = [int(r.value) for r in records if r.partition == part]
        assert seq == sorted(seq), "order within a partition must follow send order"
        assert [r.offset for r in records if r.partition == part] == list(range(len(seq)))


def test_send_table_from_pandas_and_poll_batch_returns_arrow(cluster, admin):
    admin.create_topic("bulk", partitions=2)
    df = pd.DataFrame({"value": [b"row-%d" % i for i in range(10_000)],
                       "timestamp_ms": list(range(10_000))})
    with rayka.Producer() as p:
        df["timestamp_ms"] += time.time_ns() // 1_000_000
        chunks = p.send_table("bulk", df).result(timeout=60)
    assert sum(n for _, _, n in chunks) == 10_000
    assert {part for part, _, _ in chunks} == {0, 1}
    c = rayka.Consumer("bulk", auto_offset_reset="earliest")
    tables = []
    deadline = time.monotonic() + 30
    while sum(t.num_rows for t in tables) < 10_000 and time.monotonic() < deadline:
        tables.append(c.poll_batch(timeout_ms=500))
    table = pa.concat_tables(tables)
    assert table.num_rows == 10_000
    assert table.column_names[:4] == ["topic", "partition", "offset", "timestamp_ms"]
    frame = table.to_pandas()
    assert sorted(frame["value"]) == sorted(df["value"])
    assert set(frame["topic"]) == {"bulk"}


def test_iteration_stops_after_consumer_timeout(cluster, admin):
    admin.create_topic("iter", partitions=3)
    with rayka.Producer() as p:
        for i in range(300):
            p.send("iter", value=b"%d" % i)
    c = rayka.Consumer("iter", auto_offset_reset="earliest", consumer_timeout_ms=1500)
    values = sorted(int(r.value) for r in c)
    assert values == list(range(300))


def test_seek_position_and_offsets_for_times(cluster, admin):
    admin.create_topic("seeky", partitions=1)
    tp = TopicPartition("seeky", 0)
    base = time.time_ns() // 1_000_000
    with rayka.Producer() as p:
        for i in range(1000):
            p.send("seeky", value=b"%d" % i, timestamp_ms=base + 10 * i)
    c = rayka.Consumer()
    c.assign([tp])
    c.seek(tp, 500)
    assert [r.offset for r in c.poll(timeout_ms=5000, max_records=3)] == [500, 501, 502]
    assert c.position(tp) == 503
    c.seek_to_beginning(tp)
    assert c.poll(timeout_ms=5000, max_records=1)[0].offset == 0
    c.seek_to_end(tp)
    assert c.position(tp) == 1000
    hits = c.offsets_for_times({tp: base + 10 * 250 - 5})
    assert hits[tp].offset == 250 and hits[tp].timestamp_ms == base + 2500
    assert c.offsets_for_times({tp: base + 10**9})[tp] is None
    assert c.beginning_offsets([tp]) == {tp: 0} and c.end_offsets([tp]) == {tp: 1000}


def test_pause_stops_records_of_a_partition_until_resume(cluster, admin):
    admin.create_topic("pz", partitions=2)
    with rayka.Producer() as p:
        for i in range(200):
            p.send("pz", value=b"%d" % i, partition=i % 2)
    c = rayka.Consumer("pz", auto_offset_reset="earliest")
    c.pause([TopicPartition("pz", 1)])
    got = consume_all(c, 100, timeout_s=10)
    assert {r.partition for r in got} == {0} and len(got) == 100
    assert c.poll(timeout_ms=300) == []
    c.resume([TopicPartition("pz", 1)])
    got = consume_all(c, 100, timeout_s=10)
    assert {r.partition for r in got} == {1} and len(got) == 100


def test_long_poll_neither_blocks_appends_nor_runs_out_its_wait(cluster, admin):
    """Fetches parked at the log end (30 s max wait) must let appends through at once and wake
    on them: a design where a waiting fetch held the partition would take 30 s here."""
    admin.create_topic("live", partitions=1)
    consumers = [rayka.Consumer("live", auto_offset_reset="latest", fetch_max_wait_ms=30_000) for _ in range(3)]
    for c in consumers:
        assert c.poll(timeout_ms=200) == []  # each leaves a fetch waiting in the partition
    t0 = time.monotonic()
    with rayka.Producer(linger_ms=0) as p:
        for i in range(5):
            p.send("live", value=b"hello-%d" % i).result(timeout=10)
    assert time.monotonic() - t0 < 10, "appends waited for the parked fetches"
    for c in consumers:
        got = consume_all(c, 5, timeout_s=10)
        assert [r.value for r in got] == [b"hello-%d" % i for i in range(5)]
        c.close()
    assert time.monotonic() - t0 < 20, "a waiting fetch must wake on append, not run out its 30 s"


def test_topic_with_value_schema_stores_typed_columns(cluster, admin):
    schema = pa.schema([("user", pa.string()), ("amount", pa.float64())])
    admin.create_topic("typed", partitions=1, schema=schema)
    with rayka.Producer() as p:
        p.send("typed", value={"user": "ann", "amount": 2.5}).result(timeout=10)
        p.send_table("typed", pa.table({"user": ["bob", "cy"], "amount": [1.0, 3.0]})).result(timeout=10)
        with pytest.raises(TypeError, match="value schema"):
            p.send("typed", value=b"raw bytes")
        with pytest.raises(rayka.errors.SchemaMismatchError):
            p.send_table("typed", pa.table({"user": ["x"], "amount": ["not a number"]})).result(timeout=10)
    c = rayka.Consumer("typed", auto_offset_reset="earliest")
    records = consume_all(c, 3)
    assert [r.value for r in records] == [
        {"user": "ann", "amount": 2.5}, {"user": "bob", "amount": 1.0}, {"user": "cy", "amount": 3.0}]
    c.seek_to_beginning()
    table = c.poll_batch(timeout_ms=5000)
    assert table.schema.field("amount").type == pa.float64()
    assert admin.describe_topic("typed").partitions[0].log_end_offset == 3


def test_segment_files_are_readable_by_plain_pyarrow_and_duckdb(cluster, admin):
    import pathlib

    import duckdb
    import pyarrow.ipc as ipc

    admin.create_topic("files", partitions=1)
    with rayka.Producer() as p:
        p.send_table("files", pa.table({"value": [b"a", b"b", b"c"]})).result(timeout=10)
    segs = sorted(pathlib.Path(cluster.data_dir, "topics", "files", "0").glob("*.arrows"))
    table = ipc.open_stream(pa.memory_map(str(segs[0]))).read_all()
    assert table.column("value").to_pylist() == [b"a", b"b", b"c"]
    assert table.column("offset").to_pylist() == [0, 1, 2]
    segment = table  # noqa: F841 - duckdb finds the Arrow table by its variable name
    rows = duckdb.sql('select count(*), max("offset") from segment').fetchall()
    assert rows == [(3, 2)]
