"""A consumer process for test_group_processes.py: consume as a group member, record, commit.

Usage: _group_worker.py ADDRESS CLUSTER TOPIC GROUP OUT_FILE
Each processed record is appended to OUT_FILE as "partition offset value" and flushed
*before* the offsets are committed (commit-after-process: at-least-once).
"""

import os
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import rayka  # noqa: E402


def main(address, cluster, topic, group, out_path):
    rayka.connect(address=address, cluster_name=cluster)
    c = rayka.Consumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                       session_timeout_ms=2000, max_poll_records=500)
    deadline = time.monotonic() + 300
    with open(out_path, "a") as out:
        while time.monotonic() < deadline:
            records = c.poll(timeout_ms=200)
            if not records:
                continue
            out.write("".join(f"{r.partition} {r.offset} {r.value.decode()}\n" for r in records))
            out.flush()
            os.fsync(out.fileno())
            c.commit()


if __name__ == "__main__":
    main(*sys.argv[1:])
