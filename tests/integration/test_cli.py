"""The rayka CLI, run in subprocesses: embedded across invocations, and against --address."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import rayka

RAYKA = [sys.executable, "-m", "rayka.cli"]


def run(args, env, stdin=None, timeout=120):
    return subprocess.run(RAYKA + args, input=stdin, env=env, capture_output=True, timeout=timeout)


@pytest.fixture
def embedded_env(tmp_path):
    """The embedded default: the commands share the data dir's local runtime, stopped at the end."""
    from rayka.clients import runtime

    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAYKA_ADDRESS")}
    env.update(RAYKA_DATA_DIR=str(tmp_path / "data"), RAYKA_CLUSTER="default", HOME=str(tmp_path))
    yield env
    run(["runtime", "stop"], env, timeout=60)
    runtime._kill_head(runtime.temp_dir_for(env["RAYKA_DATA_DIR"]))
    shutil.rmtree(runtime.temp_dir_for(env["RAYKA_DATA_DIR"]), ignore_errors=True)


def test_embedded_cli_keeps_topics_and_records_between_invocations(embedded_env):
    out = run(["--num-cpus", "1", "topics", "create", "cli-t", "--partitions", "2"], embedded_env)
    assert out.returncode == 0, out.stderr.decode()
    lines = b"".join(b"user-%d:event-%d\n" % (i % 3, i) for i in range(30))
    out = run(["--num-cpus", "1", "produce", "cli-t", "--key-sep", ":"], embedded_env, stdin=lines)
    assert out.returncode == 0, out.stderr.decode()
    assert b"produced 30 record(s)" in out.stderr
    out = run(["--num-cpus", "1", "consume", "cli-t", "--from-beginning", "--max", "30", "--print-key",
               "--key-sep", ":", "--timeout-ms", "20000"], embedded_env)
    assert out.returncode == 0, out.stderr.decode()
    got = sorted(out.stdout.decode().splitlines())
    assert got == sorted(l.decode() for l in lines.splitlines())
    out = run(["topics", "describe", "cli-t", "--num-cpus", "1"], embedded_env)
    assert out.returncode == 0 and b"messages 30" in out.stdout, out.stdout + out.stderr
    assert b"None" not in out.stdout and b"B " in out.stdout  # sizes in human units
    assert Path(embedded_env["RAYKA_DATA_DIR"], "topics", "cli-t").is_dir()
    assert Path(embedded_env["RAYKA_DATA_DIR"], "runtime.json").is_file()  # one runtime served them all


def test_cli_against_an_address_shares_the_cluster(ray_session, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, RAYKA_CLUSTER=name, RAYKA_DATA_DIR=str(tmp_path / "data"))
    env.pop("RAY_ADDRESS", None)
    base = ["--address", ray_session]
    assert run(base + ["topics", "create", "shared", "-p", "1", "-c", "retention.ms=60000"], env).returncode == 0
    out = run(base + ["produce", "shared"], env, stdin=b"one\ntwo\nthree\n")
    assert out.returncode == 0, out.stderr.decode()
    cluster = rayka.connect(cluster_name=name)
    try:
        desc = rayka.Admin(cluster).describe_topic("shared")
        assert desc.messages == 3 and desc.config["retention.ms"] == 60000
        out = run(base + ["consume", "shared", "--from-beginning", "--max", "3", "--print-offset"], env)
        assert out.stdout.decode().splitlines() == ["0:0\tone", "0:1\ttwo", "0:2\tthree"]
        assert run(base + ["topics", "list"], env).stdout.decode().split() == ["shared"]
        out = run(base + ["topics", "create", "../escape"], env)
        assert out.returncode == 1 and b"error: topic name" in out.stderr
        assert not (tmp_path / "escape").exists()
        out = run(base + ["produce", "missing"], env, stdin=b"x\n")
        assert out.returncode == 1 and b"does not exist" in out.stderr
        assert run(base + ["topics", "delete", "shared"], env).returncode == 0
        assert rayka.Admin(cluster).list_topics() == []
    finally:
        cluster.shutdown(delete_data=True)


def test_cli_groups_list_describe_reset_delete(ray_session, tmp_path):
    name = f"cli-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, RAYKA_CLUSTER=name, RAYKA_DATA_DIR=str(tmp_path / "data"))
    env.pop("RAY_ADDRESS", None)
    base = ["--address", ray_session]
    cluster = rayka.connect(cluster_name=name, data_dir=tmp_path / "data")
    try:
        rayka.Admin(cluster).create_topic("gt", partitions=2)
        with rayka.Producer(cluster=cluster) as p:
            for i in range(10):
                p.send("gt", value=b"%d" % i, partition=i % 2)
        out = run(base + ["consume", "gt", "--group", "cg", "--from-beginning", "--max", "10", "--timeout-ms", "20000"], env)
        assert out.returncode == 0 and len(out.stdout.splitlines()) == 10, out.stderr.decode()
        listing = run(base + ["groups", "list"], env).stdout.decode()
        assert listing.split()[0] == "cg"
        desc = run(base + ["groups", "describe", "cg"], env).stdout.decode()
        assert "total lag 0" in desc and "committed" in desc
        out = run(base + ["groups", "reset-offsets", "cg", "--to", "earliest"], env)
        assert out.returncode == 0, out.stderr.decode()
        assert "total lag 10" in run(base + ["groups", "describe", "cg"], env).stdout.decode()
        assert run(base + ["groups", "delete", "cg"], env).returncode == 0
        assert run(base + ["groups", "list"], env).stdout.decode().strip() == ""
        out = run(base + ["groups", "describe", "cg"], env)
        assert out.returncode == 1 and b"does not exist" in out.stderr
    finally:
        cluster.shutdown(delete_data=True)
