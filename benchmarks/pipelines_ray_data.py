"""Ray Data reading a topic vs reading the same rows from Parquet files on the same disk.

A 4-partition typed topic of N records (three value columns: int64, float64, int64) is read
into Ray Data with ``rayka.data.read_topic(columns=...)`` and materialized; the same rows,
written as 4 Parquet files (one per partition's share, snappy, the default) in the same temp
dir, are read with ``ray.data.read_parquet`` and materialized. Same rows, same columns. Each
is read once cold (the first read of that data after writing: the rayka read tasks' first
connection to the cluster, Parquet's first metadata pass, the page cache as the write left
it; Ray Data's own start is paid before either, by a throwaway Dataset), then warm: the best of three, the two interleaved. The
Parquet files hold exactly these columns, so neither read projects. Target: rayka at least as
fast as Parquet, warm.

    python -m benchmarks.pipelines_ray_data --records 10000000
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa

__all__ = ["run", "main"]

SCHEMA = pa.schema([("id", pa.int64()), ("amount", pa.float64()), ("user", pa.int64())])
COLUMNS = SCHEMA.names
PARTITIONS = 4
_CHUNK = 500_000  # rows produced per send_table call


def _table(lo: int, hi: int) -> pa.Table:
    ids = np.arange(lo, hi, dtype=np.int64)
    return pa.table({"id": ids, "amount": ids * 0.5, "user": ids % 1000}, schema=SCHEMA)


def _timed(read) -> tuple[float, int]:
    t0 = time.perf_counter()
    ds = read().materialize()
    seconds = time.perf_counter() - t0
    return seconds, ds.count()


def _row(system: str, workload: str, records: int, nbytes: int, seconds: float, note: str = "") -> dict:
    return {"system": system, "workload": workload, "records": records, "seconds": round(seconds, 4),
            "rows_per_s": records / seconds if seconds else 0.0,
            "mb_per_s": nbytes / seconds / 1e6 if seconds else 0.0, "note": note}


def run(records: int, quick: bool = False) -> list[dict]:
    """The table's rows: cold and warm reads of ``records`` rows by rayka.data.read_topic and by
    ray.data.read_parquet (``quick``: at most 200,000 rows, two warm reads)."""
    import ray
    import ray.data
    import pyarrow.parquet as pq

    import rayka
    import rayka.data
    from rayka.testing import embedded_cluster

    records = min(records, 200_000) if quick else records
    repeats = 2 if quick else 3
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    tmp = Path(tempfile.mkdtemp(prefix="rayka-bench-raydata-"))
    rows: list[dict] = []
    with embedded_cluster(tmp / "rayka") as cluster:
        topic = f"bench-{uuid.uuid4().hex[:6]}"
        rayka.Admin(cluster).create_topic(topic, partitions=PARTITIONS, schema=SCHEMA)
        nbytes = 0
        parquet_dir = tmp / "parquet"
        parquet_dir.mkdir()
        per_file = -(-records // PARTITIONS)
        writers = [pq.ParquetWriter(parquet_dir / f"part-{p}.parquet", SCHEMA) for p in range(PARTITIONS)]
        with rayka.Producer(cluster=cluster) as producer:
            for lo in range(0, records, _CHUNK):
                chunk = _table(lo, min(lo + _CHUNK, records))
                nbytes += chunk.nbytes
                producer.send_table(topic, chunk).result()
                for p in range(PARTITIONS):  # the same rows, spread over the files as over the partitions
                    start = max(lo, p * per_file)
                    end = min(lo + len(chunk), (p + 1) * per_file)
                    if start < end:
                        writers[p].write_table(chunk.slice(start - lo, end - start))
        for w in writers:
            w.close()
        readers = {
            "rayka.data.read_topic": lambda: rayka.data.read_topic(topic, columns=COLUMNS, cluster=cluster),
            "ray.data.read_parquet": lambda: ray.data.read_parquet(str(parquet_dir)),
        }
        # Ray Data's own start (its workers, its executor) is paid here, by neither read.
        ray.data.range(1000, override_num_blocks=4).map_batches(lambda b: b).materialize()
        for system, read in readers.items():
            seconds, got = _timed(read)
            assert got == records, f"{system} read {got} rows of {records}"
            rows.append(_row(system, "cold first read", records, nbytes, seconds))
        best = {}
        for _ in range(repeats):  # interleaved, so both see the same machine
            for system, read in readers.items():
                seconds, _ = _timed(read)
                best[system] = min(best.get(system, seconds), seconds)
        for system in readers:
            rows.append(_row(system, f"warm read (best of {repeats})", records, nbytes, best[system]))
    ratio = best["ray.data.read_parquet"] / best["rayka.data.read_topic"]
    rows[-2]["note"] = f"{ratio:.2f}x Parquet's rows/s (target >= 1.00x)"
    return rows


def format_rows(rows: list[dict]) -> str:
    """The rows as an aligned text table."""
    cells = [["system", "workload", "rows", "s", "rows/s", "MB/s", "note"]]
    for r in rows:
        cells.append([r["system"], r["workload"], f"{r['records']:,}", f"{r['seconds']:.3f}",
                      f"{r['rows_per_s']:,.0f}", f"{r['mb_per_s']:,.1f}", r["note"]])
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="rows in the topic and the Parquet files")
    parser.add_argument("--quick", action="store_true", help="at most 200,000 rows, two warm reads")
    args = parser.parse_args(argv)
    from benchmarks.common import machine
    from rayka.testing import start_local_ray

    start_local_ray(num_cpus=2)
    print(f"machine: {machine()}", flush=True)
    print(format_rows(run(args.records, quick=args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
