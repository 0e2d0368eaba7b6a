"""The Kafka gateway benchmark (issue 12): ``python -m benchmarks.gateway [--quick]``.

A confluent-kafka (librdkafka) producer and consumer through the gateway, 100-byte values,
one partition, against rayka's own ``send()`` / ``poll_batch`` in the same run and on the
same cluster; then end-to-end latency at 10,000 msg/s both ways (each producer in a process
of its own, the consumer in the driver). Targets: 300k msg/s produced and 500k msg/s consumed
by confluent-kafka through the gateway on the 2-core machine. Cold first calls (a new client's
first record, connection and metadata included) are rows of their own. The table is printed
and written to benchmarks/results/gateway.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402

import rayka  # noqa: E402
from benchmarks import compare  # noqa: E402
from benchmarks.common import Row, format_table, machine, markdown_table, percentiles, settle  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "gateway.md"
VALUE = b"x" * 100
_KAFKA = {"broker.address.family": "v4"}

# A confluent-kafka producer at a fixed rate, in its own process (its own GIL), stamping each
# value with time.time_ns() in its first 8 bytes (0 during the warm-up second).
_PACED = r"""
import sys, time
from confluent_kafka import Producer
bootstrap, topic, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
p = Producer({"bootstrap.servers": bootstrap, "acks": 1, "broker.address.family": "v4"})  # linger.ms 5
pad = b"x" * 92
def paced(rate, seconds):
    start, sent, total = time.perf_counter(), 0, int(rate * seconds)
    while sent < total and time.perf_counter() - start < seconds * 3:
        due = min(total, int((time.perf_counter() - start) * rate) + 1)
        if due > sent:
            yield due - sent
            sent = due
        else:
            time.sleep(0.0005)
for burst in paced(rate, 1.0):
    for _ in range(burst):
        p.produce(topic, bytes(8) + pad)
    p.poll(0)
p.flush(30)
sent = 0
for burst in paced(rate, seconds):
    for _ in range(burst):
        p.produce(topic, time.time_ns().to_bytes(8, "little") + pad)
    sent += burst
    p.poll(0)
p.flush(30)
print(sent, flush=True)
"""


def kafka_produce(bootstrap: str, topic: str, total: int) -> Row:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": 1, "batch.num.messages": 10_000,
                  "batch.size": 1_000_000, "queue.buffering.max.messages": 2_000_000, **_KAFKA})
    for _ in range(20_000):
        p.produce(topic, VALUE)
    assert p.flush(60) == 0
    t0 = time.perf_counter()
    n = 0
    while n < total and time.perf_counter() - t0 < 60:
        for _ in range(10_000):
            p.produce(topic, VALUE)
        p.poll(0)
        n += 10_000
    left = p.flush(120)
    dt = time.perf_counter() - t0
    assert left == 0, f"{left} records not delivered"
    return Row("confluent-kafka", "produce via gateway, 1 partition, acks=1", n, dt, 100)


#: librdkafka's consumer queue: with its defaults (queued.min.messages 100,000) a fetch of more
#: than that many 100-byte records parks the partition for fetch.queue.backoff.ms (1 s).
_TUNED_CONSUMER = {"queued.min.messages": 1_000_000, "max.partition.fetch.bytes": 4 * 2**20}


def kafka_consume(bootstrap: str, topic: str, total: int, tuned: bool) -> Row:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
                  **(_TUNED_CONSUMER if tuned else {}), **_KAFKA})
    c.assign([TopicPartition(topic, 0, 0)])
    t0 = time.perf_counter()
    n = 0
    while n < total and time.perf_counter() - t0 < 60:
        n += sum(1 for m in c.consume(num_messages=10_000, timeout=1.0) if m.error() is None)
    dt = time.perf_counter() - t0
    c.close()
    return Row("confluent-kafka", f"consume via gateway ({'4 MiB fetches' if tuned else 'librdkafka defaults'})",
               n, dt, 100, note="queued.min.messages=1000000, max.partition.fetch.bytes=4MiB" if tuned else "")


def kafka_cold(bootstrap: str, topic: str) -> list[Row]:
    """A new producer's first record, then a new consumer's first record (each with its
    connection and metadata)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    t0 = time.perf_counter()
    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, **_KAFKA})
    p.produce(topic, VALUE)
    assert p.flush(30) == 0
    produce_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "cold", **_KAFKA})
    c.assign([TopicPartition(topic, 0, 0)])
    while not [m for m in c.consume(num_messages=1, timeout=1.0) if m.error() is None]:
        if time.perf_counter() - t0 > 30:
            raise TimeoutError("no record within 30 s")
    consume_s = time.perf_counter() - t0
    c.close()
    return [Row("confluent-kafka", "cold: new producer's first record", 1, produce_s, 100, note="connect + metadata"),
            Row("confluent-kafka", "cold: new consumer's first record", 1, consume_s, 100, note="connect + metadata")]


