"""rayka side by side with its ceiling and its peers, in one run: ``python -m benchmarks.compare``.

Rows: rayka per-record ``send()`` (1 and 4 partitions, acks=1 and "all"), bulk
``send_table``, consuming by iteration and by ``poll_batch``, end-to-end latency
at fixed rates; the bare-actor ceiling and the latency floor (three bare actors in
rayka's shape); ray.util.queue single and batched; Redis
Streams (pipelined XADD, XREADGROUP+XACK, end-to-end latency). 100-byte values,
plus a 1 KiB variant. Prints one table, writes ``benchmarks/results/latest.md``
and ``latest.png``. Bounded: every loop has a count and a deadline.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pyarrow as pa  # noqa: E402
import pyarrow.compute  # noqa: E402,F401
import ray  # noqa: E402

import rayka  # noqa: E402
from benchmarks import peers  # noqa: E402
from benchmarks.common import (Row, RssSampler, format_table, gather_latencies, machine,  # noqa: E402
                               markdown_table, paced, percentiles, settle)
from benchmarks.floor import latency_floor  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def _topic(admin, partitions: int) -> str:
    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin.create_topic(name, partitions=partitions)
    return name


def rayka_send(admin, total: int, partitions: int, acks, value_bytes: int = 100, batch_size: int = 262144) -> Row:
    topic = _topic(admin, partitions)
    value = b"x" * value_bytes
    with rayka.Producer(acks=acks, linger_ms=5, batch_size=batch_size) as p:
        for _ in range(20_000):
            p.send(topic, value=value)
        p.flush()
        with RssSampler() as rss:
            t0 = time.perf_counter()
            deadline = t0 + 30
            n = 0
            while n < total and time.perf_counter() < deadline:
                for _ in range(10_000):
                    p.send(topic, value=value)
                n += 10_000
            p.flush()
            dt = time.perf_counter() - t0
    admin.delete_topic(topic)
    return rss.fill(Row("rayka", f"send(), {partitions} partition(s), acks={acks}", n, dt, value_bytes,
                        extra={"compare": "produce"}))


def rayka_send_table(admin, total: int, partitions: int, value_bytes: int = 100) -> tuple[Row, str]:
    topic = _topic(admin, partitions)
    table = pa.table({"value": pa.array([b"x" * value_bytes] * total, pa.binary())})
    with rayka.Producer() as p:
        p.send_table(topic, table.slice(0, 20_000)).result()
        with RssSampler() as rss:
            t0 = time.perf_counter()
            p.send_table(topic, table).result(timeout=120)
            dt = time.perf_counter() - t0
    return rss.fill(Row("rayka", f"send_table, {partitions} partition(s)", total, dt, value_bytes,
                        extra={"compare": "produce"})), topic


def rayka_poll_batch(topic: str, total: int, value_bytes: int = 100) -> Row:
    c = rayka.Consumer(topic, auto_offset_reset="earliest")
    with RssSampler() as rss:
        t0 = time.perf_counter()
        deadline = t0 + 60
        n = 0
        while n < total and time.perf_counter() < deadline:
            n += c.poll_batch(timeout_ms=1000, max_records=200_000).num_rows
        dt = time.perf_counter() - t0
    c.close()
    return rss.fill(Row("rayka", "consume, poll_batch", n, dt, value_bytes, extra={"compare": "consume"}))


def rayka_iterate(topic: str, total: int, value_bytes: int = 100) -> Row:
    c = rayka.Consumer(topic, auto_offset_reset="earliest", max_poll_records=10_000)
    with RssSampler() as rss:
        t0 = time.perf_counter()
        deadline = t0 + 60
        n = 0
        while n < total and time.perf_counter() < deadline:
            for _ in c.poll(timeout_ms=1000):
                n += 1
        dt = time.perf_counter() - t0
    c.close()
    return rss.fill(Row("rayka", "consume, iterating Records", n, dt, value_bytes, extra={"compare": "consume"}))


@ray.remote(num_cpus=0)
class PacedProducer:
    """Sends timestamped records at a fixed rate from its own process (its own GIL), as a
    separate service would; the driver consumes and measures send-to-receive time."""

    def run(self, cluster_name: str, namespace: str, topic: str, rate: int, seconds: float,
            value_bytes: int, linger_ms: float) -> int:

        rayka.connect(cluster_name=cluster_name, namespace=namespace)
        pad = b"x" * (value_bytes - 8)
        sent = 0
        with rayka.Producer(linger_ms=linger_ms, acks=1) as p:
            # Warm-up (timestamp 0, ignored by the consumer): connections, caches, and one second
            # at the target rate so the fresh partition process is past its first slow calls.
            for _ in range(50):
                p.send(topic, value=bytes(8) + pad).result()
            for burst in paced(rate, 1.0):
                for _ in range(burst):
                    p.send(topic, value=bytes(8) + pad)
            p.flush()
            for burst in paced(rate, seconds):
                for _ in range(burst):
                    p.send(topic, value=time.time_ns().to_bytes(8, "little") + pad)
                sent += burst
        return sent


def rayka_latency(admin, cluster, rate: int, seconds: float, value_bytes: int = 100, linger_ms: float = 0) -> Row:
    import numpy as np

    topic = _topic(admin, 1)
    c = rayka.Consumer(topic, auto_offset_reset="latest", fetch_max_wait_ms=200)
    c.poll(timeout_ms=100)  # positions resolved, first fetch in flight
    producer = PacedProducer.remote()
    ref = producer.run.remote(cluster.cluster_name, cluster.namespace, topic, rate, seconds, value_bytes, linger_ms)

    def receive():
        batch = c.poll_batch(timeout_ms=100)
        firsts = pa.compute.binary_slice(batch.column("value"), 0, 8)
        return np.frombuffer(b"".join(firsts.to_pylist()), dtype="<i8")

    lat, sent, dt = gather_latencies(receive, ref, seconds)
    c.close()
    ray.kill(producer)
    admin.delete_topic(topic)
    p50, p99, p999 = percentiles(lat)
    return Row("rayka", f"end-to-end at {rate:,}/s", len(lat), dt, value_bytes, p50, p99, p999,
               note=f"producer in its own actor, linger_ms={linger_ms}; {len(lat):,}/{sent or 0:,} received")


def chart(rows: list[Row], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tput = [r for r in rows if r.seconds and r.p50_ms is None and r.msgs_per_s > 0]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(tput) + 1.5))
    labels = [f"{r.system}: {r.workload}" + (f" ({r.value_bytes} B)" if r.value_bytes != 100 else "") for r in tput]
    colors = {"rayka": "#1f77b4", "ceiling": "#7f7f7f", "redis": "#d62728", "ray.util.queue": "#ff7f0e"}
    ax.barh(labels, [r.msgs_per_s for r in tput], color=[colors.get(r.system, "#2ca02c") for r in tput])
    ax.set_xscale("log")
    ax.set_xlabel("messages/s (log scale)")
    ax.invert_yaxis()
    ax.set_title("rayka vs ceiling and peers (same machine, same run)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(quick: bool) -> list[Row]:
    scale = 0.1 if quick else 1.0
    n_send = int(1_000_000 * scale)
    n_table = int(2_000_000 * scale)
    lat_s = 1.5 if quick else 4.0
    tmp = tempfile.mkdtemp(prefix="rayka-bench-")
    cluster = rayka.connect(data_dir=Path(tmp) / "data", cluster_name=f"bench-{uuid.uuid4().hex[:6]}",
                            num_cpus=2, runtime="process")
    admin = rayka.Admin(cluster)
    rows: list[Row] = []
    def step(row: Row) -> None:
        rows.append(row)
        print(f"  {row.system:15} {row.workload:40} {row.msgs_per_s:>12,.0f} msg/s", flush=True)
        # Write back the dirty pages this row left and warm memory up, so the next row does not
        # pay for them (the kernel throttles writers once too much is dirty, and cold memory is
        # slow here: rows ran in different states). See common.settle.
        settle()

    settle(3.0)  # the first row must not be the one that warms the machine up
    try:
        # Same batch size per call as rayka's send_table chunks (16 MiB), so the ratio is like for like.
        step(peers.ceiling(n_table, rows=128 * 1024, tmpdir=tmp))
        step(rayka_send(admin, n_send, 1, 1))
        step(rayka_send(admin, n_send, 4, 1))
        step(rayka_send(admin, n_send, 1, "all"))
        step(rayka_send(admin, n_send, 4, "all"))
        table_row, topic = rayka_send_table(admin, n_table, 1)
        step(table_row)
        step(rayka_send_table(admin, n_table, 4)[0])
        step(rayka_poll_batch(topic, n_table))
        step(rayka_iterate(topic, min(n_table, int(1_000_000 * scale))))
        admin.delete_topic(topic)
        for rate in (1_000, 10_000, 50_000):
            step(rayka_latency(admin, cluster, rate, lat_s))
        step(latency_floor(10_000, lat_s))
        kib = 1024
        step(peers.ceiling(n_table // 5, value_bytes=kib, rows=16 * 1024, tmpdir=tmp))
        step(rayka_send(admin, n_send // 5, 1, 1, value_bytes=kib))
        row, topic = rayka_send_table(admin, n_table // 5, 1, value_bytes=kib)
        step(row)
        step(rayka_poll_batch(topic, n_table // 5, value_bytes=kib))
        admin.delete_topic(topic)
        step(peers.ray_queue_single(int(20_000 * scale) or 2000))
        step(peers.ray_queue_batched(int(500_000 * scale)))
        redis = peers.RedisPeer()
        try:
            if redis.start():
                step(redis.produce(int(500_000 * scale)))
                step(redis.consume())
                step(redis.latency(10_000, lat_s))
                step(redis.produce(int(100_000 * scale), value_bytes=kib))
            else:
                rows.append(Row("redis", "(not measured)", note=redis.error or "unavailable"))
        finally:
            redis.stop()
    finally:
        cluster.shutdown(delete_data=True)
    return rows


def references(rows: list[Row]) -> tuple[dict, dict]:
    """Ceiling msg/s per value size, and Redis msg/s per (kind of work, value size)."""
    ceiling = {r.value_bytes: r.msgs_per_s for r in rows if r.system == "ceiling" and r.seconds}
    redis = {(r.extra.get("compare", ""), r.value_bytes): r.msgs_per_s
             for r in rows if r.system == "redis" and r.seconds and r.p50_ms is None}
    return ceiling, redis


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tenth of the sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print(f"machine: {machine()}", flush=True)
    rows = run(args.quick)
    ceiling, redis = references(rows)
    print()
    print(format_table(rows, ceiling, redis))
    args.out.mkdir(parents=True, exist_ok=True)
    md = (f"# rayka benchmark (`python -m benchmarks.compare{' --quick' if args.quick else ''}`)\n\n"
          f"Machine: {machine()}. Values are 100 bytes unless the workload says 1 KiB; MB/s counts value "
          f"bytes. `x ceiling`: rayka msg/s over the bare-actor ceiling measured in the same run; "
          f"`x Redis`: over Redis Streams doing the same kind of work (produce or consume).\n\n"
          + markdown_table(rows, ceiling, redis) + "\n")
    (args.out / "latest.md").write_text(md)
    try:
        chart(rows, args.out / "latest.png")
    except ImportError:
        print("matplotlib missing: no chart (pip install -e '.[bench]')")
    print(f"\nwrote {args.out / 'latest.md'} and latest.png in {time.perf_counter() - started:.0f}s")
    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
