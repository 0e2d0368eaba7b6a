"""The demo application behind ``make demo`` / ``rayka demo``: topic, produce, group consume,
report. An application of the clients (it is not one), so it sits beside the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from rayka.clients.console import progress_bar

__all__ = ["run_demo"]


def run_demo(cluster, *, messages: int = 1_000_000, partitions: int = 4, topic: str = "demo",
             group_id: str = "demo-group", echo=print, reset: bool = False, progress: bool = False) -> dict:
    """Run the demo against ``cluster``; returns the numbers it printed.

    An existing ``topic`` is replaced only with ``reset`` (TopicExistsError otherwise, with
    nothing changed): it may be the user's own topic of that name. ``progress`` shows tqdm
    bars on stderr while it produces and consumes.
    """
    import rayka
    from rayka.errors import TopicExistsError, UnknownGroupError

    admin = rayka.Admin(cluster)
    where = Path(cluster.data_dir) / "topics" / topic
    if reset:
        try:
            admin.delete_group(group_id)  # first: a group still in use refuses, with nothing deleted
        except UnknownGroupError:
            pass
    if topic in admin.list_topics():
        if not reset:
            held = admin.describe_topic(topic).messages
            raise TopicExistsError(
                f"topic {topic!r} already exists ({held:,} records in {where}); `rayka demo --reset` "
                f"replaces it, `rayka topics delete {topic}` removes it"
            )
        admin.delete_topic(topic)
        echo(f"deleted the previous topic '{topic}' (--reset)")
    echo(f"rayka demo: data dir {cluster.data_dir}, Ray cluster '{cluster.cluster_name}'")
    admin.create_topic(topic, partitions=partitions)
    echo(f"created topic '{topic}' with {partitions} partitions")

    half = messages // 2
    value = b"x" * 100
    with rayka.Producer(linger_ms=5, batch_size=256 * 1024, cluster=cluster) as producer:
        bar = progress_bar(progress, total=messages, unit="rec", unit_scale=True, desc="producing", leave=False)
        t0 = time.perf_counter()
        for i in range(half):
            producer.send(topic, value=value, key=b"user-%d" % (i % 1000))
            if i % 50_000 == 49_999:
                bar.update(50_000)
        producer.flush()
        send_s = time.perf_counter() - t0
        bar.update(half - bar.n)
        table = pa.table({"value": pa.array([value] * (messages - half), pa.binary())})
        t0 = time.perf_counter()
        producer.send_table(topic, table).result()
        table_s = time.perf_counter() - t0
        bar.update(messages - half)
        bar.close()
    echo(f"produced {half:,} records with send() in {send_s:.2f}s ({half / send_s:,.0f} msg/s)")
    echo(f"produced {messages - half:,} records with send_table() in {table_s:.2f}s "
         f"({(messages - half) / table_s:,.0f} msg/s)")

    consumer = rayka.Consumer(topic, group_id=group_id, auto_offset_reset="earliest",
                              enable_auto_commit=False, cluster=cluster)
    per_partition = [0] * partitions
    seen = 0
    t0 = time.perf_counter()
    deadline = time.monotonic() + 120
    try:  # an error (or Ctrl-C) still leaves the group, so no member lingers until its session ends
        with progress_bar(progress, total=messages, unit="rec", unit_scale=True, desc="consuming",
                          leave=False) as bar:
            while seen < messages and time.monotonic() < deadline:
                batch = consumer.poll_batch(timeout_ms=1000)
                if batch.num_rows:
                    for p, n in zip(*_counts(batch)):
                        per_partition[p] += n
                    seen += batch.num_rows
                    bar.update(batch.num_rows)
        consume_s = time.perf_counter() - t0
        consumer.commit()
    finally:
        consumer.close(autocommit=False)
    echo(f"consumed {seen:,} records as group '{group_id}' in {consume_s:.2f}s "
         f"({seen / consume_s:,.0f} msg/s); per partition: {per_partition}")
    desc = admin.describe_group(group_id)
    echo(f"group '{group_id}': state {desc.state}, committed lag {desc.total_lag}")
    tdesc = admin.describe_topic(topic)
    for p in tdesc.partitions:
        echo(f"  partition {p.partition}: offsets {p.log_start_offset}..{p.log_end_offset}, "
             f"{p.size_bytes / 1e6:.1f} MB in {p.segments} segment(s)")
    ok = seen == messages and desc.total_lag == 0
    echo("demo " + ("OK: every record produced was consumed once" if ok else "INCOMPLETE"))
    size_mb = sum(p.size_bytes for p in tdesc.partitions) / 1e6
    echo(f"its data ({size_mb:.1f} MB) is in {where}; remove it with `rayka topics delete {topic}` "
         f"and `rayka groups delete {group_id}` (a new `rayka demo` needs --reset to replace it)")
    return {"send_msgs_per_s": half / send_s, "send_table_msgs_per_s": (messages - half) / table_s,
            "consume_msgs_per_s": seen / consume_s, "consumed": seen, "lag": desc.total_lag, "ok": ok}


def _counts(batch: pa.Table):
    import pyarrow.compute as pc

    vc = pc.value_counts(batch.column("partition"))
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()
