"""Projection and filters pushed down into the partition actors, end to end: read_topic and the
Consumer with columns= and filter=, the bytes read and shipped counted, Polars and DuckDB on the
results. One 4-partition typed topic shared by the module (set-up once)."""

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import rayka
from rayka import TopicPartition
from rayka.errors import ConfigError
from rayka.testing import embedded_cluster, wait_for

N = 4000
PARTITIONS = 4
SCHEMA = pa.schema([pa.field(f"f{i}", pa.float64()) for i in range(8)] + [pa.field("n", pa.int64()),
                                                                          pa.field("s", pa.string())])


def rows(n: int) -> pa.Table:
    cols = {f"f{i}": pa.array(np.arange(n, dtype=np.float64) * 10 + i) for i in range(8)}
    cols["n"] = pa.array(np.arange(n, dtype=np.int64))
    cols["s"] = pa.array([f"s{j % 5}" for j in range(n)])
    cols["key"] = pa.array([b"k%d" % (j % 16) for j in range(n)])
    return pa.table(cols)


@pytest.fixture(scope="module")
def wide(ray_session, tmp_path_factory):
    """The cluster, with topic "wide" (4 partitions, typed) holding N rows, keyed so each
    partition has some; and "wide" as a table to check against."""
    with embedded_cluster(tmp_path_factory.mktemp("pushdown")) as cluster:
        admin = rayka.Admin(cluster)
        admin.create_topic("wide", partitions=PARTITIONS, schema=SCHEMA)
        data = rows(N)
        with rayka.Producer(cluster=cluster) as p:
            p.send_table("wide", data).result()
        yield cluster, data


def reads(cluster, topic="wide") -> list[dict]:
    _, handles = cluster.topic(topic)
    return [h.stats().result().reads for h in handles]


def delta(before, after, key):
    return sum(a[key] - b[key] for b, a in zip(before, after))


def test_read_topic_with_columns_and_filter_is_pushed_down(wide):
    cluster, data = wide
    flt = (pc.field("s") == "s2") & (pc.field("f1") > 5000)
    before = reads(cluster)
    got = rayka.read_topic("wide", columns=["n", "f3"], filter=flt, cluster=cluster)
    after = reads(cluster)
    assert got.schema.names == ["n", "f3"]
    want = sorted(j for j in range(N) if j % 5 == 2 and j * 10 + 1 > 5000)
    assert sorted(got.column("n").to_pylist()) == want
    assert sorted(got.column("f3").to_pylist()) == [j * 10 + 3.0 for j in want]
    assert delta(before, after, "pushdown_fetches") >= PARTITIONS and delta(before, after, "full_fetches") == 0

    # The same rows read whole and selected here: more read from the segments, far more shipped.
    before = reads(cluster)
    full = rayka.read_topic("wide", cluster=cluster)
    mid = reads(cluster)
    narrow = rayka.read_topic("wide", columns=["n"], cluster=cluster)
    last = reads(cluster)
    assert full.num_rows == narrow.num_rows == N
    assert sorted(narrow.column("n").to_pylist()) == list(range(N))
    full_read, full_shipped = delta(before, mid, "full_read_bytes"), delta(before, mid, "full_shipped_bytes")
    pushed_read, pushed_shipped = delta(mid, last, "pushdown_read_bytes"), delta(mid, last, "pushdown_shipped_bytes")
    assert full_read > 3 * pushed_read, (full_read, pushed_read)
    assert full_shipped > 4 * pushed_shipped, (full_shipped, pushed_shipped)
    assert pushed_shipped >= N * 16  # offset and n, 8 bytes each a row


