"""Exports benchmark: rayka.export_topic of a 4-partition topic to Parquet, Delta and Iceberg.

Rows/s and MB/s (of data files written, and of the records' value bytes read) for each
format, against the ceiling measured in the same run: ``pyarrow.parquet.write_table`` of the
same records from memory (no topic read, no commits). Each format is warmed up on a small
export first; its cold first call (imports, catalog or table creation) is a row of its own.

    python -m benchmarks.pipelines_exports --records 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

__all__ = ["run", "main"]

PARTITIONS = 4
VALUE_BYTES = 100
CHUNK = 200_000
FORMATS = ("parquet", "delta", "iceberg")


def _produce(cluster, topic: str, records: int) -> None:
    import rayka

    rayka.Admin(cluster).create_topic(topic, partitions=PARTITIONS)
    with rayka.Producer(cluster=cluster) as p:
        for lo in range(0, records, CHUNK):
            n = min(CHUNK, records - lo)
            # distinct, not very compressible values: a number then random bytes
            values = [b"%012d" % (lo + i) + os.urandom(VALUE_BYTES - 12) for i in range(n)]
            p.send_table(topic, pa.table({"key": [b"user-%d" % ((lo + i) % 1000) for i in range(n)], "value": values}))


def _row(workload: str, records: int, seconds: float, out_bytes: int, note: str = "") -> dict:
    return {"workload": workload, "records": records, "seconds": round(seconds, 3),
            "rows_per_s": records / seconds if seconds > 0 else 0.0,
            "out_mb_per_s": out_bytes / 1e6 / seconds if seconds > 0 else 0.0,
            "value_mb_per_s": records * VALUE_BYTES / 1e6 / seconds if seconds > 0 else 0.0, "note": note}


def run(records: int, quick: bool = False) -> list[dict]:
    """Produce ``records`` records to a 4-partition topic, export them to each format (cold
    first call, warm-up, timed run), and time ``pq.write_table`` of the same table as the
    ceiling. The rows of the printed table."""
    import rayka
    from rayka.testing import embedded_cluster

    if quick:
        records = min(records, 100_000)
    work = Path(tempfile.mkdtemp(prefix="rayka-bench-exports-"))
    rows = []
    try:
        with embedded_cluster(work) as cluster:
            _produce(cluster, "small", 2_000)
            _produce(cluster, "events", records)
            for fmt in FORMATS:
                began = time.perf_counter()
                res = rayka.export_topic("small", work / f"cold-{fmt}", format=fmt, cluster=cluster, progress=False)
                rows.append(_row(f"{fmt}, cold first call", res.rows, time.perf_counter() - began, res.bytes,
                                 "imports, table creation"))
                rayka.export_topic("small", work / f"warm-{fmt}", format=fmt, cluster=cluster, progress=False)
            for fmt in FORMATS:
                began = time.perf_counter()
                res = rayka.export_topic("events", work / f"out-{fmt}", format=fmt, cluster=cluster, progress=False)
                seconds = time.perf_counter() - began
                rows.append(_row(f"{fmt}, export_topic", res.rows, seconds, res.bytes, f"{res.commits} commit(s)"))
                shutil.rmtree(work / f"out-{fmt}", ignore_errors=True)
            table = rayka.read_topic("events", cluster=cluster)
            pq.write_table(table.slice(0, 1000), work / "warm.parquet")
            began = time.perf_counter()
            pq.write_table(table, work / "ceiling.parquet")
            seconds = time.perf_counter() - began
            rows.append(_row("ceiling: pq.write_table from memory", table.num_rows, seconds,
                             (work / "ceiling.parquet").stat().st_size, "same records, one file"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ceiling = rows[-1]["rows_per_s"]
    for r in rows:
        r["of_ceiling"] = r["rows_per_s"] / ceiling if ceiling else None
    return rows


def format_rows(rows: list[dict]) -> str:
    """The rows as a plain text table."""
    head = ["workload", "records", "rows/s", "MB/s written", "MB/s of values", "of ceiling", "note"]
    cells = [head] + [[r["workload"], f"{r['records']:,}", f"{r['rows_per_s']:,.0f}", f"{r['out_mb_per_s']:,.1f}",
                       f"{r['value_mb_per_s']:,.1f}",
                       "-" if r["of_ceiling"] is None or "cold" in r["workload"] else f"{r['of_ceiling']:.0%}",
                       r["note"]] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="at most 100,000 records")
    args = parser.parse_args(argv)
    print(format_rows(run(args.records, quick=args.quick)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
