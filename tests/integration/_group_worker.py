"""A consumer process for test_group_processes.py: consume as a group member, record, commit.

Usage: _group_worker.py ADDRESS CLUSTER TOPIC GROUP OUT_FILE STOP_FILE WORK_MS SESSION_MS HEARTBEAT_MS

Each processed record is appended to OUT_FILE as "partition offset value" and flushed
*before* the offsets are committed (commit-after-process: at-least-once). Each batch
"takes" WORK_MS of processing, so the test can kill a member while work is left. The
member id is kept (atomically replaced) in OUT_FILE.member, so the test can tell which
member is which process. The worker closes its consumer (leaving the group) and exits 0
once STOP_FILE exists; any error ends it with a traceback on stderr and a non-zero code.
"""

import os
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import rayka  # noqa: E402


def publish_member_id(path, member_id):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(member_id or "")
    os.replace(tmp, path)


def main(address, cluster, topic, group, out_path, stop_path, work_ms, session_ms, heartbeat_ms):
    rayka.connect(address=address, cluster_name=cluster)
    c = rayka.Consumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                       session_timeout_ms=int(session_ms), heartbeat_interval_ms=int(heartbeat_ms),
                       max_poll_records=100)
    deadline = time.monotonic() + 120
    member = None
    with open(out_path, "a") as out:
        while not os.path.exists(stop_path):
            if time.monotonic() > deadline:
                raise SystemExit("worker ran for 120 s without being told to stop")
            records = c.poll(timeout_ms=100)
            if c.member_id != member:
                member = c.member_id
                publish_member_id(f"{out_path}.member", member)
            if not records:
                continue
            time.sleep(int(work_ms) / 1000)  # the "processing" of this batch
            out.write("".join(f"{r.partition} {r.offset} {r.value.decode()}\n" for r in records))
            out.flush()
            os.fsync(out.fileno())
            c.commit()
    c.close()


if __name__ == "__main__":
    main(*sys.argv[1:])