def test_bounded_ranges_with_a_filter_keep_offsets_right(wide):
    from rayka.clients.topic_read import plan_ranges, read_range

    cluster, _ = wide
    (rng,) = [r for r in plan_ranges("wide", start={0: 10}, end={0: 200}, cluster=cluster) if r.partition == 0]
    assert (rng.start, rng.end) == (10, 200)
    flt = pc.bit_wise_and(pc.field("n"), 1) == 0  # the even rows
    pushed = pa.Table.from_batches(list(read_range(rng, columns=["n", "offset"], filter=flt, cluster=cluster)))
    whole = pa.Table.from_batches(list(read_range(rng, cluster=cluster)))  # no pushdown: the stored rows
    assert whole.column("offset").to_pylist() == list(range(10, 200))
    want = whole.filter(flt).select(["n", "offset"])
    assert pushed.schema.names == ["n", "offset"] and pushed.num_rows > 0
    assert pushed.to_pylist() == want.to_pylist()


def test_bad_columns_and_filters_are_refused(wide):
    cluster, _ = wide
    with pytest.raises(ConfigError, match="no column 'nope'"):
        rayka.read_topic("wide", columns=["nope"], cluster=cluster)
    with pytest.raises(ConfigError, match="does not apply"):  # checked by the partition
        rayka.read_topic("wide", filter=pc.field("missing") > 3, cluster=cluster)
    with pytest.raises(ConfigError, match="pyarrow.compute expression"):
        rayka.Consumer("wide", filter="n > 3", cluster=cluster)
    with pytest.raises(ConfigError, match="does not apply"):
        rayka.Consumer("wide", filter=pc.field("missing") > 3, cluster=cluster)
    with pytest.raises(ConfigError, match="no column 'nope'"):
        rayka.Consumer("wide", columns=["nope"], cluster=cluster)


def test_consumer_with_columns_and_filter_commits_past_dropped_records(wide):
    cluster, _ = wide
    c = rayka.Consumer("wide", group_id="pd", auto_offset_reset="earliest", enable_auto_commit=False,
                       columns=["n", "s"], filter=pc.field("s") == "s4", cluster=cluster)
    seen = []
    tables = []

    def drained():
        t = c.poll_batch(timeout_ms=200)
        if t.num_rows:
            tables.append(t)
            seen.extend(t.column("n").to_pylist())
        return len(seen) >= N // 5

    wait_for(drained, timeout_s=30, what="the filtered records")
    assert sorted(seen) == [j for j in range(N) if j % 5 == 4]
    table = pa.concat_tables(tables)
    assert table.schema.names == ["topic", "partition", "offset", "n", "s"]
    assert set(table.column("s").to_pylist()) == {"s4"}
    ends = c.end_offsets([TopicPartition("wide", p) for p in range(PARTITIONS)])
    # Positions reach each partition's end even though its last records were dropped.
    wait_for(lambda: c.poll_batch(timeout_ms=50) is not None and all(
        c.position(tp) == end for tp, end in ends.items()), timeout_s=20, what="positions at the end offsets")
    c.commit()
    assert all(c.committed(tp) == end for tp, end in ends.items())
    c.close(autocommit=False)


def test_consumer_records_and_a_filter_that_keeps_nothing(wide):
    cluster, data = wide
    c = rayka.Consumer("wide", auto_offset_reset="earliest", columns=["f2", "key"],
                       filter=pc.field("n") < 3, cluster=cluster)
    got = []
    wait_for(lambda: got.extend(c.poll(timeout_ms=200)) or len(got) >= 3, timeout_s=30, what="three records")
    assert sorted(r.value["f2"] for r in got) == [2.0, 12.0, 22.0]
    assert all(r.timestamp_ms is None and r.headers is None and r.key.startswith(b"k") for r in got)
    assert set(got[0].value) == {"f2"}
    c.close()
    none = rayka.Consumer("wide", auto_offset_reset="earliest", filter=pc.field("n") < 0, cluster=cluster)
    tps = [TopicPartition("wide", p) for p in range(PARTITIONS)]
    ends = none.end_offsets(tps)
    wait_for(lambda: not none.poll(timeout_ms=100) and all(none.position(tp) == ends[tp] for tp in tps),
             timeout_s=20, what="a filter that keeps nothing to reach the end")
    assert none.poll_batch(timeout_ms=10).num_rows == 0
    assert none.poll_batch(timeout_ms=10).schema.names[:3] == ["topic", "partition", "offset"]
    none.close()


