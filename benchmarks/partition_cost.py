"""What one partition costs: ``python -m benchmarks.partition_cost [--records N]``.

Every partition is a Ray actor process, so partitions per node are bounded by memory.
This prints one row per configuration, measured with psutil on the actor's process:

- RSS: resident memory, including pages shared with other processes (libraries);
- USS: memory only this process holds (what killing it gives back);
- PSS: RSS with each shared page divided among the processes sharing it (what a
  node's memory budget should count per partition).

Rows: a bare Ray actor (the floor of any actor process); a bare actor that imports
pyarrow (the floor of anything that reads Arrow); a bare actor that imports the
partition actor's module and rayka's clients (what a partition actor loaded before
``rayka`` imported its clients lazily); a bare actor that imports only the partition
actor's module (what a partition actor loads now); and a rayka partition actor idle
after creation, after ``--records`` records of traffic
(produced, then read back), and after it has been idle for ``--idle-s`` seconds
(idle partitions release memory: unmapped segments, dropped caches, gc, malloc_trim).
Run it with ``ARROW_DEFAULT_MEMORY_POOL=system`` to see what the system allocator gives
back when idle (mimalloc, Arrow's default, keeps freed memory for reuse). The cold
creation time is that of ``create_topic`` of a one-partition topic (actor
process start included), first call and median of the next ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import psutil  # noqa: E402
import ray  # noqa: E402

MiB = 1024 * 1024


@ray.remote(num_cpus=0)
class _Bare:
    """A Ray actor that imports what it is told to, then reports its pid."""

    def __init__(self, modules: tuple[str, ...] = ()):
        import importlib

        for name in modules:
            module = importlib.import_module(name)
            if name == "rayka":  # touch the names rayka's package used to import eagerly
                for attr in ("Admin", "Consumer", "Producer"):
                    getattr(module, attr)

    def pid(self) -> int:
        return os.getpid()

    def modules(self) -> int:
        return len(sys.modules)


def memory(pid: int) -> tuple[float, ...]:
    """(RSS, USS, PSS, anonymous, file-backed, shared-memory) resident MiB of a process: the last
    three from /proc (file-backed pages are mapped segment files and libraries; shared memory is
    Ray's object store)."""
    info = psutil.Process(pid).memory_full_info()
    parts = {"RssAnon": 0.0, "RssFile": 0.0, "RssShmem": 0.0}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key = line.split(":")[0]
            if key in parts:
                parts[key] = int(line.split()[1]) / 1024
    return (info.rss / MiB, info.uss / MiB, info.pss / MiB, parts["RssAnon"], parts["RssFile"], parts["RssShmem"])


def partition_pids(cluster, topics: list[str]) -> list[int]:
    """pid of the partition actor process of each topic's partition 0 (``__ray_call__`` runs a
    function inside the actor; other sessions' partition actors on this machine are not counted)."""
    handles = [cluster.topic(t)[1][0].handle for t in topics]
    return ray.get([h.__ray_call__.remote(lambda self: os.getpid()) for h in handles])


def bare_rows(rows: list, samples: int) -> None:
    configs = [
        ("bare Ray actor", ()),
        ("bare actor + import pyarrow", ("pyarrow",)),
        ("bare actor + partition module + clients (before: eager)", ("rayka.actors.partition", "rayka")),
        ("bare actor + import rayka.actors.partition (now)", ("rayka.actors.partition",)),
    ]
    for label, modules in configs:
        got = []
        for _ in range(samples):
            actor = _Bare.remote(modules)
            pid = ray.get(actor.pid.remote())
            got.append(memory(pid) + (ray.get(actor.modules.remote()),))
            ray.kill(actor)
        rows.append((label, *_median(got)))


def _median(samples: list[tuple]) -> tuple:
    return tuple(statistics.median(col) for col in zip(*samples))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=3, help="partition actors to measure (median)")
    parser.add_argument("--idle-s", type=float, default=8.0)
    args = parser.parse_args(argv)

    ray.init(num_cpus=2, include_dashboard=False, namespace="rayka", logging_level="ERROR",
             runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k == "ARROW_DEFAULT_MEMORY_POOL"}})
    import rayka
    from rayka.actors.partition import IDLE_RELEASE_S

    rows: list[tuple] = []
    bare_rows(rows, args.partitions)

    tmp = tempfile.mkdtemp(prefix="rayka-cost-")
    name = f"cost-{uuid.uuid4().hex[:6]}"
    cluster = rayka.connect(data_dir=Path(tmp) / "data", cluster_name=name)
    admin = rayka.Admin(cluster)
    create_s = []
    for i in range(args.partitions):
        t0 = time.perf_counter()
        admin.create_topic(f"cost{i}", partitions=1)
        create_s.append(time.perf_counter() - t0)
    pids = partition_pids(cluster, [f"cost{i}" for i in range(args.partitions)])
    pool = ray.get(cluster.topic("cost0")[1][0].handle.__ray_call__.remote(
        lambda self: __import__("pyarrow").default_memory_pool().backend_name))

    def partition_row(label):
        got = [memory(pid) for pid in pids]
        rows.append((label, *_median(got), None))

    partition_row("rayka partition actor, idle after creation")
    value = b"x" * 100
    with rayka.Producer(linger_ms=5, batch_size=256 * 1024) as producer:
        for i in range(args.partitions):
            for _ in range(args.records):
                producer.send(f"cost{i}", value=value)
        producer.flush()
    for i in range(args.partitions):
        consumer = rayka.Consumer(f"cost{i}", auto_offset_reset="earliest")
        read, deadline = 0, time.monotonic() + 60
        while read < args.records and time.monotonic() < deadline:
            read += consumer.poll_batch(timeout_ms=500, max_records=100_000).num_rows
        consumer.close()
    partition_row(f"rayka partition actor, after {args.records:,} records in and out")
    time.sleep(max(args.idle_s, IDLE_RELEASE_S + 2))  # the actor's own idle timer: nothing to poll
    partition_row(f"rayka partition actor, idle {max(args.idle_s, IDLE_RELEASE_S + 2):.0f} s after traffic")
    cluster.shutdown(delete_data=True)
    ray.shutdown()

    print(f"{'configuration':<58} {'RSS MiB':>8} {'USS MiB':>8} {'PSS MiB':>8} {'anon':>7} {'file':>7} "
          f"{'shmem':>7} {'modules':>8}")
    for label, rss, uss, pss, anon, file, shmem, mods in rows:
        print(f"{label:<58} {rss:>8.1f} {uss:>8.1f} {pss:>8.1f} {anon:>7.1f} {file:>7.1f} {shmem:>7.1f} "
              f"{'' if mods is None else int(mods):>8}")
    print(f"cold create_topic (1 partition, actor start included): first {create_s[0] * 1000:.0f} ms, "
          f"median of the rest {statistics.median(create_s[1:] or create_s) * 1000:.0f} ms")
    print(f"Arrow memory pool in the partition actors: {pool} (ARROW_DEFAULT_MEMORY_POOL=system in the Ray "
          "processes' environment lets idle partitions give back freed Arrow memory too)")
    node_mem = psutil.virtual_memory().total
    pss = rows[-1][3]
    print(f"node memory {node_mem / 2**30:.1f} GiB -> about {int(node_mem / MiB / pss):,} idle partitions at "
          f"{pss:.0f} MiB PSS each (the default budget keeps to a fraction of the node's Ray memory)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
