"""rayka.data on the session's Ray: a 4-partition typed topic read as a Dataset (bounds by
offset, time and partition; columns and a filter), Ray Data operations on it checked against
what was produced, write_topic read back, and a write task Ray retries writing no duplicate."""

import datetime as dt
import os
import time

import pyarrow as pa
import pyarrow.compute as pc
import pytest

import rayka
import rayka.data as rd
from rayka.errors import ConfigError
from rayka.clients.partitioner import partition_for_key
from rayka.testing import embedded_cluster

SCHEMA = pa.schema([("n", pa.int64()), ("user", pa.string())])
ROWS = 400
T0 = (int(time.time()) // 3600 - 2) * 3_600_000  # the first half's timestamps (two hours ago, whole)
T1 = T0 + 3_600_000  # the second half's


def arrow(ds) -> pa.Table:
    """A Dataset's rows as one Arrow table."""
    import ray

    return pa.concat_tables(ray.get(ds.to_arrow_refs()))


@pytest.fixture(scope="module")
def topic(ray_session, tmp_path_factory):
    import ray.data

    ctx = ray.data.DataContext.get_current()
    before = ctx.enable_progress_bars, ctx.shuffle_strategy
    ctx.enable_progress_bars = False
    # Tasks, not a pool of aggregator actors, for groupby: far quicker on two CPUs for small data.
    ctx.shuffle_strategy = ray.data.context.ShuffleStrategy.SORT_SHUFFLE_PULL_BASED
    with embedded_cluster(tmp_path_factory.mktemp("raydata")) as cluster:
        rayka.Admin(cluster).create_topic("src", partitions=4, schema=SCHEMA)
        n = list(range(ROWS))
        table = pa.table({"n": n, "user": [f"u{i % 5}" for i in n],
                          "timestamp_ms": [T0 if i < ROWS // 2 else T1 for i in n]})
        with rayka.Producer(cluster=cluster) as p:
            p.send_table("src", table.slice(0, ROWS // 2)).result()
            p.send_table("src", table.slice(ROWS // 2)).result()
        yield cluster
    ctx.enable_progress_bars, ctx.shuffle_strategy = before


def test_the_whole_topic_reads_back_with_its_schema_and_row_count_known_up_front(topic):
    ds = rd.read_topic("src", cluster=topic, max_records_per_task=30)
    assert ds.schema().names == ["offset", "timestamp_ms", "key", "headers", "n", "user"]
    tasks = rd.topic_datasource("src", cluster=topic, max_records_per_task=30).get_read_tasks(1)
    assert len(tasks) == 4 * 4  # 100 offsets per partition, in pieces of 30
    assert sum(t.metadata.num_rows for t in tasks) == ROWS  # known before anything is read
    assert all(t.schema.names == ds.schema().names for t in tasks)
    got = arrow(ds)
    assert sorted(got["n"].to_pylist()) == list(range(ROWS))


def test_bounds_by_time_and_per_partition_offsets_give_just_those_records(topic):
    later = rd.read_topic("src", start=dt.datetime.fromtimestamp(T1 / 1000, dt.timezone.utc), cluster=topic)
    assert sorted(arrow(later)["n"].to_pylist()) == list(range(ROWS // 2, ROWS))
    some = arrow(rd.read_topic("src", start={1: 10}, end={1: 20, 2: 5}, cluster=topic))
    want = rayka.read_topic("src", start={1: 10}, end={1: 20, 2: 5}, cluster=topic)
    assert sorted(some["n"].to_pylist()) == sorted(want["n"].to_pylist())
    assert len(want) == 100 + 10 + 5 + 100


def test_columns_and_a_filter_reach_the_read(topic):
    ds = rd.read_topic("src", columns=["user", "n"], filter=pc.field("n") >= 390, cluster=topic)
    assert ds.schema().names == ["user", "n"]
    got = arrow(ds)
    assert sorted(got["n"].to_pylist()) == list(range(390, ROWS))
    assert all(u == f"u{n % 5}" for u, n in zip(got["user"].to_pylist(), got["n"].to_pylist()))


def test_ray_data_operations_on_the_read_dataset_match_what_was_produced(topic):
    ds = rd.read_topic("src", columns=["n", "user"], cluster=topic)
    doubled = ds.map_batches(lambda t: t.append_column("twice", pc.multiply(t["n"], 2)), batch_format="pyarrow")
    kept = doubled.filter(expr="n >= 100")
    sums = {r["user"]: r["sum(twice)"] for r in kept.groupby("user", num_partitions=2).sum("twice").take_all()}
    want = {}
    for i in range(100, ROWS):
        want[f"u{i % 5}"] = want.get(f"u{i % 5}", 0) + 2 * i
    assert sums == want
    counts = {r["user"]: r["count()"] for r in ds.groupby("user", num_partitions=2).count().take_all()}
    assert counts == {f"u{k}": ROWS // 5 for k in range(5)}


def test_write_topic_then_read_back_keyed_by_a_column(topic):
    rayka.Admin(topic).create_topic("dst", partitions=4, schema=SCHEMA)
    ds = rd.read_topic("src", cluster=topic).map_batches(
        lambda t: t.set_column(t.column_names.index("n"), "n", pc.add(t["n"], 1000)), batch_format="pyarrow")
    assert rd.write_topic(ds, "dst", key_column="user", cluster=topic) == ROWS
    back = rayka.read_topic("dst", cluster=topic)
    assert sorted(back["n"].to_pylist()) == [i + 1000 for i in range(ROWS)]
    assert back["key"].to_pylist() == [u.encode() for u in back["user"].to_pylist()]
    for p in range(4):
        users = set(rayka.read_topic("dst", start={q: 0 if q == p else 10**9 for q in range(4)},
                                     cluster=topic)["user"].to_pylist())
        assert all(partition_for_key(u.encode(), 4) == p for u in users)
    # timestamps travel with the rows
    assert set(back["timestamp_ms"].to_pylist()) == {T0, T1}


def test_a_write_task_ray_retries_after_it_sent_its_block_writes_no_duplicate(topic, tmp_path):
    rayka.Admin(topic).create_topic("retried", partitions=4, schema=SCHEMA)
    marker = str(tmp_path / "died-once")
    base = rd.TopicDatasink

    class DiesOnceAfterSending(base):
        def after_block(self, ctx, block_index):
            if ctx.task_idx == 1 and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)  # the worker dies: Ray runs the task again, which sends the block again

    from rayka.clients.ray_data_read import ClusterRef

    ds = rd.read_topic("src", columns=["n", "user"], cluster=topic, max_records_per_task=50)
    sink = DiesOnceAfterSending("retried", cluster_ref=ClusterRef.of(topic))
    ds.write_datasink(sink)
    assert os.path.exists(marker), "the write task should have died once"
    back = rayka.read_topic("retried", cluster=topic)
    assert sorted(back["n"].to_pylist()) == list(range(ROWS))  # each once: the replay was recognised
    assert sink.written == ROWS


def test_an_empty_topic_reads_with_its_schema_and_a_wrong_column_fails_before_any_task(topic):
    rayka.Admin(topic).create_topic("empty", partitions=2, schema=SCHEMA)
    ds = rd.read_topic("empty", columns=["n"], cluster=topic)
    assert ds.schema().names == ["n"] and ds.count() == 0 and ds.take_all() == []
    with pytest.raises(ConfigError, match="no column 'nope'"):
        rd.read_topic("src", columns=["nope"], cluster=topic)
    with pytest.raises(ConfigError, match="filter"):
        rd.read_topic("src", filter="n > 3", cluster=topic)
