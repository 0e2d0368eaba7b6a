"""The CLI's formats, tail, --json listings and demo --reset, run in subprocesses.

All tests share one rayka cluster on the session's Ray (``--address``) and use their own topics.
A test's commands run in one child process where nothing in between needs them done
(``_cli_batch``: one Python start-up and one Ray connection for all of them); tail runs as the
script itself.
"""

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import rayka
from _cli_batch import run_batch

RAYKA = [sys.executable, "-m", "rayka.cli"]
TYPED = pa.schema([("sym", pa.string()), ("px", pa.float64()), ("qty", pa.int64())])


@pytest.fixture(scope="module")
def shared(ray_session, tmp_path_factory):
    name = f"cf-{uuid.uuid4().hex[:8]}"
    data = tmp_path_factory.mktemp("cli-formats") / "data"
    env = dict(os.environ, RAYKA_CLUSTER=name, RAYKA_DATA_DIR=str(data))
    env.pop("RAY_ADDRESS", None)
    cluster = rayka.connect(cluster_name=name, data_dir=data)
    yield cluster, env, ["--address", ray_session]
    cluster.shutdown(delete_data=True)


def ok(out):
    assert out.returncode == 0, (out.stdout + out.stderr).decode()
    return out


def batch(shared, commands):
    """[(args, stdin)] run one after the other in one child process: their CompletedProcesses."""
    _, env, base = shared
    return run_batch([(base + args, stdin) for args, stdin in commands], env)


def consume_json_args(topic, n):
    return ["consume", topic, "--from-beginning", "--max", str(n), "--format", "json", "--timeout-ms", "20000"]


def json_lines(out):
    return [json.loads(line) for line in ok(out).stdout.decode().splitlines()]


def new_topic(shared, partitions=1, schema=None):
    cluster, _, _ = shared
    name = f"t-{uuid.uuid4().hex[:8]}"
    rayka.Admin(cluster).create_topic(name, partitions=partitions, schema=schema)
    return name


def test_typed_topic_takes_jsonl_csv_and_parquet_files_by_column_name(shared, tmp_path):
    topic = new_topic(shared, partitions=2, schema=TYPED)
    rows = [{"sym": f"S{i}", "px": i + 0.5, "qty": i} for i in range(30)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:10]))
    # CSV columns in another order, one cell empty (null), and a key column.
    (tmp_path / "b.csv").write_text("qty,key,sym,px\n" + "".join(
        f"{r['qty']},k{r['qty']},{r['sym']},{'' if r['qty'] == 15 else r['px']}\n" for r in rows[10:20]))
    pq.write_table(pa.Table.from_pylist(rows[20:], schema=TYPED), tmp_path / "c.parquet")
    *produced, consumed = batch(shared, [(["produce", topic, "--file", str(tmp_path / name)], None)
                                         for name in ("a.jsonl", "b.csv", "c.parquet")]
                                + [(consume_json_args(topic, 30), None)])
    for out in produced:
        assert b"produced 10 record(s)" in ok(out).stderr
    got = json_lines(consumed)
    values = sorted((r["value"] for r in got), key=lambda v: v["qty"])
    expected = [dict(r, px=None) if r["qty"] == 15 else r for r in rows]
    assert values == expected
    keys = {r["value"]["qty"]: r["key"] for r in got}
    assert keys[12] == "k12" and keys[3] is None


def test_a_file_with_a_bad_line_sends_nothing_and_names_the_line(shared, tmp_path):
    topic = new_topic(shared, schema=TYPED)
    lines = [json.dumps({"sym": "A", "px": 1.0, "qty": 1})] * 4 + ['{"sym": "B", "px": "cheap", "qty": 2}']
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    (tmp_path / "extra.csv").write_text("sym,price\nA,1\n")
    out, extra = batch(shared, [(["produce", topic, "--file", str(tmp_path / "bad.jsonl")], None),
                                (["produce", topic, "--file", str(tmp_path / "extra.csv")], None)])
    assert out.returncode == 1
    assert b"bad.jsonl line 5" in out.stderr and b"'px'" in out.stderr and b"Traceback" not in out.stderr
    assert extra.returncode == 1 and b"['price']" in extra.stderr
    assert rayka.Admin(shared[0]).describe_topic(topic).messages == 0


