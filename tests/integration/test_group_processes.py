"""Three consumer processes in one group; one is SIGKILLed mid-way. Nothing is lost."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import rayka

from helpers import wait_for

WORKER = Path(__file__).with_name("_group_worker.py")
TOTAL = 60_000


def processed(files):
    seen = set()
    for f in files:
        if f.exists():
            for line in f.read_text().splitlines():
                parts = line.split()
                if len(parts) == 3:
                    seen.add(int(parts[2]))
    return seen


def members(admin, group):
    try:
        return admin.describe_group(group).members
    except rayka.errors.UnknownGroupError:  # nobody joined yet
        return []


@pytest.mark.slow
def test_sigkill_of_a_member_moves_its_partitions_and_nothing_is_lost(ray_session, cluster, admin, tmp_path):
    admin.create_topic("work", partitions=6)
    with rayka.Producer() as p:
        for i in range(TOTAL):
            p.send("work", value=b"%d" % i, key=b"key-%d" % (i % 1000))
    files = [tmp_path / f"worker{i}.txt" for i in range(3)]
    env = dict(os.environ)
    procs = [subprocess.Popen([sys.executable, str(WORKER), ray_session, cluster.cluster_name, "work", "gw", str(f)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for f in files]
    try:
        wait_for(lambda: len(members(admin, "gw")) == 3, timeout_s=90, interval_s=0.2,
                 what="three members")
        wait_for(lambda: len(processed(files)) >= TOTAL // 4, timeout_s=90, interval_s=0.1,
                 what="a quarter processed")
        victim = procs[0]
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        killed_at = time.monotonic()
        wait_for(lambda: len(admin.describe_group("gw").members) == 2, timeout_s=30, interval_s=0.1,
                 what="the dead member's eviction")
        assert time.monotonic() - killed_at < 2.0 + 5.0, "eviction within the session timeout (+ tick slack)"
        desc = admin.describe_group("gw")
        assert sum(len(m.assignment) for m in desc.members) == 6
        wait_for(lambda: processed(files) >= set(range(TOTAL)), timeout_s=120, interval_s=0.2,
                 what="every record processed")
        assert processed(files) == set(range(TOTAL))
        wait_for(lambda: admin.describe_group("gw").total_lag == 0, timeout_s=60, interval_s=0.2, what="lag 0")
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