def kafka_latency(bootstrap: str, topic: str, rate: int, seconds: float) -> Row:
    from confluent_kafka import Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "lat", "fetch.wait.max.ms": 100,
                  "fetch.min.bytes": 1, **_KAFKA})
    c.assign([TopicPartition(topic, 0, -1)])  # the end
    c.consume(num_messages=1, timeout=0.5)
    proc = subprocess.Popen([sys.executable, "-c", _PACED, bootstrap, topic, str(rate), str(seconds)],
                            stdout=subprocess.PIPE, text=True)
    lat, sent = [], None
    t0 = time.perf_counter()
    deadline = time.monotonic() + seconds * 3 + 30
    while time.monotonic() < deadline:
        # consume(n, timeout) waits until n records or the timeout: poll() hands out the first
        # record as soon as it is there, then consume(timeout=0) what else has arrived.
        first = c.poll(0.1)
        got = [first, *c.consume(num_messages=10_000, timeout=0)] if first is not None else []
        msgs = [m for m in got if m.error() is None]
        now = time.time_ns()
        stamps = np.array([int.from_bytes(m.value()[:8], "little") for m in msgs], dtype=np.int64)
        lat.extend(((now - stamps[stamps > 0]) / 1e6).tolist())
        if sent is None and proc.poll() is not None:
            sent = int(proc.stdout.read().strip() or 0)
        if sent is not None and len(lat) >= sent:
            break
    dt = time.perf_counter() - t0
    if proc.poll() is None:
        proc.kill()
    c.close()
    p50, p99, p999 = percentiles(lat)
    return Row("confluent-kafka", f"end-to-end at {rate:,}/s via gateway", len(lat), dt, 100, p50, p99, p999,
               note=f"producer in its own process, linger.ms=5 (librdkafka's default); {len(lat):,}/{sent or 0:,} received")


def run(quick: bool) -> list[Row]:
    import rayka.gateway

    total = 200_000 if quick else 1_000_000
    lat_s = 2.0 if quick else 5.0
    tmp = tempfile.mkdtemp(prefix="rayka-bench-gw-")
    cluster = rayka.connect(data_dir=Path(tmp) / "data", cluster_name=f"bench-{uuid.uuid4().hex[:6]}",
                            num_cpus=2, runtime="process")
    admin = rayka.Admin(cluster)
    [(_, host, port)] = rayka.gateway.start(port=0, cluster=cluster)[:1]
    bootstrap = f"{host}:{port}"
    rows: list[Row] = []

    def step(row: Row) -> None:
        rows.append(row)
        print(f"  {row.system:16} {row.workload:48} {row.msgs_per_s:>12,.0f} msg/s", flush=True)
        settle()

    def topic() -> str:
        name = f"gw-{uuid.uuid4().hex[:8]}"
        admin.create_topic(name, partitions=1)
        return name

    settle(3.0)
    try:
        cold = topic()
        for row in kafka_cold(bootstrap, cold):
            step(row)
        step(compare.rayka_send(admin, total, 1, 1))
        t = topic()
        step(kafka_produce(bootstrap, t, total))
        step(compare.rayka_poll_batch(t, total))
        step(kafka_consume(bootstrap, t, total, tuned=False))
        step(kafka_consume(bootstrap, t, total, tuned=True))
        step(compare.rayka_latency(admin, cluster, 10_000, lat_s))
        step(kafka_latency(bootstrap, topic(), 10_000, lat_s))
    finally:
        rayka.gateway.stop(cluster=cluster)
        cluster.shutdown(delete_data=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 records instead of 1,000,000; shorter latency runs")
    args = parser.parse_args(argv)
    rows = run(args.quick)
    by = {r.workload: r for r in rows}
    produce = by["produce via gateway, 1 partition, acks=1"].msgs_per_s
    consume = max(by["consume via gateway (librdkafka defaults)"].msgs_per_s,
                  by["consume via gateway (4 MiB fetches)"].msgs_per_s)
    verdict = (f"confluent-kafka via the gateway: produce {produce:,.0f} msg/s (target >= 300,000: "
               f"{'met' if produce >= 300_000 else 'NOT met'}), consume {consume:,.0f} msg/s (target >= 500,000: "
               f"{'met' if consume >= 500_000 else 'NOT met'})")
    print(format_table(rows), "\n" + verdict)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(f"# Gateway benchmark\n\n`python -m benchmarks.gateway{' --quick' if args.quick else ''}`, "
                       f"{time.strftime('%Y-%m-%d')}; machine: {machine()}\n\n{markdown_table(rows)}\n\n{verdict}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