def test_untyped_json_and_csv_from_stdin_round_trip_through_consume_json(shared):
    topic = new_topic(shared, partitions=2)
    binary = bytes(range(250, 256))
    import base64
    lines = [
        {"key": "u1", "value": "hello", "headers": {"src": "web"}, "timestamp_ms": 1_700_000_000_000},
        {"value": {"nested": [1, 2]}},
        {"key": "u2", "value": base64.b64encode(binary).decode(), "base64": ["value"]},
    ]
    stdin = "".join(json.dumps(line) + "\n" for line in lines).encode()
    *produced, consumed = batch(shared, [(["produce", topic, "--format", "json"], stdin),
                                         (["produce", topic, "--format", "csv"], b"key,value\nu3,from csv\n,\n"),
                                         (consume_json_args(topic, 5), None)])
    for out in produced:
        ok(out)
    got = json_lines(consumed)
    by_value = {r["value"]: r for r in got}
    assert by_value["hello"]["key"] == "u1" and by_value["hello"]["headers"] == {"src": "web"}
    assert by_value["hello"]["timestamp_ms"] == 1_700_000_000_000
    assert '{"nested":[1,2]}' in by_value
    assert by_value[base64.b64encode(binary).decode()]["base64"] == ["value"]
    assert by_value["from csv"]["key"] == "u3"
    assert by_value[None]["key"] is None  # the empty CSV row: null key and value
    # What consume --format json printed can be produced again, byte for byte.
    copy = new_topic(shared)
    dump = "".join(json.dumps(r) + "\n" for r in got).encode()
    produced, consumed = batch(shared, [(["produce", copy, "--format", "json"], dump), (consume_json_args(copy, 5), None)])
    ok(produced)
    again = json_lines(consumed)
    strip = lambda r: (r["key"], r["value"], r["headers"], r["timestamp_ms"], r.get("base64"))  # noqa: E731
    assert sorted(map(strip, again), key=str) == sorted(map(strip, got), key=str)


def test_consume_raw_and_table_formats_of_a_typed_topic(shared):
    topic = new_topic(shared, schema=TYPED)
    produced, raw, table, plain = batch(shared, [
        (["produce", topic, "--format", "json"], b'{"key": "k", "sym": "ABC", "px": 2.5, "qty": 7}\n{"sym": "D", "qty": 8}\n'),
        (["consume", topic, "--from-beginning", "--max", "2", "--print-key", "--timeout-ms", "20000"], None),
        (["consume", topic, "--from-beginning", "--max", "2", "--format", "table", "--timeout-ms", "20000"], None),
        (["produce", topic], b"plain line\n")])
    ok(produced)
    raw = ok(raw).stdout.decode().splitlines()
    assert [json.loads(line.split("\t", 1)[1]) for line in raw] == [
        {"sym": "ABC", "px": 2.5, "qty": 7}, {"sym": "D", "px": None, "qty": 8}]
    assert raw[0].startswith("k\t")
    table = ok(table).stdout.decode().splitlines()
    assert table[0].split() == ["partition", "offset", "timestamp", "key", "sym", "px", "qty"]
    assert table[1].split()[0:2] == ["0", "0"] and table[1].split()[-3:] == ["ABC", "2.5", "7"]
    assert table[2].split()[-3:] == ["D", "-", "8"]
    assert plain.returncode == 1 and b"is typed" in plain.stderr


def test_listing_commands_print_json(shared):
    topic = new_topic(shared, partitions=2, schema=TYPED)
    outs = batch(shared, [(["produce", topic, "--format", "json"], b'{"sym": "A", "qty": 1}\n'),
                          (["consume", topic, "--group", "jg", "--from-beginning", "--max", "1", "--timeout-ms",
                            "20000"], None),
                          (["topics", "list", "--json"], None), (["topics", "describe", topic, "--json"], None),
                          (["groups", "list", "--json"], None), (["groups", "describe", "jg", "--json"], None)])
    _, _, listing, desc, groups, group = [ok(out).stdout for out in outs]
    assert topic in json.loads(listing)
    desc = json.loads(desc)
    assert desc["name"] == topic and desc["messages"] == 1 and len(desc["partitions"]) == 2
    assert [f["name"] for f in desc["value_schema"]] == ["sym", "px", "qty"]
    assert "jg" in [g["group_id"] for g in json.loads(groups)]
    group = json.loads(group)
    assert group["group_id"] == "jg" and group["total_lag"] == 0
    assert {(p["topic"], p["partition"]) for p in group["partitions"]} == {(topic, 0), (topic, 1)}


