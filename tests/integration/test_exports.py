"""rayka.export_topic to Parquet, Delta and Iceberg, read back by each format's own reader."""

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import rayka
from rayka.clients.export_parquet import committed_files
from rayka.errors import ConfigError
from rayka.testing import embedded_cluster

N = 2000
KEYS = 7


def produce(cluster, topic, lo, hi):
    values = [b"v%06d" % i for i in range(lo, hi)]
    with rayka.Producer(cluster=cluster) as p:
        p.send_table(topic, pa.table({"key": [b"k%d" % (i % KEYS) for i in range(lo, hi)], "value": values}))


@pytest.fixture(scope="module")
def topic(ray_session, tmp_path_factory):
    """One cluster and one 3-partition topic of N unique values over KEYS keys, for the module."""
    with embedded_cluster(tmp_path_factory.mktemp("exports")) as cluster:
        rayka.Admin(cluster).create_topic("clicks", partitions=3)
        produce(cluster, "clicks", 0, N)
        yield cluster, "clicks"


def per_key(rows):
    """Values per key in the order they were produced (the order within a partition)."""
    out = {}
    for r in sorted(rows, key=lambda r: (r["partition"], r["offset"])):
        out.setdefault(bytes(r["key"]), []).append(bytes(r["value"]))
    return out


def produced(cluster, topic):
    """Every record of ``topic`` now, each with its partition."""
    from rayka.clients.topic_read import plan_ranges, read_range

    rows = []
    for rng in plan_ranges(topic, cluster=cluster):
        for batch in read_range(rng, cluster=cluster):
            rows += [dict(r, partition=rng.partition) for r in batch.to_pylist()]
    return rows


def check_rows(got, cluster, topic):
    """``got`` holds every record of ``topic`` exactly once, in each key's order."""
    want = produced(cluster, topic)
    assert len(got) == len(want)
    assert sorted(bytes(r["value"]) for r in got) == sorted(bytes(r["value"]) for r in want)  # each row once
    assert sum(r["offset"] for r in got) == sum(r["offset"] for r in want)
    assert per_key(got) == per_key(want)


def duck(sql):
    return duckdb.sql(sql).to_arrow_table()


def test_parquet_export_read_by_duckdb_and_spark_and_resumed(topic, tmp_path, spark):
    cluster, name = topic
    dest = tmp_path / "pq"
    first = rayka.export_topic(name, dest, cluster=cluster, commit_records=500)
    assert first.rows == N and first.commits >= 4 and first.bytes > 0
    assert sum(e - s for s, e in first.ranges.values()) == N
    glob = f"{dest}/**/*.parquet"
    got = duck(f"select * from read_parquet('{glob}', hive_partitioning=true)").to_pylist()
    check_rows(got, cluster, name)
    assert sorted(committed_files(dest)) == sorted(str(p) for p in dest.rglob("*.parquet"))
    rows = [r.asDict() for r in spark.read.parquet(str(dest)).collect()]
    check_rows(rows, cluster, name)
    # nothing new: nothing written; then more records: only those
    again = rayka.export_topic(name, dest, cluster=cluster)
    assert again.rows == 0 and again.commits == 0
    produce(cluster, name, N, N + 300)
    more = rayka.export_topic(name, dest, cluster=cluster, commit_records=500)
    assert more.rows == 300
    got = duck(f"select * from read_parquet('{glob}', hive_partitioning=true)").to_pylist()
    check_rows(got, cluster, name)
    with pytest.raises(ConfigError, match="columns=None"):
        rayka.export_topic(name, dest, cluster=cluster, columns=["value"])


