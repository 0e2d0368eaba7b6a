"""Three consumer processes in one group; a working one is SIGKILLed mid-way. Nothing is lost."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import rayka

from rayka.testing import wait_for

WORKER = Path(__file__).with_name("_group_worker.py")
TOTAL = 40_000
WORK_MS = 25  # per batch of at most 100 records: the three workers take several seconds in all
SESSION_MS = 2000
HEARTBEAT_MS = 500
REASSIGN_MARGIN_S = 2.5  # tick, the survivors' next poll and join, describe_group itself


def processed(files):
    seen = set()
    for f in files:
        if f.exists():
            for line in f.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3:
                    seen.add(int(parts[2]))
    return seen


def describe(admin, group):
    try:
        return admin.describe_group(group)
    except rayka.errors.UnknownGroupError:  # nobody joined yet
        return None


def member_id(out_file):
    path = Path(f"{out_file}.member")
    return path.read_text() if path.exists() else None


@pytest.mark.slow
def test_sigkill_of_a_working_member_moves_its_partitions_and_nothing_is_lost(ray_session, cluster, admin, tmp_path):
    admin.create_topic("work", partitions=6)
    with rayka.Producer() as p:
        for i in range(TOTAL):
            p.send("work", value=b"%d" % i, key=b"key-%d" % (i % 1000))
    files = [tmp_path / f"worker{i}.txt" for i in range(3)]
    errs = [tmp_path / f"worker{i}.err" for i in range(3)]
    stop = tmp_path / "stop"
    procs = []
    for out, err in zip(files, errs):
        with open(err, "w") as err_file:  # the child keeps its own copy of the descriptor
            procs.append(subprocess.Popen(
                [sys.executable, str(WORKER), ray_session, cluster.cluster_name, "work", "gw", str(out), str(stop),
                 str(WORK_MS), str(SESSION_MS), str(HEARTBEAT_MS)],
                env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=err_file))

    def stderr_of(i):
        return errs[i].read_text()[-3000:]

    try:
        def ready_to_kill():
            done = len(processed(files))
            assert done < TOTAL * 0.7, f"workers too fast: {done} of {TOTAL} processed before the group settled"
            for i, p in enumerate(procs):
                assert p.poll() is None, f"worker {i} exited early:\n{stderr_of(i)}"
            desc = describe(admin, "gw")
            return (desc is not None and desc.state == "Stable" and len(desc.members) == 3
                    and all(len(m.assignment) == 2 for m in desc.members)
                    and {m.member_id for m in desc.members} == {member_id(f) for f in files}
                    and all(f.exists() and f.stat().st_size > 0 for f in files) and desc)

        desc = wait_for(ready_to_kill, timeout_s=60, interval_s=0.05,
                        what="a Stable group of 3 working members, 2 partitions each")
        victim_id = member_id(files[0])
        victim_parts = {tp for m in desc.members if m.member_id == victim_id for tp in m.assignment}
        assert len(victim_parts) == 2
        procs[0].send_signal(signal.SIGKILL)
        procs[0].wait(10)
        killed_at = time.monotonic()
        left_at_kill = TOTAL - len(processed(files))
        assert left_at_kill > 0, "the victim must die with work left"

        def reassigned():
            d = admin.describe_group("gw")
            owned = {tp for m in d.members for tp in m.assignment}
            return d.state == "Stable" and len(d.members) == 2 and victim_parts <= owned and len(owned) == 6
        bound_s = (SESSION_MS + HEARTBEAT_MS) / 1000 + REASSIGN_MARGIN_S
        wait_for(reassigned, timeout_s=bound_s, interval_s=0.05, what="the victim's partitions to move to survivors")
        assert time.monotonic() - killed_at < bound_s

        wait_for(lambda: processed(files) >= set(range(TOTAL)), timeout_s=60, interval_s=0.2,
                 what="every record processed")
        assert processed(files) == set(range(TOTAL))
        wait_for(lambda: admin.describe_group("gw").total_lag == 0, timeout_s=30, interval_s=0.1, what="lag 0")
        stop.touch()
        for i in (1, 2):
            assert procs[i].wait(30) == 0, f"survivor {i} failed:\n{stderr_of(i)}"
    finally:
        stop.touch()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
