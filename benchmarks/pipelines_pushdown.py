"""Reading 2 of 20 columns with and without pushdown: ``python -m benchmarks.pipelines_pushdown``.

A 4-partition typed topic of 20 columns (18 float64, an int64 ``n`` and a short string ``s``)
holding ``--records`` rows, written once with ``send_table``. Then the same read, of columns
``f0`` and ``n`` of every row, two ways:

- *without pushdown*: ``rayka.read_topic(topic)`` (every stored column shipped) and
  ``.select(["f0", "n"])`` on the client, as a reader without pushdown must;
- *with pushdown*: ``rayka.read_topic(topic, columns=["f0", "n"])``: the partitions read only
  those columns' buffers from their segments and ship only them (partitions/pushdown.py);
- and, for scale, pushdown with a filter keeping about a tenth of the rows.

Fairness: both read the same stored data, from the same cluster, in the same process. Each
way gets a cold row (its first call, the partitions' code paths and the client's imports
cold) and then ``repeats`` timed calls after a warm-up; the warm rows alternate the two ways
and report the median. Page cache: warm. The segments were just written and stay in the
page cache (this machine's RAM holds them several times over; no root to drop caches), so
this measures the CPU, memory and object-store work a read does, not disk: the pushed-down
read's saving on a cold disk would be larger (it reads ~3/24 of the pages). Before every
timed row ``benchmarks.common.settle()`` syncs and touches memory, so no row allocates into
cold guest pages (the VMs' cold-memory penalty, common.py). The partitions' own counters
(``PartitionStats.reads``) give the bytes each way read from the segments and shipped.

Target (issue 11): the 2-of-20-column read at least 5x faster with pushdown.
"""

from __future__ import annotations

from typing import NamedTuple

import argparse
import os
import statistics
import tempfile
import time
import uuid

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

__all__ = ["run", "main"]

TOPIC = "wide20"
PARTITIONS = 4
COLUMNS = ["f0", "n"]
SCHEMA = pa.schema([pa.field(f"f{i}", pa.float64()) for i in range(18)]
                   + [pa.field("n", pa.int64()), pa.field("s", pa.string())])
CHUNK = 250_000
TARGET = 5.0


def _chunk(start: int, n: int) -> pa.Table:
    base = np.arange(start, start + n, dtype=np.float64)
    cols = {f"f{i}": pa.array(base + i) for i in range(18)}
    cols["n"] = pa.array(np.arange(start, start + n, dtype=np.int64))
    cols["s"] = pa.array(np.array(["a", "bb", "ccc", "dddd"], dtype=object)[np.arange(n) % 4])
    return pa.table(cols)


def _counters(cluster) -> dict:
    _, handles = cluster.topic(TOPIC)
    totals: dict[str, int] = {}
    for h in handles:
        for k, v in (h.stats().result().reads or {}).items():
            totals[k] = totals.get(k, 0) + v
    return totals


def _without(cluster) -> pa.Table:
    import rayka

    return rayka.read_topic(TOPIC, cluster=cluster).select(COLUMNS)


def _with(cluster) -> pa.Table:
    import rayka

    return rayka.read_topic(TOPIC, columns=COLUMNS, cluster=cluster)


def _with_filter(cluster, below: float) -> pa.Table:
    import rayka

    return rayka.read_topic(TOPIC, columns=COLUMNS, filter=pc.field("f3") < below, cluster=cluster)


class _Shape(NamedTuple):
    """What a timed read returned, without the table: a table kept would keep its answers in
    the object store (the selected columns of a full read pin every column's buffers), and the
    next runs would pay for spilling them."""

    num_rows: int
    nbytes: int
    names: list


def _timed(cluster, fn, settle) -> tuple[float, _Shape, dict]:
    settle()
    before = _counters(cluster)
    t0 = time.perf_counter()
    table = fn(cluster)
    seconds = time.perf_counter() - t0
    shape = _Shape(table.num_rows, table.nbytes, table.schema.names)
    del table
    after = _counters(cluster)
    return seconds, shape, {k: after[k] - before.get(k, 0) for k in after}


