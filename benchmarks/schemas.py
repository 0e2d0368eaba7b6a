"""Issue 13's benchmark in one command: ``python -m benchmarks.schemas [--quick]``.

1. Typed ``send()`` of dicts vs bytes ``send()`` of the same record size, and the typed check
   alone (benchmarks/schema_send.py). Target: typed >= 0.5x bytes msg/s.
2. Compression none/lz4/zstd on JSON click events and typed numeric rows: bytes on disk and
   ``send_table`` throughput, each against none (benchmarks/schema_compression.py). Target: zstd
   at least halves the click events on disk while keeping >= 70% of the throughput.

Each part warms up and reports its cold first call; targets are printed, never asserted. The
tables go to the terminal and to benchmarks/results/schemas.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks.common import format_table, machine, markdown_table
from benchmarks.schema_compression import format_rows, run_compression, verdict
from benchmarks.schema_send import TARGET, run_check, run_send

RESULTS = Path(__file__).parent / "results" / "schemas.md"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="records of the send() comparison")
    parser.add_argument("--quick", action="store_true", help="smaller data and less memory warming")
    args = parser.parse_args(argv)
    quick = args.quick
    print(f"machine: {machine()}", flush=True)
    rows = args.rows // 4 if quick else args.rows
    send_rows = run_send(rows=rows, warm=max(1, rows // 10)) + run_check(min(rows, 100_000))
    print("\n" + format_table(send_rows), flush=True)
    ratio = send_rows[0].extra["ratio"]
    send_verdict = (f"target (typed send() >= {TARGET}x bytes send()): {ratio:.2f}x: "
                    f"{'met' if ratio >= TARGET else 'NOT met'}")
    print(send_verdict, flush=True)
    comp_rows = run_compression(50_000 if quick else 200_000, 250_000 if quick else 1_000_000,
                                repeats=2 if quick else 5, quick=quick)
    comp_table, comp_verdict = format_rows(comp_rows), verdict(comp_rows)
    print("\n" + comp_table + "\n" + comp_verdict, flush=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        f"# `python -m benchmarks.schemas{' --quick' if quick else ''}`\n\n{time.strftime('%Y-%m-%d')}; "
        f"machine: {machine()}.\n\n## Typed send() vs bytes send()\n\n{markdown_table(send_rows)}\n\n"
        f"{send_verdict}\n\n## Compression (send_table, one partition)\n\n```\n{comp_table}\n```\n\n"
        f"{comp_verdict}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
