"""stream_topic: a job killed (SIGKILL) after it processed a micro-batch but before that one was
committed resumes at the last committed offsets, hands the same micro-batch out again under
the same id, and with write_topic as the sink the replay writes nothing twice."""

import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa

import rayka
from rayka.clients.topic_read import plan_ranges
from rayka.testing import embedded_cluster

WORKER = Path(__file__).with_name("_ray_data_stream_worker.py")
SCHEMA = pa.schema([("n", pa.int64()), ("user", pa.string())])
ROWS = 400


def _run(address, cluster, group, log, kill_at):
    return subprocess.run([sys.executable, str(WORKER), address, cluster.cluster_name, "src", "dst", group,
                           str(log), str(kill_at)], capture_output=True, text=True, timeout=180)


def test_a_killed_stream_job_resumes_at_the_committed_offsets_and_writes_no_duplicate(ray_session, tmp_path):
    with embedded_cluster(tmp_path) as cluster:
        admin = rayka.Admin(cluster)
        admin.create_topic("src", partitions=4, schema=SCHEMA)
        admin.create_topic("dst", partitions=4, schema=SCHEMA)
        with rayka.Producer(cluster=cluster) as p:
            p.send_table("src", pa.table({"n": list(range(ROWS)), "user": [f"u{i % 7}" for i in range(ROWS)]})).result()
        group, log = f"g-{uuid.uuid4().hex[:6]}", tmp_path / "processed.log"

        killed = _run(ray_session, cluster, group, log, kill_at=1)
        assert killed.returncode == -9, killed.stderr[-3000:]
        first = log.read_text().splitlines()
        assert len(first) == 2  # two micro-batches processed, the second not committed
        consumer = rayka.Consumer(group_id=group, cluster=cluster, enable_auto_commit=False)
        committed = {p: consumer.committed(rayka.TopicPartition("src", p)) for p in range(4)}
        consumer.close(autocommit=False)
        ends_of_first = {int(s.split(":")[0]): int(s.split(":")[2]) for s in first[0].split()[2:]}
        assert committed == {p: ends_of_first.get(p) for p in range(4)}

        resumed = _run(ray_session, cluster, group, log, kill_at=-1)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        lines = log.read_text().splitlines()
        replay = lines[2].split()
        assert replay[0] == first[1].split()[0] and replay[1] == "1", "the uncommitted micro-batch comes first, again"
        assert replay[2:] == first[1].split()[2:]

        seen = set()
        for line in lines:
            for span in line.split()[2:]:
                p, lo, hi = map(int, span.split(":"))
                seen.update((p, o) for o in range(lo, hi))
        ends = {r.partition: r.end for r in plan_ranges("src", cluster=cluster)}
        assert seen == {(p, o) for p, end in ends.items() for o in range(end)}  # every record, at least once
        out = rayka.read_topic("dst", cluster=cluster)
        assert sorted(out["n"].to_pylist()) == [n + 1_000_000 for n in range(ROWS)]  # each once