def test_parquet_orphans_of_a_crashed_commit_are_hidden_and_removed(topic, tmp_path):
    cluster, name = topic
    dest = tmp_path / "pq"
    rayka.export_topic(name, dest, cluster=cluster, end=100)
    tmp_dir = dest / "_rayka_export" / "tmp"
    orphan = tmp_dir / "part-00000009-dead-0.parquet.tmp"
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"offset": [10**9]}), orphan)  # what a run killed before its manifest leaves
    n = duckdb.sql(f"select count(*) from read_parquet('{dest}/**/*.parquet', hive_partitioning=true)").fetchall()[0][0]
    assert n == 300  # the glob does not see the temp file
    rayka.export_topic(name, dest, cluster=cluster, end=200)
    assert not orphan.exists()
    manifest = json.loads(sorted((dest / "_rayka_export").glob("manifest-*.json"))[-1].read_text())
    assert manifest["state"]["next"] == {"0": 200, "1": 200, "2": 200}
    from rayka.clients.export_parquet import ParquetExport

    running = ParquetExport(str(dest))
    running.recover()  # as a run in progress holds it
    try:
        with pytest.raises(ConfigError, match="another export to .* is running"):
            rayka.export_topic(name, dest, cluster=cluster)
    finally:
        running.close()
    assert rayka.export_topic(name, dest, cluster=cluster, end=201).rows == 3


def test_parquet_by_date_with_columns_and_filter(topic, tmp_path, capsys):
    cluster, name = topic
    dest = tmp_path / "bydate"
    flt = pc.field("key") == b"k3"
    res = rayka.export_topic(name, dest, cluster=cluster, partition_by="date", columns=["offset", "value"],
                             filter=flt, progress=True)
    assert f"export {name}" in capsys.readouterr().err  # the tqdm bar
    want = rayka.read_topic(name, cluster=cluster, filter=flt)
    assert res.rows == want.num_rows
    days = [p.name for p in dest.iterdir() if p.name.startswith("date=")]
    assert days and all(len(d) == len("date=2026-12-01") for d in days)
    got = duck(f"select * from read_parquet('{dest}/**/*.parquet', hive_partitioning=true)")
    assert got.column_names == ["offset", "value", "date"]
    assert sorted(got.column("value").to_pylist()) == sorted(want.column("value").to_pylist())
    with pytest.raises(ConfigError, match="filter="):
        rayka.export_topic(name, dest, cluster=cluster, partition_by="date", columns=["offset", "value"])


def test_delta_export_read_by_deltalake_and_resumed(topic, tmp_path):
    from deltalake import DeltaTable

    cluster, name = topic
    dest = tmp_path / "delta"
    res = rayka.export_topic(name, dest, format="delta", cluster=cluster, commit_records=1000)
    assert res.commits >= 2 and res.bytes > 0
    check_rows(DeltaTable(str(dest)).to_pyarrow_table().to_pylist(), cluster, name)
    history = DeltaTable(str(dest)).history()
    state = json.loads(history[0]["rayka.export"])
    assert state["next"] == {str(p): e for p, (_, e) in res.ranges.items()}
    produce(cluster, name, 10**5, 10**5 + 200)
    more = rayka.export_topic(name, dest, format="delta", cluster=cluster, commit_records=1000)
    assert more.rows == 200 and more.commits == 1
    check_rows(DeltaTable(str(dest)).to_pyarrow_table().to_pylist(), cluster, name)
    with pytest.raises(ConfigError, match="partition_by='partition'"):
        rayka.export_topic(name, dest, format="delta", cluster=cluster, partition_by=None)
    from rayka.clients.export_delta import DeltaExport

    running = DeltaExport(str(dest))
    running.recover()  # as a run in progress holds it: a second append would write the same offsets again
    try:
        with pytest.raises(ConfigError, match="another export to .* is running"):
            rayka.export_topic(name, dest, format="delta", cluster=cluster)
    finally:
        running.close()
    produce(cluster, name, 10**5 + 200, 10**5 + 203)
    assert rayka.export_topic(name, dest, format="delta", cluster=cluster).rows == 3
    check_rows(DeltaTable(str(dest)).to_pyarrow_table().to_pylist(), cluster, name)


