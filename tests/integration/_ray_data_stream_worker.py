"""A stream job for test_ray_data_stream.py: micro-batches of a topic, each written to another
topic with write_topic under the micro-batch's id, then logged; killed (SIGKILL, by itself)
after it wrote and logged its KILL_AT-th micro-batch, before that one was committed.

Usage: _ray_data_stream_worker.py ADDRESS CLUSTER SRC DST GROUP LOG KILL_AT

Each micro-batch is logged as "id replayed partition:start:end ..." after it was written. With
KILL_AT < 0 it runs until no record came for 1.5 s, then commits and exits 0.
"""

import os
import signal
import sys

import pyarrow.compute as pc
import ray.data

import rayka
import rayka.data as rd


def main(address, cluster, src, dst, group, log_path, kill_at):
    c = rayka.connect(address=address, cluster_name=cluster)
    ray.data.DataContext.get_current().enable_progress_bars = False
    kill_at = int(kill_at)
    with rd.stream_topic(src, group_id=group, max_records=100, max_wait_s=0.2, idle_timeout_s=1.5, cluster=c,
                         session_timeout_ms=2000) as stream:
        for i, batch in enumerate(stream):
            ds = batch.dataset.map_batches(
                lambda t: t.set_column(t.column_names.index("n"), "n", pc.add(t["n"], 1_000_000)),
                batch_format="pyarrow")
            rd.write_topic(ds, dst, key_column="user", cluster=c, write_id=batch.id)
            with open(log_path, "a") as log:
                spans = " ".join(f"{r.partition}:{r.start}:{r.end}" for r in batch.ranges)
                log.write(f"{batch.id} {int(batch.replayed)} {spans}\n")
            if i == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)  # written, not committed


if __name__ == "__main__":
    main(*sys.argv[1:])
