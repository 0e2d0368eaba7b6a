"""Consumer-group benchmark: ``python -m benchmarks.groups [--quick]``.

1. Rebalance time: a fourth member joins a stable group of three on a 12-partition
   topic; measured from its first ``poll()`` until all four own their final share,
   for cooperative-sticky and for eager (range) assignment, with how many partitions
   were revoked (and so stopped) on the way.
2. Group consume throughput with 1, 2 and 4 consumers, each in its own Ray actor
   (its own process), reading the same 12-partition topic with ``poll_batch``: the
   records are produced first, all members join and settle, then each reads its
   share from the beginning to the end; the time is the slowest member's.
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

import pyarrow as pa  # noqa: E402
import ray  # noqa: E402

import rayka  # noqa: E402
from benchmarks.common import machine  # noqa: E402


class Counting(rayka.ConsumerRebalanceListener):
    def __init__(self):
        self.revoked = 0

    def on_partitions_revoked(self, revoked):
        self.revoked += len(revoked)


def rebalance_time(admin, cluster, assignor: str) -> dict:
    topic = f"rb-{assignor}-{uuid.uuid4().hex[:6]}"
    admin.create_topic(topic, partitions=12)
    group = f"g-{topic}"
    listeners = [Counting() for _ in range(4)]
    opts = dict(group_id=group, partition_assignment_strategy=assignor, cluster=cluster,
                auto_offset_reset="latest", session_timeout_ms=10_000)
    members = []
    for i in range(3):
        c = rayka.Consumer(**opts)
        c.subscribe([topic], listener=listeners[i])
        members.append(c)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(len(c.assignment()) == 4 for c in members):
        for c in members:
            c.poll(timeout_ms=10)
    for lst in listeners:
        lst.revoked = 0
    newcomer = rayka.Consumer(**opts)
    newcomer.subscribe([topic], listener=listeners[3])
    members.append(newcomer)
    t0 = time.perf_counter()
    while time.monotonic() < deadline + 60:
        for c in members:
            c.poll(timeout_ms=10)
        if all(len(c.assignment()) == 3 for c in members) and admin.describe_group(group).state == "Stable":
            break
    took = time.perf_counter() - t0
    revoked = sum(lst.revoked for lst in listeners)
    for c in members:
        c.close()
    admin.delete_topic(topic)
    return {"assignor": assignor, "seconds": took, "revoked": revoked}


@ray.remote(num_cpus=0)
class GroupReader:
    """A group member in its own process: joins, then reads until the topic goes quiet."""

    def join(self, cluster_name: str, topic: str, group: str) -> int:
        rayka.connect(cluster_name=cluster_name)
        self.c = rayka.Consumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
        self.c.poll(timeout_ms=200)
        return len(self.c.assignment())

    def owned(self) -> int:
        self.c.poll(timeout_ms=50)
        return len(self.c.assignment())

    def read(self, seconds: float) -> tuple:
        """Read this member's partitions from the beginning to their end; (records, seconds)."""
        parts = sorted(self.c.assignment())
        self.c.seek_to_beginning(*parts)
        ends = self.c.end_offsets(parts)
        n = 0
        t0 = time.perf_counter()
        deadline = t0 + seconds
        while time.perf_counter() < deadline and any(self.c.position(tp) < ends[tp] for tp in parts):
            n += self.c.poll_batch(timeout_ms=200).num_rows
        took = time.perf_counter() - t0
        self.c.commit()
        self.c.close()
        return n, took


def group_throughput(admin, cluster, readers: int, records: int) -> dict:
    topic = f"gt-{readers}-{uuid.uuid4().hex[:6]}"
    admin.create_topic(topic, partitions=12)
    with rayka.Producer(cluster=cluster) as p:
        p.send_table(topic, pa.table({"value": pa.array([b"x" * 100] * records, pa.binary())})).result()
    group = f"g-{topic}"
    actors = [GroupReader.remote() for _ in range(readers)]
    ray.get([a.join.remote(cluster.cluster_name, topic, group) for a in actors])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # every member owns its final share before timing starts
        if sorted(ray.get([a.owned.remote() for a in actors])) == [12 // readers] * readers:
            break
    results = ray.get([a.read.remote(60) for a in actors])
    for a in actors:
        ray.kill(a)
    total = sum(n for n, _ in results)
    span = max(t for _, t in results)
    admin.delete_topic(topic)
    return {"readers": readers, "records": total, "seconds": span, "msgs_per_s": total / span if span else 0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}")
    tmp = tempfile.mkdtemp(prefix="rayka-groups-")
    cluster = rayka.connect(data_dir=Path(tmp) / "data", cluster_name=f"gb-{uuid.uuid4().hex[:6]}", num_cpus=2,
                            runtime="process")
    admin = rayka.Admin(cluster)
    try:
        print("\nrebalance: a 4th member joins a stable group of 3 (12 partitions)")
        print(f"{'assignor':20} {'seconds':>8} {'partitions revoked':>19}")
        for assignor in ("cooperative-sticky", "range"):
            r = rebalance_time(admin, cluster, assignor)
            print(f"{r['assignor']:20} {r['seconds']:>8.2f} {r['revoked']:>19}")
        records = 200_000 if args.quick else 2_000_000
        print(f"\ngroup consume throughput, 12 partitions, {records:,} records of 100 bytes (poll_batch)")
        print(f"{'consumers':>9} {'records':>10} {'seconds':>8} {'msg/s':>12}")
        for readers in (1, 2, 4):
            r = group_throughput(admin, cluster, readers, records)
            print(f"{r['readers']:>9} {r['records']:>10,} {r['seconds']:>8.2f} {r['msgs_per_s']:>12,.0f}")
    finally:
        cluster.shutdown(delete_data=True)
        ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
