"""rayka alone, the core numbers: ``python -m benchmarks.throughput [--quick]``.

100-byte values: one producer to one partition and to four (per-record ``send()``
and bulk ``send_table``), a consumer reading it all (``poll_batch`` and iteration),
end-to-end latency at a moderate fixed rate (5,000 msg/s), and peak RSS of the
driver and of the partition actors. For the side-by-side run against the ceiling,
ray.util.queue and Redis, use ``python -m benchmarks.compare`` (``make bench``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
from pathlib import Path

from benchmarks import compare
from benchmarks.common import format_table, machine, markdown_table, settle

import ray  # noqa: E402
import rayka  # noqa: E402

TARGETS = {  # issue 2's targets on a 2-core machine (printed, never asserted)
    "send(), 1 partition(s), acks=1": ("msg/s", 300_000),
    "send_table, 1 partition(s)": ("msg/s", 1_000_000),
    "consume, poll_batch": ("msg/s", 3_000_000),
    "end-to-end at 5,000/s": ("p99 ms", 10.0),
}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=compare.RESULTS)
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    print(f"machine: {machine()}", flush=True)
    tmp = tempfile.mkdtemp(prefix="rayka-tp-")
    cluster = rayka.connect(data_dir=Path(tmp) / "data", cluster_name=f"tp-{uuid.uuid4().hex[:6]}", num_cpus=2,
                            runtime="process")
    admin = rayka.Admin(cluster)
    rows = []

    def step(row) -> None:
        rows.append(row)
        settle()  # same state before every row (see common.settle)

    settle(3.0)
    try:
        step(compare.rayka_send(admin, int(1_000_000 * scale), 1, 1))
        step(compare.rayka_send(admin, int(1_000_000 * scale), 4, 1))
        row, topic = compare.rayka_send_table(admin, int(2_000_000 * scale), 1)
        step(row)
        step(compare.rayka_send_table(admin, int(2_000_000 * scale), 4)[0])
        step(compare.rayka_poll_batch(topic, int(2_000_000 * scale)))
        step(compare.rayka_iterate(topic, int(1_000_000 * scale)))
        step(compare.rayka_latency(admin, cluster, 5_000, 2.0 if args.quick else 5.0))
    finally:
        cluster.shutdown(delete_data=True)
    for r in rows:
        unit, target = TARGETS.get(r.workload, (None, None))
        if unit == "msg/s":
            r.note = f"target >= {target:,} msg/s: {'ok' if r.msgs_per_s >= target else 'below target'}"
        elif unit == "p99 ms":
            r.note += f"; target p99 <= {target} ms: {'ok' if (r.p99_ms or 1e9) <= target else 'above target'}"
    print()
    print(format_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.md").write_text(
        f"# `python -m benchmarks.throughput`\n\nMachine: {machine()}; 100-byte values.\n\n"
        + markdown_table(rows) + "\n")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