def test_delta_by_date_with_columns_and_filter(topic, tmp_path):
    from deltalake import DeltaTable

    cluster, name = topic
    flt = pc.field("key") == b"k2"
    res = rayka.export_topic(name, tmp_path / "d", format="delta", cluster=cluster, partition_by="date",
                             columns=["offset", "value"], filter=flt)
    want = rayka.read_topic(name, cluster=cluster, filter=flt)
    table = DeltaTable(str(tmp_path / "d"))
    got = table.to_pyarrow_table()
    assert res.rows == want.num_rows == got.num_rows
    assert sorted(got.column_names) == ["date", "offset", "value"] and table.metadata().partition_columns == ["date"]
    assert sorted(got.column("value").to_pylist()) == sorted(want.column("value").to_pylist())


KILL_CHILD = r"""
import sys, time
import rayka
from rayka.clients import topic_read

address, cluster, topic, dest, fmt = sys.argv[1:6]
read = topic_read.read_range


def slow_read(*args, **kwargs):  # slows the export down so the kill lands in the middle of a commit
    for batch in read(*args, **kwargs):
        yield batch
        time.sleep(0.1)


topic_read.read_range = slow_read
rayka.connect(address=address, cluster_name=cluster)
rayka.export_topic(topic, dest, format=fmt, commit_records=500, progress=False)
"""
BIG = 12_000


@pytest.fixture(scope="module")
def big(topic):
    cluster, _ = topic
    rayka.Admin(cluster).create_topic("big", partitions=3)
    produce_big = [(lo, lo + 1000) for lo in range(0, BIG, 1000)]
    for lo, hi in produce_big:
        produce(cluster, "big", lo, hi)
    return cluster, "big"


def commits_made(fmt, dest):
    if fmt == "parquet":
        return len(list(Path(dest, "_rayka_export").glob("manifest-*.json")))
    if fmt == "iceberg":
        from pyiceberg.exceptions import NoSuchTableError

        from rayka.clients.export_iceberg import open_catalog, table_identifier

        if not Path(dest, "catalog.db").exists():
            return 0
        try:
            return len(open_catalog(str(dest)).load_table(table_identifier("big")).snapshots())
        except NoSuchTableError:
            return 0
    from deltalake import DeltaTable

    return DeltaTable.is_deltatable(str(dest)) and DeltaTable(str(dest)).version() + 1


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["parquet", "delta", "iceberg"])
def test_sigkill_mid_export_then_rerun_exports_every_row_once(big, ray_session, tmp_path, fmt):
    import os
    import signal
    import subprocess
    import sys

    from rayka.testing import wait_for

    cluster, name = big
    dest = tmp_path / fmt
    err = tmp_path / "child.err"
    with open(err, "w") as err_file:
        child = subprocess.Popen([sys.executable, "-c", KILL_CHILD, ray_session, cluster.cluster_name, name,
                                  str(dest), fmt], env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err_file)
    try:
        def first_commit():
            assert child.poll() is None, f"the export ended before it was killed:\n{err.read_text()[-3000:]}"
            return commits_made(fmt, dest) >= 1
        wait_for(first_commit, timeout_s=60, what="the first commit of the export")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    made = commits_made(fmt, dest)
    assert 1 <= made < BIG // 500, f"{made} commits: the kill did not land mid-way"
    res = rayka.export_topic(name, dest, format=fmt, cluster=cluster, commit_records=500)
    assert 0 < res.rows < BIG
    if fmt == "parquet":
        got = duck(f"select * from read_parquet('{dest}/**/*.parquet', hive_partitioning=true)").to_pylist()
        assert sorted(committed_files(dest)) == sorted(str(p) for p in dest.rglob("*.parquet"))
        assert not list((dest / "_rayka_export" / "tmp").iterdir())
    elif fmt == "delta":
        from deltalake import DeltaTable

        got = DeltaTable(str(dest)).to_pyarrow_table().to_pylist()
    else:
        from rayka.clients.export_iceberg import open_catalog, table_identifier

        got = open_catalog(str(dest)).load_table(table_identifier(name)).scan().to_arrow().to_pylist()
    check_rows(got, cluster, name)


