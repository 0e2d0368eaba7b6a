"""Reading across schema versions, end to end: a topic whose segments span three versions is read
in the newest (older batches projected: defaults, nulls, widening), in an older one a consumer
names, pushed down, after its partition actor restarts, and from a follower's copy; producers
still on an older version are accepted and their batches keep it; the files are never rewritten.
One cluster for the module."""

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pytest
import ray

import rayka
from rayka.errors import SchemaMismatchError, UnknownSchemaVersionError
from rayka.partitions.schema_rules import DEFAULT_METADATA_KEY
from rayka.partitions.schema_versions import VERSION_KEY
from rayka.testing import embedded_cluster, wait_for

V1 = pa.schema([pa.field("id", pa.int32(), nullable=False), pa.field("name", pa.string())])
V2 = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("name", pa.string()),
                pa.field("country", pa.string(), metadata={DEFAULT_METADATA_KEY: json.dumps("NL").encode()})])
V3 = V2.append(pa.field("score", pa.float64()))


def read_all(cluster, topic, n, **options):
    """Every record of ``topic`` from the start (bounded by count and time)."""
    c = rayka.Consumer(topic, cluster=cluster, auto_offset_reset="earliest", **options)
    got, deadline = [], time.monotonic() + 30
    try:
        while len(got) < n and time.monotonic() < deadline:
            got += c.poll(timeout_ms=300, max_records=10_000)
    finally:
        c.close()
    return got


def segment_versions(cluster, topic):
    """(file, version) of every segment file, from its own schema message (None: version 1)."""
    out = []
    for path in sorted((Path(cluster.data_dir) / "topics" / topic).rglob("*.arrows")):
        meta = ipc.open_stream(pa.memory_map(str(path))).schema.metadata or {}
        out.append((path, int(meta[VERSION_KEY]) if VERSION_KEY in meta else 1))
    return out


@pytest.fixture(scope="module")
def evolved(ray_session, tmp_path_factory):
    """Topic "people" (one partition): ids 0-2 under v1, 3-4 under v2, 5-6 under v3, then 7 from a
    producer still on v1. Yields (cluster, admin, the offset acknowledged for each id)."""
    with embedded_cluster(tmp_path_factory.mktemp("schema-versions")) as cluster:
        admin = rayka.Admin(cluster)
        admin.create_topic("people", partitions=1, schema=V1)
        acked = {}
        old = rayka.Producer(cluster=cluster)  # knows v1 only, for the whole test
        for i in range(3):
            acked[i] = old.send("people", {"id": i, "name": f"p{i}"}).get(timeout=30).offset
        assert admin.evolve_schema("people", V2).version == 2
        with rayka.Producer(cluster=cluster) as p2:
            for i in (3, 4):
                acked[i] = p2.send("people", {"id": i, "name": f"p{i}", "country": "SE"}).get(timeout=30).offset
        assert admin.evolve_schema("people", V3).version == 3
        with rayka.Producer(cluster=cluster) as p3:
            rows = pa.table({"id": pa.array([5, 6], pa.int64()), "name": ["p5", "p6"], "country": ["DE", None],
                             "score": [0.5, 1.5]})
            ((_, base, count),) = p3.send_table("people", rows).result(timeout=30)
            assert count == 2
            acked[5], acked[6] = base, base + 1
        acked[7] = old.send("people", {"id": 7, "name": "p7"}).get(timeout=30).offset
        old.close()
        yield cluster, admin, acked


EXPECTED_V3 = [
    {"id": 0, "name": "p0", "country": "NL", "score": None}, {"id": 1, "name": "p1", "country": "NL", "score": None},
    {"id": 2, "name": "p2", "country": "NL", "score": None}, {"id": 3, "name": "p3", "country": "SE", "score": None},
    {"id": 4, "name": "p4", "country": "SE", "score": None}, {"id": 5, "name": "p5", "country": "DE", "score": 0.5},
    {"id": 6, "name": "p6", "country": None, "score": 1.5}, {"id": 7, "name": "p7", "country": "NL", "score": None},
]


def test_segments_keep_each_batch_in_the_version_it_was_written_under(evolved):
    cluster, _, acked = evolved
    assert sorted(acked.values()) == list(range(8)) and acked == {i: i for i in range(8)}
    found = segment_versions(cluster, "people")
    assert [v for _, v in found] == [1, 2, 3, 1]  # the v1 producer's late batch kept v1
    first = ipc.open_stream(pa.memory_map(str(found[0][0]))).read_all()
    assert first.schema.field("id").type == pa.int32() and "country" not in first.column_names  # not rewritten
    assert first.column("id").to_pylist() == [0, 1, 2]


def test_a_consumer_reads_every_version_in_the_newest(evolved):
    cluster, _, acked = evolved
    got = read_all(cluster, "people", 8)
    assert [r.offset for r in got] == [acked[i] for i in range(8)]
    assert [r.value for r in got] == EXPECTED_V3
    table = rayka.read_topic("people", cluster=cluster)
    assert table.schema.field("id").type == pa.int64() and table.column_names[-2:] == ["country", "score"]
    assert table.select(["id", "name", "country", "score"]).to_pylist() == EXPECTED_V3


