"""Scaling on a 3-node ``ray.cluster_utils.Cluster`` on this machine: ``python -m benchmarks.scale``.

Compares 1 producer -> 1 partition with 2 producers -> 4 partitions spread over
the nodes (producers are Ray actors, so each has its own process and GIL), for
per-record ``send()`` and for bulk ``send_table``. All three "nodes" share this
machine's 2 cores, so the figures show rayka's overhead when spreading work, not
extra hardware; the README turns them into an estimate for N real machines.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import rayka  # noqa: E402
from benchmarks.common import Row, format_table  # noqa: E402


@ray.remote(num_cpus=0)
class LoadProducer:
    """Sends as fast as it can for a bounded count and time; returns (records, seconds)."""

    def run(self, cluster_name: str, topic: str, records: int, bulk: bool, partitions: list[int]) -> tuple:
        import pyarrow as pa

        rayka.connect(cluster_name=cluster_name)
        value = b"x" * 100
        with rayka.Producer(linger_ms=5, batch_size=256 * 1024) as p:
            t0 = time.perf_counter()
            deadline = t0 + 30
            sent = 0
            if bulk:
                table = pa.table({"value": pa.array([value] * 200_000, pa.binary())})
                futures = []
                while sent < records and time.perf_counter() < deadline:
                    for part in partitions:
                        futures.append(p.send_table(topic, table, partition=part))
                        sent += table.num_rows
                for f in futures:
                    f.result()
            else:
                i = 0
                while sent < records and time.perf_counter() < deadline:
                    for _ in range(10_000):
                        p.send(topic, value=value, partition=partitions[i % len(partitions)])
                        i += 1
                    sent += 10_000
                p.flush()
            return sent, time.perf_counter() - t0


def measure(cluster_name: str, admin, producers: int, partitions: int, records: int, bulk: bool) -> Row:
    topic = f"scale-{producers}-{partitions}-{int(bulk)}-{time.monotonic_ns()}"
    desc = admin.create_topic(topic, partitions=partitions)
    nodes = len({p.leader for p in desc.partitions})
    actors = [LoadProducer.options(scheduling_strategy="SPREAD").remote() for _ in range(producers)]
    share = [[p for p in range(partitions) if p % producers == i] for i in range(producers)]
    t0 = time.perf_counter()
    results = ray.get([a.run.remote(cluster_name, topic, records // producers, bulk, share[i])
                       for i, a in enumerate(actors)], timeout=300)
    wall = time.perf_counter() - t0
    for a in actors:
        ray.kill(a)
    admin.delete_topic(topic)
    sent = sum(r[0] for r in results)
    busiest = max(r[1] for r in results)
    return Row("rayka", f"{'send_table' if bulk else 'send()'}: {producers} producer(s) -> {partitions} "
               f"partition(s) on {nodes} node(s)", sent, busiest, note=f"wall {wall:.1f}s incl. start-up")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    scale = 0.2 if args.quick else 1.0
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address)
    tmp = tempfile.mkdtemp(prefix="rayka-scale-")
    rc = rayka.connect(data_dir=tmp, cluster_name="scale")
    admin = rayka.Admin(rc)
    rows = []
    try:
        for bulk, n in ((False, int(600_000 * scale)), (True, int(4_000_000 * scale))):
            rows.append(measure("scale", admin, 1, 1, n, bulk))
            rows.append(measure("scale", admin, 2, 4, n, bulk))
    finally:
        rc.shutdown(delete_data=True)
        ray.shutdown()
        cluster.shutdown()
    print(f"3-node ray.cluster_utils.Cluster on one machine with {os.cpu_count()} CPUs; 100-byte values")
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
