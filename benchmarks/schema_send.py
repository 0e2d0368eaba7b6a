"""Typed ``send()`` vs bytes ``send()``: ``python -m benchmarks.schema_send [--rows N]``.

A typed topic of five columns (str, int64, float64, bool, timestamp) takes dicts, each checked
in ``send()`` (clients/serde.check_row, its per-type fast checks); an untyped topic takes bytes of
the same size as the typed record counts (rayka.partitions.record_size). One producer, one
partition, Ray with 2 CPUs. Each run sends a first record alone (the cold first call: metadata,
actor handles, imports), a warm-up, then the measured records and a flush. Also the check alone,
in process: the fast check vs the former path that built an Arrow scalar per field. Target
(issue 13): typed >= 0.5x bytes msg/s; printed, never asserted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pyarrow as pa

from benchmarks.common import Row, format_table, machine, markdown_table

SCHEMA = pa.schema([("name", pa.string()), ("n", pa.int64()), ("score", pa.float64()), ("ok", pa.bool_()),
                    ("at", pa.timestamp("ms"))])
RESULTS = Path(__file__).parent / "results"
TARGET = 0.5


def _value(i: int) -> dict:
    return {"name": f"user-{i % 1000:04d}", "n": i, "score": i * 0.25, "ok": i % 3 == 0,
            "at": dt.datetime(2026, 1, 1) + dt.timedelta(milliseconds=i)}


def _timed_send(producer, topic: str, values: list, warm: int) -> tuple[float, float]:
    """(seconds of the first send() and its flush, seconds of the measured sends + flush)."""
    t0 = time.perf_counter()
    producer.send(topic, value=values[0]).get(timeout=60)
    cold = time.perf_counter() - t0
    for v in values[1:warm]:
        producer.send(topic, value=v)
    producer.flush()
    t0 = time.perf_counter()
    for v in values[warm:]:
        producer.send(topic, value=v)
    producer.flush()
    return cold, time.perf_counter() - t0


def run_check(rows: int = 100_000) -> list[Row]:
    """The per-record check alone, in process: check_row (fast) vs pa.scalar per field (before)."""
    from rayka.clients.serde import _checked_bits, _fields, check_row

    values = [_value(i) for i in range(rows)]
    t0 = time.perf_counter()
    for v in values:
        check_row(v, SCHEMA, "bench")
    fast = time.perf_counter() - t0
    fields = _fields(SCHEMA)[0]
    t0 = time.perf_counter()
    for v in values:
        for name, typ, _, lossy, width, _ in fields:
            _checked_bits(v[name], name, typ, lossy, width, "bench")
    slow = time.perf_counter() - t0
    return [Row("rayka", "check_row, fast per-type checks", rows, fast, note=f"{slow / fast:.1f}x the old path"),
            Row("rayka", "check_row, pa.scalar per field (before)", rows, slow)]


def run_send(rows: int = 200_000, warm: int = 20_000, cluster=None) -> list[Row]:
    """Typed send() of dicts vs bytes send() of the same record size, one partition each;
    returns the table rows (typed, bytes, and the typed/bytes ratio in the typed row's note)."""
    import rayka
    from rayka.clients.serde import check_row
    from rayka.partitions.record_size import bits_to_bytes

    own = cluster is None
    if own:
        tmp = tempfile.mkdtemp(prefix="rayka-schema-send-")
        cluster = rayka.connect(data_dir=Path(tmp) / "data", cluster_name=f"ss-{uuid.uuid4().hex[:6]}",
                                num_cpus=2, runtime="process")
    try:
        admin = rayka.Admin(cluster)
        typed_topic, bytes_topic = f"typed-{uuid.uuid4().hex[:6]}", f"bytes-{uuid.uuid4().hex[:6]}"
        admin.create_topic(typed_topic, partitions=1, schema=SCHEMA)
        admin.create_topic(bytes_topic, partitions=1)
        typed = [_value(i) for i in range(rows + warm)]
        size = bits_to_bytes(check_row(typed[0], SCHEMA, typed_topic))
        raw = [b"%0*d" % (size, i) for i in range(rows + warm)]
        with rayka.Producer(cluster=cluster) as p:
            cold_b, secs_b = _timed_send(p, bytes_topic, raw, warm)
        with rayka.Producer(cluster=cluster) as p:
            cold_t, secs_t = _timed_send(p, typed_topic, typed, warm)
        out_b = Row("rayka", "send(), bytes, 1 partition", rows, secs_b, value_bytes=size,
                    note=f"cold first call {cold_b * 1000:.0f} ms")
        out_t = Row("rayka", "send(), typed dict (5 columns), 1 partition", rows, secs_t, value_bytes=size)
        ratio = out_t.msgs_per_s / out_b.msgs_per_s
        out_t.note = (f"cold first call {cold_t * 1000:.0f} ms; {ratio:.2f}x bytes send(), target >= {TARGET}x: "
                      f"{'ok' if ratio >= TARGET else 'below target'}")
        out_t.extra["ratio"] = ratio
        return [out_t, out_b]
    finally:
        if own:
            cluster.shutdown(delete_data=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    rows = run_send(rows=args.rows, warm=max(1, args.rows // 10)) + run_check(min(args.rows, 100_000))
    print()
    print(format_table(rows))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "schema_send.md").write_text(
        f"# `python -m benchmarks.schema_send --rows {args.rows}`\n\nMachine: {machine()}.\n\n"
        + markdown_table(rows) + "\n")
    import ray

    ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