def test_a_consumer_reads_in_the_version_it_names_and_a_narrower_one_is_refused(evolved):
    cluster, _, _ = evolved
    got = read_all(cluster, "people", 8, schema_version=2)  # v3 batches lose the field v2 lacks
    assert [r.value for r in got] == [{k: v for k, v in row.items() if k != "score"} for row in EXPECTED_V3]
    with pytest.raises(UnknownSchemaVersionError, match=r"versions 1..3; there is no version 9"):
        rayka.Consumer("people", cluster=cluster, auto_offset_reset="earliest", schema_version=9).poll(100)
    c = rayka.Consumer("people", cluster=cluster, auto_offset_reset="earliest", schema_version=1)
    try:
        with pytest.raises(SchemaMismatchError, match=r"version 2 cannot be read in version 1.*'id'"):
            deadline = time.monotonic() + 30
            records = []
            while time.monotonic() < deadline:
                records += c.poll(timeout_ms=300)
        assert [r.value["id"] for r in records] == [0, 1, 2]  # v1's own records came first
    finally:
        c.close()


def test_pushed_down_reads_project_older_batches_first(evolved):
    cluster, _, _ = evolved
    table = rayka.read_topic("people", columns=["id", "country"], filter=pc.field("country") == "NL",
                             cluster=cluster)
    assert table.to_pylist() == [{"id": i, "country": "NL"} for i in (0, 1, 2, 7)]
    got = read_all(cluster, "people", 2, columns=["name", "score"], filter=pc.field("score") > 0)
    assert [r.value for r in got] == [{"name": "p5", "score": 0.5}, {"name": "p6", "score": 1.5}]


def test_a_restarted_partition_keeps_every_version_and_a_follower_copies_them(evolved):
    cluster, admin, _ = evolved
    _, (handle,) = cluster.topic("people")
    before = handle.stats().result().log_end_offset
    ray.kill(handle.handle, no_restart=False)  # restarted with its first arguments: version 1 only
    wait_for(lambda: _answers(handle), 60, what="the partition actor to restart")
    assert [r.value for r in read_all(cluster, "people", 8)] == EXPECTED_V3
    assert handle.stats().result().log_end_offset == before

    admin.create_topic("copied", partitions=1, replication_factor=2, schema=V1,
                       config={"replica.placement": "colocate", "min.insync.replicas": 2})
    with rayka.Producer(cluster=cluster, acks="all") as p:
        p.send("copied", {"id": 1, "name": "a"}).get(timeout=30)
        admin.evolve_schema("copied", V2)
    with rayka.Producer(cluster=cluster, acks="all") as p:
        p.send("copied", {"id": 2, "name": "b", "country": "SE"}).get(timeout=30)
    found = segment_versions(cluster, "copied")
    by_replica = {}
    for path, version in found:
        by_replica.setdefault(path.parent, []).append((path.name, version, path.read_bytes()))
    assert len(by_replica) == 2
    leader, follower = by_replica.values()
    assert [v for _, v, _ in leader] == [1, 2] and leader == follower  # same files, byte for byte
    assert [r.value for r in read_all(cluster, "copied", 2)] == [
        {"id": 1, "name": "a", "country": "NL"}, {"id": 2, "name": "b", "country": "SE"}]


def _answers(handle) -> bool:
    try:
        handle.stats().result(timeout_s=2)
        return True
    except Exception:  # noqa: BLE001 - still restarting
        return False


def test_a_running_producer_takes_up_a_newer_version_and_sends_its_buffered_rows_first(evolved):
    cluster, admin, _ = evolved
    admin.create_topic("live", partitions=1, schema=V1)
    with rayka.Producer(cluster=cluster, linger_ms=60_000, batch_size=1 << 20) as p:
        first = p.send("live", {"id": 1, "name": "old"})  # held open by the long linger
        admin.evolve_schema("live", V2)
        second = p.send("live", {"id": 2, "name": "new", "country": "SE"})  # v2 only: looks the topic up
        p.flush()
        assert (first.get(timeout=30).offset, second.get(timeout=30).offset) == (0, 1)
        admin.evolve_schema("live", V3)
        table = p.send_table("live", pa.table({"id": pa.array([3], pa.int64()), "name": ["t"], "country": ["FI"],
                                               "score": [2.5]}))  # v3's new column: looks the topic up again
        assert table.result(timeout=30)[0][1] == 2
    assert [v for _, v in segment_versions(cluster, "live")] == [1, 2, 3]
    assert [r.value for r in read_all(cluster, "live", 3)] == [
        {"id": 1, "name": "old", "country": "NL", "score": None}, {"id": 2, "name": "new", "country": "SE", "score": None},
        {"id": 3, "name": "t", "country": "FI", "score": 2.5}]


def test_a_producer_pinned_to_an_older_version_writes_it_and_nothing_else(evolved):
    cluster, admin, _ = evolved
    admin.create_topic("pinned", partitions=1, schema=V1)
    admin.evolve_schema("pinned", V2)
    with rayka.Producer(cluster=cluster) as p:
        p.send("pinned", {"id": 1, "name": "new", "country": "SE"}).get(timeout=30)
    with rayka.Producer(cluster=cluster, schema_version=1) as p:
        assert p.send("pinned", {"id": 2, "name": "old"}).get(timeout=30).offset == 1
        with pytest.raises(SchemaMismatchError, match="country"):
            p.send("pinned", {"id": 3, "name": "x", "country": "FI"})  # not v1's: no look-up when pinned
    with rayka.Producer(cluster=cluster, schema_version={"pinned": 5}) as p:
        with pytest.raises(UnknownSchemaVersionError, match="no version 5"):
            p.send("pinned", {"id": 4, "name": "y"})
    assert [v for _, v in segment_versions(cluster, "pinned")] == [2, 1]
    assert [r.value for r in read_all(cluster, "pinned", 2)] == [
        {"id": 1, "name": "new", "country": "SE"}, {"id": 2, "name": "old", "country": "NL"}]
