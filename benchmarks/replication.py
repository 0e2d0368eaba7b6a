"""What replication costs, and how fast it recovers: ``python -m benchmarks.replication [--quick]``.

On a 3-node ``ray.cluster_utils.Cluster`` on this machine (loopback, 1 CPU per node, no
dashboard), issue 10's benchmark:

- produce throughput and p50/p99 send latency for RF=1, RF=3 acks=1 and RF=3 acks="all"
  (min.insync.replicas=2), per-record ``send()`` and bulk ``send_table``, after a warm-up,
  plus a cold row per setting: the first send on a fresh topic and producer;
- the failover time: the median over several rounds of removing the node that holds a
  partition's leader while a producer (acks="all", idempotent) writes keyed, sequenced
  records to it at 500/s; the longest time without an acknowledgement from the removal
  until acknowledgements flow again (History.unavailable_s). Each round's records are then
  read back and checked (rayka.checker: lost, duplicated, reordered must be 0);
- the time to heal a lost replica of ``--heal-bytes`` (default 1 GB): a follower's node is
  removed for good (with a small replica.lost.timeout.ms), timed until describe_topic shows
  the ISR full again.

Then a table of the RF=3/RF=1 ratios against the issue's targets (send() >= 50%, send_table
>= 40% with acks="all"; failover <= 5 s). A setting the cluster refuses (replication not
wired yet) gives a row saying so instead of a number. Every loop is bounded in count and
time. The failover and heal rounds, and the readers of describe_topic's fields
(``_leader_node``, ``_replica_nodes``, ``_isr``), are in benchmarks/replication_faults.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # loopback only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import pyarrow as pa  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import rayka  # noqa: E402
from benchmarks.common import Row, machine, paced, percentiles  # noqa: E402
from benchmarks.replication_faults import drop_topic, measure_failover, measure_heal, new_topic, refused_row  # noqa: E402

RESULTS = Path(__file__).parent / "results"
#: (label, replication_factor, acks, topic config)
MODES = (("RF=1", 1, 1, {}), ("RF=3 acks=1", 3, 1, {}),
         ("RF=3 acks=all", 3, "all", {"min.insync.replicas": 2}))
TARGETS = {"send()": 0.50, "send_table": 0.40}  # RF=3 acks=all as a share of RF=1 (issue 10)
LATENCY_SAMPLE_EVERY = 64  # one record in this many carries a timing callback


# -- throughput and latency -------------------------------------------------------------------------

def cold_first_send(admin, label: str, rf: int, acks, config: dict) -> Row:
    """A fresh topic and producer: the first send()'s time to its acknowledgement."""
    try:
        topic = new_topic(admin, rf, config)
    except Exception as exc:  # noqa: BLE001 - the setting is refused: say so in the table
        return refused_row(label, "first send() on a fresh topic (cold)", exc)
    try:
        with rayka.Producer(acks=acks, linger_ms=0) as p:
            t0 = time.perf_counter()
            p.send(topic, value=b"x" * 100).result(timeout=60)
            ms = (time.perf_counter() - t0) * 1e3
    finally:
        drop_topic(admin, topic)
    return Row("rayka", f"first send() on a fresh topic (cold), {label}", p50_ms=ms, p99_ms=ms,
               note="one call: producer start-up, metadata, first batch")


def measure_send(admin, label: str, rf: int, acks, config: dict, total: int, warmup: int) -> Row:
    """Per-record send() of 100-byte values to one partition; latency is send -> ack."""
    try:
        topic = new_topic(admin, rf, config)
    except Exception as exc:  # noqa: BLE001
        return refused_row(label, "send()", exc)
    value = b"x" * 100
    latencies: list[float] = []
    try:
        with rayka.Producer(acks=acks, linger_ms=5, batch_size=256 * 1024) as p:
            for _ in range(warmup):
                p.send(topic, value=value)
            p.flush(timeout=120)
            t0 = time.perf_counter()
            deadline = t0 + 60
            n = 0
            while n < total and time.perf_counter() < deadline:
                for i in range(10_000):
                    fut = p.send(topic, value=value)
                    if i % LATENCY_SAMPLE_EVERY == 0:
                        sent = time.perf_counter()
                        fut.add_callback(lambda md, s=sent: latencies.append((time.perf_counter() - s) * 1e3))
                n += 10_000
            p.flush(timeout=120)
            dt = time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - e.g. NotEnoughReplicasError: report, do not stop the run
        drop_topic(admin, topic)
        return refused_row(label, "send()", exc)
    drop_topic(admin, topic)
    p50, p99, _ = percentiles(latencies)
    return Row("rayka", f"send(), {label}", n, dt, p50_ms=p50, p99_ms=p99,
               note=f"full speed, linger_ms=5: latency (1 in {LATENCY_SAMPLE_EVERY} records) is mostly queueing")


