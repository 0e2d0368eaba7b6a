"""The rayka CLI, run in subprocesses: embedded across invocations (one script process per
command), and against --address (a test's commands in one child process, ``_cli_batch``)."""

import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import rayka
from _cli_batch import run_batch

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
    created, produced, consumed, listing, escape, missing = run_batch(
        [(base + ["topics", "create", "shared", "-p", "1", "-c", "retention.ms=60000"], None),
         (base + ["produce", "shared"], b"one\ntwo\nthree\n"),
         (base + ["consume", "shared", "--from-beginning", "--max", "3", "--print-offset"], None),
         (base + ["topics", "list"], None), (base + ["topics", "create", "../escape"], None),
         (base + ["produce", "missing"], b"x\n")], env)
    assert created.returncode == 0, created.stderr.decode()
    assert produced.returncode == 0, produced.stderr.decode()
    cluster = rayka.connect(cluster_name=name)
    try:
        desc = rayka.Admin(cluster).describe_topic("shared")
        assert desc.messages == 3 and desc.config["retention.ms"] == 60000
        assert consumed.stdout.decode().splitlines() == ["0:0\tone", "0:1\ttwo", "0:2\tthree"]
        assert listing.stdout.decode().split() == ["shared"]
        assert escape.returncode == 1 and b"error: topic name" in escape.stderr
        assert not (tmp_path / "escape").exists()
        assert missing.returncode == 1 and b"does not exist" in missing.stderr
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
        commands = [["consume", "gt", "--group", "cg", "--from-beginning", "--max", "10", "--timeout-ms", "20000"],
                    ["groups", "list"], ["groups", "describe", "cg"], ["groups", "reset-offsets", "cg", "--to", "earliest"],
                    ["groups", "describe", "cg"], ["groups", "delete", "cg"], ["groups", "list"],
                    ["groups", "describe", "cg"]]
        out, listing, desc, reset, reset_desc, deleted, after, gone = run_batch([(base + c, None) for c in commands],
                                                                                 env)
        assert out.returncode == 0 and len(out.stdout.splitlines()) == 10, out.stderr.decode()
        assert listing.stdout.decode().split()[0] == "cg"
        desc = desc.stdout.decode()
        assert "total lag 0" in desc and "committed" in desc
        assert reset.returncode == 0, reset.stderr.decode()
        assert "total lag 10" in reset_desc.stdout.decode()
        assert deleted.returncode == 0
        assert after.stdout.decode().strip() == ""
        assert gone.returncode == 1 and b"does not exist" in gone.stderr
    finally:
        cluster.shutdown(delete_data=True)