def test_polars_and_duckdb_read_the_results(wide):
    pl = pytest.importorskip("polars")
    duckdb = pytest.importorskip("duckdb")
    cluster, data = wide
    rows_read = rayka.read_topic("wide", columns=["n", "f0", "s"], filter=pc.field("n") < 1000, cluster=cluster)
    df = pl.from_arrow(rows_read)
    assert df.height == 1000 and df["n"].sum() == sum(range(1000))
    assert df.filter(pl.col("s") == "s1").height == 200
    # Numeric columns are shared, not copied, when polars keeps the chunks (rechunk=False): each
    # polars chunk wraps the very Arrow buffer read_topic returned (one chunk per fetched batch).
    shared = pl.from_arrow(rows_read, rechunk=False)["f0"]
    assert shared.n_chunks() == rows_read.column("f0").num_chunks > 1
    assert [c.to_numpy().__array_interface__["data"][0] for c in shared.get_chunks()] == [
        c.buffers()[1].address for c in rows_read.column("f0").chunks]
    rel = duckdb.query("SELECT s, count(*) AS c, sum(n) AS t FROM rows_read GROUP BY s ORDER BY s")
    assert rel.fetchall() == [(f"s{k}", 200, sum(j for j in range(1000) if j % 5 == k)) for k in range(5)]

    c = rayka.Consumer("wide", auto_offset_reset="earliest", cluster=cluster)
    batches = []
    wait_for(lambda: batches.append(c.poll_batch(timeout_ms=200)) or sum(b.num_rows for b in batches) >= N,
             timeout_s=30, what="every record")
    polled = pa.concat_tables([b for b in batches if b.num_rows])
    c.close()
    pdf = pl.from_arrow(polled)
    assert pdf.height == N and pdf["n"].sum() == sum(range(N))
    assert duckdb.sql("SELECT count(DISTINCT partition), sum(f1) FROM polled").fetchall() == [(
        PARTITIONS, float(sum(j * 10 + 1 for j in range(N))))]


def test_a_follower_serves_a_pushed_down_replica_read(wide):
    """An in-sync follower answers a consumer's replica read with columns and a filter (KIP-392
    reads, clients/read_replicas.py), the rows the leader would give; its own replication
    fetches stay whole stored batches."""
    import ray

    from rayka.clients.stubs import PartitionClient

    cluster, _ = wide
    admin = rayka.Admin(cluster)
    admin.create_topic("wide-rf2", partitions=1, replication_factor=2, schema=SCHEMA,
                       config={"replica.placement": "colocate", "min.insync.replicas": 2})
    with rayka.Producer(cluster=cluster, acks="all") as p:
        p.send_table("wide-rf2", rows(500)).result()
    meta, (leader,) = cluster.topic("wide-rf2", refresh=True)
    names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["name"].endswith(f":p:{meta.topic_id}:0.r1")]
    assert len(names) == 1, names
    follower = PartitionClient(ray.get_actor(names[0], namespace="rayka"))
    flt = pc.field("n") >= 490

    def answer():
        try:
            got = follower.fetch(0, 1000, 1 << 20, 0, True, replica_read=True, columns=["n"], filter=flt).result()
        except rayka.errors.NotLeaderError:
            return None  # not in sync yet, or its HW not there yet
        return got if got.next_offset == 500 else None

    got = wait_for(answer, timeout_s=30, what="the follower's pushed-down answer")
    assert got.records == 10 and got.replica_id == 1
    from rayka.partitions import codec
    import pyarrow.ipc as ipc

    schema = ipc.read_schema(pa.py_buffer(got.schema))
    payload = got.payload if isinstance(got.payload, tuple) else (pa.py_buffer(got.payload),)
    batches = [codec.decode(m, schema) for buf in payload for m in codec.iter_messages(buf)]
    assert schema.names == ["offset", "n"]
    assert [n for b in batches for n in b.column("n").to_pylist()] == list(range(490, 500))
    lead = leader.fetch(0, 1000, 1 << 20, 0, True, columns=["n"], filter=flt).result()
    assert lead.records == 10 and lead.next_offset == 500