def measure_paced(admin, label: str, rf: int, acks, config: dict, rate: int, seconds: float) -> Row:
    """send() at a fixed ``rate``, every record timed from send() to its acknowledgement: the
    latency without the queueing of a full-speed run."""
    try:
        topic = new_topic(admin, rf, config)
    except Exception as exc:  # noqa: BLE001
        return refused_row(label, f"send() at {rate:,}/s", exc)
    value = b"x" * 100
    latencies: list[float] = []
    n = 0
    try:
        with rayka.Producer(acks=acks, linger_ms=0) as p:
            for burst in paced(rate, 1.0):  # warm-up at the same rate, not timed
                for _ in range(burst):
                    p.send(topic, value=value)
            p.flush(timeout=60)
            for burst in paced(rate, seconds):
                for _ in range(burst):
                    s = time.perf_counter()
                    p.send(topic, value=value).add_callback(
                        lambda md, s=s: latencies.append((time.perf_counter() - s) * 1e3))
                n += burst
            p.flush(timeout=60)
    except Exception as exc:  # noqa: BLE001
        drop_topic(admin, topic)
        return refused_row(label, f"send() at {rate:,}/s", exc)
    drop_topic(admin, topic)
    p50, p99, _ = percentiles(latencies)
    return Row("rayka", f"send() at {rate:,}/s, {label}", p50_ms=p50, p99_ms=p99,
               note=f"{len(latencies):,} of {n:,} records timed send -> ack, linger_ms=0")


def measure_send_table(admin, label: str, rf: int, acks, config: dict, total: int, calls: int) -> Row:
    """Throughput: one ``total``-row send_table (the producer pipelines its chunks); latency:
    ``calls`` sequential 10,000-row send_table calls, each timed to its acknowledgement."""
    try:
        topic = new_topic(admin, rf, config)
    except Exception as exc:  # noqa: BLE001
        return refused_row(label, "send_table", exc)
    table = pa.table({"value": pa.array([b"x" * 100] * total, pa.binary())})
    small = table.slice(0, 10_000)
    latencies = []
    try:
        with rayka.Producer(acks=acks) as p:
            p.send_table(topic, table.slice(0, min(total, 50_000))).result(timeout=120)  # warm-up
            t0 = time.perf_counter()
            p.send_table(topic, table).result(timeout=300)
            dt = time.perf_counter() - t0
            deadline = time.perf_counter() + 60
            for _ in range(calls):
                if time.perf_counter() > deadline:
                    break
                s = time.perf_counter()
                p.send_table(topic, small).result(timeout=60)
                latencies.append((time.perf_counter() - s) * 1e3)
    except Exception as exc:  # noqa: BLE001
        drop_topic(admin, topic)
        return refused_row(label, "send_table", exc)
    drop_topic(admin, topic)
    p50, p99, _ = percentiles(latencies)
    return Row("rayka", f"send_table, {label}", total, dt, p50_ms=p50, p99_ms=p99,
               note=f"latency: {len(latencies)} calls of 10,000 rows")


# -- the run --------------------------------------------------------------------------------------

def table(rows: list[Row]) -> list[list[str]]:
    """The rows as cells: workload, msg/s, MB/s, p50, p99, note."""
    def cell(v, spec):
        return "-" if v is None else format(v, spec)

    out = [["workload", "msg/s", "MB/s", "p50 ms", "p99 ms", "note"]]
    for r in rows:
        out.append([r.workload, cell(r.msgs_per_s if r.seconds else None, ",.0f"),
                    cell(r.mb_per_s if r.seconds else None, ",.1f"), cell(r.p50_ms, ",.2f"), cell(r.p99_ms, ",.2f"),
                    r.note])
    return out


def text_table(rows: list[Row]) -> str:
    cells = table(rows)
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells)