def test_cli_export_prints_what_it_exported_and_resumes(topic, ray_session, tmp_path):
    import os
    import subprocess
    import sys

    cluster, name = topic
    dest = tmp_path / "cli"
    env = dict(os.environ, RAYKA_CLUSTER=cluster.cluster_name)
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-m", "rayka.cli", "--address", ray_session, "export", name, str(dest),
           "--until", "100", "--columns", "offset,value", "--partition-by", "none"]
    out = subprocess.run(cmd, env=env, capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    lines = out.stdout.decode().splitlines()
    assert lines[0].startswith(f"exported 300 row(s) (") and "as parquet in 1 commit(s), 300 offset(s)" in lines[0]
    assert lines[1:] == [f"  partition {p}: offsets 0..99" for p in range(3)]
    got = duck(f"select * from read_parquet('{dest}/*.parquet')")
    assert got.column_names == ["offset", "value"] and got.num_rows == 300
    out = subprocess.run(cmd[:-4] + ["--partition-by", "none"], env=env, capture_output=True, timeout=120)
    assert out.returncode == 1 and b"error: " in out.stderr and b"columns=['offset', 'value']" in out.stderr


def test_iceberg_export_read_by_a_pyiceberg_scan_and_resumed(topic, tmp_path):
    from rayka.clients.export_iceberg import open_catalog, table_identifier

    cluster, name = topic
    dest = tmp_path / "ice"
    res = rayka.export_topic(name, dest, format="iceberg", cluster=cluster, commit_records=1500)
    assert res.commits >= 2 and res.bytes > 0

    def scanned():
        table = open_catalog(str(dest)).load_table(table_identifier(name))
        return table, table.scan().to_arrow().to_pylist()

    table, rows = scanned()
    check_rows(rows, cluster, name)
    assert [f.name for f in table.spec().fields] == ["partition"]
    state = json.loads(table.current_snapshot().summary.additional_properties["rayka.export"])
    assert state["next"] == {str(p): e for p, (_, e) in res.ranges.items()}
    produce(cluster, name, 2 * 10**5, 2 * 10**5 + 100)
    more = rayka.export_topic(name, dest, format="iceberg", cluster=cluster)
    assert more.rows == 100 and more.commits == 1
    check_rows(scanned()[1], cluster, name)
    from rayka.clients.export_iceberg import IcebergExport

    running = IcebergExport(str(dest), name, {})
    running.recover()
    try:
        with pytest.raises(ConfigError, match="another export to .* is running"):
            rayka.export_topic(name, dest, format="iceberg", cluster=cluster)
    finally:
        running.close()


def test_offsets_deleted_by_retention_before_export_are_an_error_or_skipped_and_counted(topic, tmp_path):
    from rayka.clients.topic_read import plan_ranges
    from rayka.errors import OffsetOutOfRangeError
    from rayka.testing import wait_for

    cluster, _ = topic
    admin = rayka.Admin(cluster)
    admin.create_topic("ret", partitions=1, config={"segment.bytes": 4096})
    produce(cluster, "ret", 0, 100)
    dest = tmp_path / "ret"
    assert rayka.export_topic("ret", dest, cluster=cluster).rows == 100
    admin.alter_topic_config("ret", {"retention.bytes": 8192})
    for lo in range(100, 2100, 100):  # small sends: many small segments to delete
        produce(cluster, "ret", lo, lo + 100)
    log_start = wait_for(lambda: (s := plan_ranges("ret", cluster=cluster)[0].start) > 100 and s,
                         timeout_s=30, what="retention to delete the first segments")
    with pytest.raises(OffsetOutOfRangeError, match=rf"ret-0: the export stopped at offset 100 .*starts at {log_start}"):
        rayka.export_topic("ret", dest, cluster=cluster)
    res = rayka.export_topic("ret", dest, cluster=cluster, skip_lost=True)
    assert res.lost[0] >= log_start - 100 > 0 and res.ranges[0][0] >= log_start
    assert "skipped (deleted by retention)" in str(res)
