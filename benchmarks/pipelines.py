"""The pipelines benchmark (issue 11): ``python -m benchmarks.pipelines [--records N] [--quick]``.

Three tables, on one local Ray (2 CPUs, loopback), each section on a 4-partition topic of
``--records`` records (default 10,000,000) of its own:

- Ray Data: ``rayka.data.read_topic`` against ``ray.data.read_parquet`` of the same rows
  stored as Parquet on the same disk (benchmarks/pipelines_ray_data.py); target: rayka at
  least as fast;
- exports: ``rayka.export_topic`` to Parquet, Delta and Iceberg, rows/s and MB/s, against the
  ceiling of ``pyarrow.parquet.write_table`` of the same records from memory
  (benchmarks/pipelines_exports.py);
- pushdown: 2 of the 20 columns of a wide typed topic with and without pushdown
  (benchmarks/pipelines_pushdown.py); target: at least 5x faster with it.

Each section warms up before timing and reports its cold first call as a row of its own. The
tables are printed and written to benchmarks/results/pipelines.md.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

RESULTS = Path(__file__).parent / "results" / "pipelines.md"
SECTIONS = (
    ("Ray Data: read_topic vs read_parquet", "benchmarks.pipelines_ray_data"),
    ("Exports: export_topic vs pq.write_table from memory", "benchmarks.pipelines_exports"),
    ("Pushdown: 2 of 20 columns of a wide typed topic", "benchmarks.pipelines_pushdown"),
)


def main(argv=None) -> int:
    import importlib

    from benchmarks.common import machine
    from rayka.testing import start_local_ray

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000, help="records per section's topic")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (and at most 100,000 records for the exports)")
    parser.add_argument("--only", choices=[m.rsplit("_", 1)[1] for _, m in SECTIONS], default=None,
                        help="run one section")
    args = parser.parse_args(argv)
    start_local_ray(num_cpus=2)
    out = [f"# Pipelines benchmark\n\n`python -m benchmarks.pipelines --records {args.records}`"
           f"{' --quick' if args.quick else ''}, {time.strftime('%Y-%m-%d')}; machine: {machine()}\n"]
    print(out[0], flush=True)
    for title, name in SECTIONS:
        if args.only and not name.endswith(args.only):
            continue
        module = importlib.import_module(name)
        began = time.perf_counter()
        print(f"## {title}", flush=True)
        table = module.format_rows(module.run(args.records, quick=args.quick))
        print(table, f"\n({time.perf_counter() - began:.0f} s)\n", flush=True)
        out.append(f"## {title}\n\n```\n{table}\n```\n")
    if not args.only:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text("\n".join(out))
        print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