def md_table(rows: list[Row]) -> str:
    cells = table(rows)
    return "\n".join(["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
                     + ["| " + " | ".join(c) + " |" for c in cells[1:]])


def ratio_lines(rows: list[Row]) -> str:
    """RF=3 throughput as a share of RF=1's, per workload, against the targets."""
    by = {r.workload: r for r in rows}
    out = [f"{'workload':<12}{'RF=1 msg/s':>14}{'RF=3 acks=1':>14}{'ratio':>8}{'RF=3 acks=all':>16}{'ratio':>8}"
           f"{'target':>9}  verdict"]
    for work, target in TARGETS.items():
        cells = [by.get(f"{work}, {label}") for label, *_ in MODES]
        rates = [r.msgs_per_s if r is not None and r.seconds else None for r in cells]
        base = rates[0]
        ratio = [x / base if x and base else None for x in rates[1:]]

        def fmt(v, spec):
            return "-" if v is None else format(v, spec)

        verdict = "-" if ratio[1] is None else ("ok" if ratio[1] >= target else "below target")
        out.append(f"{work:<12}{fmt(base, ',.0f'):>14}{fmt(rates[1], ',.0f'):>14}{fmt(ratio[0], '.0%'):>8}"
                   f"{fmt(rates[2], ',.0f'):>16}{fmt(ratio[1], '.0%'):>8}{target:>9.0%}  {verdict}")
    return "\n".join(out)


def _size(text: str) -> int:
    units = {"k": 10**3, "m": 10**6, "g": 10**9}
    text = text.strip().lower().rstrip("b")
    return int(float(text[:-1]) * units[text[-1]]) if text and text[-1] in units else int(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, 2 failover rounds, 32 MB heal")
    parser.add_argument("--heal-bytes", type=_size, default=None, help="size of the healed replica (1G, 64M...)")
    parser.add_argument("--failovers", type=int, default=None, help="node removals to take the median of")
    parser.add_argument("--replica-lost-timeout-ms", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=None, help="write a markdown table here (default: "
                        "benchmarks/results/replication.md on a full run)")
    args = parser.parse_args(argv)
    scale = 0.1 if args.quick else 1.0
    heal_bytes = args.heal_bytes or (32 * 10**6 if args.quick else 10**9)
    rounds = args.failovers or (2 if args.quick else 5)
    out = args.out or (None if args.quick else RESULTS / "replication.md")
    print(f"machine: {machine()}", flush=True)
    # A Ray temp dir of its own: Cluster writes its address into the temp dir's
    # ray_current_cluster, which other Ray processes on this machine would otherwise read.
    ray_tmp = os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="rrepl-"))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False)
    tmp = tempfile.mkdtemp(prefix="rayka-repl-")
    rc = rayka.connect(data_dir=tmp, cluster_name=f"repl-{uuid.uuid4().hex[:6]}")
    admin = rayka.Admin(rc)
    rows: list[Row] = []

    def step(row: Row) -> None:
        print(f"  {row.workload}: " + (f"{row.msgs_per_s:,.0f} msg/s " if row.seconds else "")
              + (f"p50 {row.p50_ms:.2f} ms " if row.p50_ms is not None else "") + row.note, flush=True)
        rows.append(row)

    try:
        for label, rf, acks, config in MODES:
            step(cold_first_send(admin, label, rf, acks, config))
            step(measure_send(admin, label, rf, acks, config, int(500_000 * scale), int(50_000 * scale)))
            step(measure_send_table(admin, label, rf, acks, config, int(2_000_000 * scale), 20 if args.quick else 50))
            step(measure_paced(admin, label, rf, acks, config, 5_000, 2.0 if args.quick else 5.0))
        try:
            step(measure_failover(cluster, admin, rounds, 500, 60.0)[0])
        except Exception as exc:  # noqa: BLE001 - a round that cannot finish still leaves the table
            step(refused_row("RF=3 acks=all", "failover", exc))
        try:
            step(measure_heal(cluster, admin, heal_bytes, args.replica_lost_timeout_ms, 120 if args.quick else 900))
        except Exception as exc:  # noqa: BLE001
            step(refused_row("RF=3", "heal a lost replica", exc))
    finally:
        rc.shutdown(delete_data=True)
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(tmp, ignore_errors=True)
        if Path(ray_tmp).name.startswith("rrepl-"):
            shutil.rmtree(ray_tmp, ignore_errors=True)
    header = (f"3-node ray.cluster_utils.Cluster on one machine ({machine()}); 100-byte values; "
              "failover and heal rows: p50 = median / the time, p99 = the slowest round")
    print()
    print(header)
    print(text_table(rows))
    print()
    print(ratio_lines(rows))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# `python -m benchmarks.replication`\n\n{header}.\n\n{md_table(rows)}\n\n"
                       f"```\n{ratio_lines(rows)}\n```\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