def _row(workload: str, seconds: float, table, counts: dict, note: str = "") -> dict:
    kind = "pushdown" if counts.get("pushdown_fetches") else "full"
    read_b, shipped_b = counts.get(f"{kind}_read_bytes", 0), counts.get(f"{kind}_shipped_bytes", 0)
    return {"workload": workload, "rows": table.num_rows, "seconds": seconds,
            "rows_per_s": table.num_rows / seconds if seconds else 0.0,
            "mb_per_s": table.nbytes / seconds / 1e6 if seconds else 0.0,
            "read_mb": read_b / 1e6, "shipped_mb": shipped_b / 1e6, "note": note}


def run(records: int, quick: bool = False) -> list[dict]:
    """Rows of the pushdown table (see the module's docstring), on an embedded cluster of its own."""
    import rayka
    from benchmarks.common import settle as _settle
    from rayka.testing import embedded_cluster

    repeats = 3 if quick else 5
    settle = (lambda: _settle(0.5)) if quick else _settle
    below = records / 10 + 3  # f3 is the row number + 3: a tenth of the rows are below this
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rayka-pushdown-") as tmp, embedded_cluster(tmp) as cluster:
        rayka.Admin(cluster).create_topic(TOPIC, partitions=PARTITIONS, schema=SCHEMA)
        t0 = time.perf_counter()
        with rayka.Producer(cluster=cluster) as producer:
            futures = [producer.send_table(TOPIC, _chunk(s, min(CHUNK, records - s))) for s in range(0, records, CHUNK)]
            for f in futures:
                f.result()
        written = time.perf_counter() - t0
        stored = sum(p.size_bytes for p in rayka.Admin(cluster).describe_topic(TOPIC).partitions)
        print(f"  wrote {records:,} rows ({stored / 1e6:,.0f} MB stored) in {written:.1f} s", flush=True)
        ways = {"without pushdown (read all, select on client)": _without,
                "with pushdown (columns=)": _with}
        for name, fn in ways.items():
            seconds, table, counts = _timed(cluster, fn, settle)
            assert table.num_rows == records and table.names == COLUMNS
            rows.append(_row(f"cold: {name}", seconds, table, counts, "first call"))
        times: dict[str, list] = {name: [] for name in ways}
        for i in range(repeats):
            order = list(ways.items()) if i % 2 == 0 else list(reversed(ways.items()))
            for name, fn in order:
                times[name].append(_timed(cluster, fn, settle))
        for name in ways:
            runs = sorted(times[name], key=lambda r: r[0])
            seconds, table, counts = runs[len(runs) // 2]
            rows.append(_row(name, seconds, table, counts, f"median of {repeats}"))
        _with_filter(cluster, below)  # warm: the partitions bind the filter once (cached after)
        seconds, table, counts = _timed(cluster, lambda c: _with_filter(c, below), settle)
        rows.append(_row("with pushdown, filter keeping ~10% of rows", seconds, table, counts, "warm, one call"))
        full, pushed = rows[2]["rows_per_s"], rows[3]["rows_per_s"]
        speedup = pushed / full if full else 0.0
        rows.append({"workload": "speedup with pushdown (warm medians)", "rows": records, "seconds": 0.0,
                     "rows_per_s": speedup, "mb_per_s": 0.0, "read_mb": 0.0, "shipped_mb": 0.0,
                     "note": f"{speedup:.1f}x, target >= {TARGET:.0f}x: {'met' if speedup >= TARGET else 'NOT met'}"})
    return rows


def format_rows(rows: list[dict]) -> str:
    header = ["workload", "rows", "seconds", "rows/s", "MB/s", "read MB", "shipped MB", "note"]
    cells = [header]
    for r in rows:
        if r["seconds"]:
            cells.append([r["workload"], f"{r['rows']:,}", f"{r['seconds']:.3f}", f"{r['rows_per_s']:,.0f}",
                          f"{r['mb_per_s']:,.1f}", f"{r['read_mb']:,.1f}", f"{r['shipped_mb']:,.1f}", r["note"]])
        else:
            cells.append([r["workload"], f"{r['rows']:,}", "-", "-", "-", "-", "-", r["note"]])
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells)


def main(argv=None) -> int:
    from benchmarks.common import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="rows in the wide topic")
    parser.add_argument("--quick", action="store_true", help="3 timed calls a way instead of 5, less warming")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    print(f"2 of 20 columns of a {PARTITIONS}-partition typed topic, {args.records:,} rows; page cache warm "
          "(the segments were just written); MB/s of the 2 columns delivered", flush=True)
    rows = run(args.records, quick=args.quick)
    print(format_rows(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
