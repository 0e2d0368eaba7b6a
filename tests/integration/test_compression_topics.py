"""Compressed topics end to end (compression.type): the producer ships, the partition stores
with the topic's codec, plain pyarrow reads the segments, consumers, read_topic, pushed-down
reads and a follower copy see what was sent; alter_topic_config mixes codecs in one segment."""

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest

import rayka
from rayka.errors import ConfigError
from rayka.testing import embedded_cluster

SCHEMA = pa.schema([("n", pa.int64()), ("price", pa.float64()), ("page", pa.string())])


def events(start, n):
    return [json.dumps({"id": i, "url": f"https://shop.example.com/item/{i % 50}",
                        "agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0"}).encode()
            for i in range(start, start + n)]


def typed(n):
    return pa.table({"n": pa.array(range(n), pa.int64()), "price": pa.array([i * 0.5 for i in range(n)]),
                     "page": pa.array([f"/category/{i % 7}" for i in range(n)]),
                     "key": pa.array([b"k%d" % (i % 4) for i in range(n)])})


def segments(cluster, topic):
    return sorted((Path(cluster.data_dir) / "topics" / topic).rglob("*.arrows"))


def plain_values(cluster, topic, column="value"):
    return sum((ipc.open_stream(pa.memory_map(str(s))).read_all().column(column).to_pylist()
                for s in segments(cluster, topic)), [])


@pytest.fixture(scope="module")
def comp(ray_session, tmp_path_factory):
    with embedded_cluster(tmp_path_factory.mktemp("compression")) as cluster:
        yield cluster, rayka.Admin(cluster)


def test_bad_compression_configs_are_refused_at_create_and_alter(comp):
    cluster, admin = comp
    with pytest.raises(ConfigError, match="lz4 and zstd"):
        admin.create_topic("gz", config={"compression.type": "gzip"})
    admin.create_topic("later", config={"compression.type": "zstd"})
    with pytest.raises(ConfigError, match="not valid for zstd"):
        admin.alter_topic_config("later", {"compression.level": 40})
    assert admin.describe_topic_config("later")["compression.type"] == "zstd"


def test_an_untyped_topic_mixing_codecs_reads_back_everywhere(comp):
    cluster, admin = comp
    admin.create_topic("clicks", partitions=1)
    admin.create_topic("clicks-z", partitions=1, config={"compression.type": "zstd", "compression.level": 3})
    sent = []
    with rayka.Producer(cluster=cluster) as p:
        for topic in ("clicks", "clicks-z"):
            for v in events(0, 3000):
                p.send(topic, v)
            p.flush()
    sent = events(0, 3000)
    plain, packed = (sum(f.stat().st_size for f in segments(cluster, t)) for t in ("clicks", "clicks-z"))
    assert packed < plain / 3, (packed, plain)
    assert plain_values(cluster, "clicks-z") == sent
    # Codec changes apply to new batches; the segment then holds zstd, lz4 and none.
    for kind, start in (("lz4", 3000), ("none", 4000)):
        # Applied to the running partition before it returns (alter_topic_config's contract).
        assert admin.alter_topic_config("clicks-z", {"compression.type": kind, "compression.level": None})[
            "compression.type"] == kind
        with rayka.Producer(cluster=cluster) as p:
            p.send_table("clicks-z", pa.table({"value": pa.array(events(start, 1000), pa.binary())})).result()
        sent += events(start, 1000)
    (seg,) = segments(cluster, "clicks-z")
    from rayka.partitions import codec

    data = pa.py_buffer(seg.read_bytes())
    start = len(codec.schema_message(ipc.open_stream(data).schema))
    kinds = [codec.is_compressed(m) for m in codec.iter_messages(data, start)]
    assert kinds[0] and not kinds[-1], kinds  # zstd first, none last
    assert plain_values(cluster, "clicks-z") == sent
    assert rayka.read_topic("clicks-z", cluster=cluster).column("value").to_pylist() == sent
    c = rayka.Consumer("clicks-z", cluster=cluster, auto_offset_reset="earliest")
    got, deadline = [], time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        got += [r.value for r in c.poll(timeout_ms=500, max_records=10_000)]
    c.close()
    assert got == sent
    size = admin.describe_topic("clicks-z").partitions[0].size_bytes
    assert 0 < size < plain


def test_a_typed_compressed_topic_pushed_down_and_copied_by_a_follower(comp):
    cluster, admin = comp
    admin.create_topic("typed-z", partitions=1, replication_factor=2, schema=SCHEMA,
                       config={"compression.type": "lz4", "replica.placement": "colocate", "min.insync.replicas": 2})
    data = typed(4000)
    with rayka.Producer(cluster=cluster, acks="all") as p:
        p.send_table("typed-z", data).result()
    files = segments(cluster, "typed-z")
    assert len(files) == 2  # leader and follower, each a plain IPC stream
    for f in files:
        table = ipc.open_stream(pa.memory_map(str(f))).read_all()
        assert table.column("n").to_pylist() == list(range(4000))
        assert table.column("page").to_pylist() == data.column("page").to_pylist()
    assert files[0].read_bytes() == files[1].read_bytes()  # the follower keeps the stored bytes
    _, (handle,) = cluster.topic("typed-z")
    before = handle.stats().result().reads
    got = rayka.read_topic("typed-z", columns=["n"], filter=pc.field("page") == "/category/3", cluster=cluster)
    mid = handle.stats().result().reads
    full = rayka.read_topic("typed-z", cluster=cluster)
    after = handle.stats().result().reads
    assert sorted(got.column("n").to_pylist()) == [i for i in range(4000) if i % 7 == 3]
    assert full.column("price").to_pylist() == data.column("price").to_pylist()
    pushed_read = mid["pushdown_read_bytes"] - before["pushdown_read_bytes"]
    pushed_shipped = mid["pushdown_shipped_bytes"] - before["pushdown_shipped_bytes"]
    full_read = after["full_read_bytes"] - mid["full_read_bytes"]
    full_shipped = after["full_shipped_bytes"] - mid["full_shipped_bytes"]
    assert 0 < pushed_shipped < full_shipped / 4, (pushed_shipped, full_shipped)
    assert 0 < pushed_read, pushed_read
    assert full_read > 0
