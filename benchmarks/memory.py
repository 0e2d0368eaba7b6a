"""Memory stays flat: ``python -m benchmarks.memory [--records N]``.

Produces N records (default 10,000,000, 100-byte values) with per-record
``send()`` through a 32 MiB ``buffer_memory``, printing the producer's RSS and the
partition actor's RSS every million records, then reads the whole log back with
``poll_batch`` and prints the actor's RSS again. Flat columns mean: the producer is
bounded by ``buffer_memory`` and the partition's memory does not grow with its log.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import psutil  # noqa: E402
import ray  # noqa: E402

import rayka  # noqa: E402


def actor_pids() -> list[int]:
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if "PartitionActor" in " ".join(p.info.get("cmdline") or [])]


def rss_mb(pids) -> float:
    total = 0
    for pid in pids:
        try:
            total += psutil.Process(pid).memory_info().rss
        except psutil.Error:
            pass
    return total / 1e6


def rss_breakdown(pids) -> str:
    """RssAnon / RssFile (mapped segment files) / RssShmem (Ray's object store) from /proc."""
    totals = {"RssAnon": 0, "RssFile": 0, "RssShmem": 0}
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                key = line.split(":")[0]
                if key in totals:
                    totals[key] += int(line.split()[1]) * 1024
        except OSError:
            pass
    return ", ".join(f"{k[3:].lower()} {v / 1e6:.0f} MB" for k, v in totals.items())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--time-limit-s", type=float, default=120)
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="rayka-mem-")
    cluster = rayka.connect(data_dir=Path(tmp) / "data", cluster_name=f"mem-{uuid.uuid4().hex[:6]}", num_cpus=2,
                            runtime="process")
    admin = rayka.Admin(cluster)
    admin.create_topic("mem", partitions=1, config={"segment.bytes": 64 * 1024 * 1024})
    me = psutil.Process()
    pids = actor_pids()
    print(f"{'records':>12} {'producer RSS MB':>16} {'partition RSS MB':>17} {'log MB':>8} {'msg/s':>10}")
    value = b"x" * 100
    step = 1_000_000 if args.records >= 2_000_000 else max(args.records // 5, 1)
    deadline = time.monotonic() + args.time_limit_s
    sent = 0
    with rayka.Producer(linger_ms=5, batch_size=256 * 1024, buffer_memory=32 * 1024 * 1024) as p:
        t0 = time.perf_counter()
        while sent < args.records and time.monotonic() < deadline:
            for _ in range(step):
                p.send("mem", value=value)
            sent += step
            size = admin.describe_topic("mem").partitions[0].size_bytes / 1e6
            print(f"{sent:>12,} {me.memory_info().rss / 1e6:>16.0f} {rss_mb(pids):>17.0f} {size:>8.0f} "
                  f"{sent / (time.perf_counter() - t0):>10,.0f}", flush=True)
        p.flush()
    c = rayka.Consumer("mem", auto_offset_reset="earliest")
    read = 0
    peak, detail = 0.0, ""
    while read < sent and time.monotonic() < deadline + 120:
        read += c.poll_batch(timeout_ms=1000, max_records=200_000).num_rows
        now = rss_mb(pids)
        if now > peak:
            peak, detail = now, rss_breakdown(pids)
    print(f"read back {read:,} records with poll_batch: partition RSS peak {peak:.0f} MB ({detail}), "
          f"consumer RSS {me.memory_info().rss / 1e6:.0f} MB")
    settle = time.monotonic() + 3
    while time.monotonic() < settle:  # let the partition's tick unmap idle segments
        time.sleep(0.5)
    print(f"partition RSS {rss_mb(pids):.0f} MB ({rss_breakdown(pids)}) after its idle segments were unmapped")
    c.close()
    cluster.shutdown(delete_data=True)
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