def test_produce_from_a_file_shows_progress_only_when_asked_or_on_a_terminal(shared, tmp_path):
    topic = new_topic(shared)
    (tmp_path / "v.jsonl").write_text("".join(json.dumps({"value": f"v{i}"}) + "\n" for i in range(500)))
    quiet, loud = batch(shared, [(["produce", topic, "--file", str(tmp_path / "v.jsonl")], None),  # not a terminal
                                 (["produce", topic, "--file", str(tmp_path / "v.jsonl"), "--progress"], None)])
    assert b"%|" not in ok(quiet).stderr and b"sending to" not in quiet.stderr
    ok(loud)
    assert b"sending to " + topic.encode() in loud.stderr and b"500/500" in loud.stderr
    assert rayka.Admin(shared[0]).describe_topic(topic).messages == 1000


class _Lines:
    """Lines of a pipe, read by a thread, taken with a deadline."""

    def __init__(self, pipe):
        self.q: queue.Queue = queue.Queue()
        self.all: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe):
        for line in iter(pipe.readline, b""):
            self.q.put(line.decode().rstrip("\n"))

    def take(self, n, timeout_s=30.0, until=None):
        deadline = time.monotonic() + timeout_s
        got = []
        while len(got) < n:
            try:
                line = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"timed out waiting for {n} line(s); got {got} (before: {self.all})") from None
            self.all.append(line)
            if until is None or until(line):
                got.append(line)
        return got

    def rest(self, timeout_s=10.0) -> list[str]:
        """Every line, once the pipe has closed (the process exited)."""
        self.thread.join(timeout_s)
        while not self.q.empty():
            self.all.append(self.q.get())
        return self.all


def test_tail_prints_only_new_records_of_every_partition_until_terminated(shared):
    cluster, env, base = shared
    topic = new_topic(shared, partitions=3)
    with rayka.Producer(cluster=cluster) as p:
        for i in range(3):
            p.send(topic, value=b"old-%d" % i, partition=i)
    proc = subprocess.Popen(RAYKA + base + ["tail", topic], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = _Lines(proc.stdout), _Lines(proc.stderr)
        err.take(1, timeout_s=60, until=lambda line: line.startswith(f"tailing {topic} (3 partition(s))"))
        with rayka.Producer(cluster=cluster) as p:
            for i in range(6):
                p.send(topic, value=b"new-%d" % i, partition=i % 3)
        assert sorted(out.take(6)) == [f"new-{i}" for i in range(6)]
        proc.terminate()
        assert proc.wait(timeout=30) == 0
        err_text = "\n".join(err.rest())
        assert "Traceback" not in err_text and "tail: 6 record(s)" in err_text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_tail_with_a_group_stops_at_max_and_commits_what_it_printed(shared):
    cluster, env, base = shared
    topic = new_topic(shared, partitions=2)
    proc = subprocess.Popen(RAYKA + base + ["tail", topic, "--group", "tg", "--max", "4", "--format", "json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        err = _Lines(proc.stderr)
        err.take(1, timeout_s=60, until=lambda line: line.startswith(f"tailing {topic}"))
        with rayka.Producer(cluster=cluster) as p:
            for i in range(4):
                p.send(topic, value=b"g-%d" % i, partition=i % 2)
        assert proc.wait(timeout=60) == 0
        printed = [json.loads(line) for line in proc.stdout.read().decode().splitlines()]
        assert sorted(r["value"] for r in printed) == ["g-0", "g-1", "g-2", "g-3"]
        assert rayka.Admin(cluster).describe_group("tg").total_lag == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_demo_refuses_to_replace_an_existing_demo_topic_without_reset(shared):
    cluster, _, _ = shared
    args = ["demo", "--messages", "2000", "--partitions", "2"]
    first, again, between, reset = batch(shared, [(args, None), (args, None),
                                                  (["topics", "describe", "demo", "--json"], None),
                                                  (args + ["--reset"], None)])
    assert b"demo OK" in ok(first).stdout and b"rayka topics delete demo" in first.stdout
    assert again.returncode == 1
    assert b"already exists" in again.stderr and b"--reset" in again.stderr
    assert json.loads(ok(between).stdout)["messages"] == 2000  # untouched
    ok(reset)
    assert b"demo OK" in reset.stdout
    assert rayka.Admin(cluster).describe_topic("demo").messages == 2000
    rayka.Admin(cluster).delete_topic("demo")
