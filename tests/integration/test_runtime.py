"""The shared local runtime: one detached loopback Ray head per data dir, in separate OS processes.

Every test runs rayka in subprocesses with a fresh HOME (so a fresh Ray token) and a
data dir of its own, or (``shared_env``: the tests that need a running runtime but not
a fresh one) the module's one; none of them touches the test session's in-process Ray.
Teardown runs ``rayka runtime stop`` and then ends whatever is left of the heads
started (found by their Ray temp dir, never by name).
"""

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import pytest

from rayka.clients import runtime
from rayka.testing import wait_for

pytestmark = pytest.mark.slow

RAYKA = [sys.executable, "-m", "rayka.cli"]
WORKER = [sys.executable, str(Path(__file__).with_name("_runtime_worker.py"))]
NOISE = ("Traceback", "WARNING", "(raylet)", "(pid=", ".cc:", "INFO", "Ray runtime started")


class Lines:
    """A subprocess's stdout lines, read by a thread so a test can wait for one with a deadline."""

    def __init__(self, proc):
        self.queue = queue.Queue()
        threading.Thread(target=lambda: [self.queue.put(l.decode().strip()) for l in proc.stdout],
                         daemon=True).start()

    def wait(self, predicate, timeout_s, what):
        deadline = time.monotonic() + timeout_s
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.queue.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}; saw {seen}")


def make_env(tmp_path, name="data"):
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAYKA_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH",
                        "RAYKA_IDLE_TIMEOUT", "RAYKA_VERBOSE")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), RAYKA_DATA_DIR=str(tmp_path / name), RAYKA_CLUSTER="default")
    return env


def cli(args, env, stdin=None, timeout=90):
    return subprocess.run(RAYKA + args, input=stdin, env=env, capture_output=True, timeout=timeout)


def at_once(commands, env, timeout=90):
    """Run ``commands`` (argument lists, each a whole command line) at the same time: their
    CompletedProcesses, in order. For checks that only read what the runtime holds."""
    procs = [subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for c in commands]
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return [subprocess.CompletedProcess(c, p.returncode, o, e) for c, p, (o, e) in zip(commands, procs, outs)]


def assert_quiet(out, max_lines=20):
    text = (out.stdout + out.stderr).decode()
    assert out.returncode == 0, text
    assert len(text.splitlines()) <= max_lines, text
    for word in NOISE:
        assert word not in text, f"{word!r} reached the terminal:\n{text}"
    return out.stdout.decode()


def _stop_all(envs):
    """Stop the runtimes of ``envs`` (at once: each stop waits on its own head), then end what is
    left of their heads (found by their Ray temp dir, never by name)."""
    stops = [subprocess.Popen(RAYKA + ["runtime", "stop"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for env in envs]
    for proc in stops:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    for env in envs:
        data_dir = env["RAYKA_DATA_DIR"]
        info = runtime.read(data_dir)
        if info is not None and info.watcher_pid:
            try:
                os.kill(info.watcher_pid, 9)
            except OSError:
                pass
        runtime._kill_head(runtime.temp_dir_for(data_dir), timeout_s=5)
        shutil.rmtree(runtime.temp_dir_for(data_dir), ignore_errors=True)


@pytest.fixture
def local_envs(tmp_path):
    """make(name) -> env for a data dir; every runtime started on them is stopped at the end."""
    made = []

    def make(name="data"):
        env = make_env(tmp_path, name)
        made.append(env)
        return env

    yield make
    _stop_all(made)


@pytest.fixture(scope="module")
def shared_env(tmp_path_factory):
    """One local runtime for the tests that need a running one but not a fresh one (each on its
    own topics and groups). A test that stops it leaves the next command to start it again.

    Its first command starts it: that start must reach the terminal without Ray's noise.
    """
    env = make_env(tmp_path_factory.mktemp("shared-runtime"))
    try:
        out = assert_quiet(cli(["topics", "create", "quiet", "-p", "1", "--num-cpus", "2"], env), max_lines=2)
        assert out.strip() == "created topic quiet with 1 partition(s)"
        assert runtime.read(env["RAYKA_DATA_DIR"]) is not None, "the first command started no runtime"
        yield env
    finally:
        _stop_all([env])


def ended(pid):
    """The process is gone, or a zombie its parent (PID 1 here) has not reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def head_pids(data_dir):
    return [p.pid for p in runtime._head_processes(runtime.temp_dir_for(data_dir))
            if p.name().startswith("gcs_server")]


def test_start_attach_status_stop_and_a_stale_file(local_envs):
    env = local_envs()
    data_dir = env["RAYKA_DATA_DIR"]
    out = cli(["runtime", "start", "--num-cpus", "2"], env)
    assert out.returncode == 0 and out.stdout.startswith(b"started: 127.0.0.1:"), out.stdout + out.stderr
    info = runtime.read(data_dir)
    assert info is not None and psutil.pid_exists(info.pid) and info.address.startswith("127.0.0.1:")
    assert json.loads(Path(data_dir, "runtime.json").read_text())["owner"]["pid"] > 0
    again = cli(["runtime", "start"], env)
    assert again.stdout.startswith(b"already running") and runtime.read(data_dir).pid == info.pid

    assert_quiet(cli(["topics", "create", "orders", "-p", "2"], env))
    # Five processes that only read (or, the fourth, fail to write) at once: a client attaches,
    # another runs its own Ray on the data dir, three ask the CLI.
    attach, own, status, st, config = at_once([
        WORKER[:1] + ["-c", "import rayka; c = rayka.connect(); print(c.runtime.pid)"],
        WORKER[:1] + ["-c", "import rayka\ntry:\n    rayka.connect(runtime='process', num_cpus=1)\n"
                      "    with rayka.Producer() as p:\n"
                      "        p.send('orders', value=b'x', partition=0).get(60)\n"
                      "except rayka.errors.RaykaError as e:\n    print(type(e).__name__, e)"],
        RAYKA + ["runtime", "status"], RAYKA + ["runtime", "status", "--json"],
        RAYKA + ["topics", "config", "orders", "--json"]], env)
    assert attach.returncode == 0 and int(attach.stdout) == info.pid, attach.stderr.decode()

    # A process that runs its own Ray on the same data dir cannot take the partitions' locks:
    # one clear line naming the holder and the fix, no restart loop.
    assert own.stdout.startswith(b"LogDirLockedError partition directory"), own.stdout + own.stderr[-3000:]
    assert b"held by pid" in own.stdout and b"rayka runtime stop" in own.stdout
    assert len(own.stdout.splitlines()) == 1 and b"Traceback" not in own.stderr, own.stderr[-3000:]

    status = assert_quiet(status)
    assert info.address in status and f"pid {info.pid}" in status
    assert "topics       1 (orders)" in status and "2 partition(s) alive" in status
    st = json.loads(assert_quiet(st, max_lines=60))
    assert (st["running"], st["pid"], st["address"], st["topics"]) == (True, info.pid, info.address, ["orders"])
    assert st["partitions_alive"] == 2 and st["clusters"] == ["default"]
    config = json.loads(assert_quiet(config, max_lines=60))
    assert config["retention.ms"] is not None and "max.message.bytes" in config

    stopped = cli(["runtime", "stop"], env)
    assert assert_quiet(stopped, max_lines=1).startswith("stopped the runtime")
    assert ended(info.pid) and head_pids(data_dir) == []
    assert not Path(data_dir, "runtime.json").exists() and not Path(info.temp_dir).exists()
    out, as_json = at_once([RAYKA + ["runtime", "status"], RAYKA + ["runtime", "status", "--json"]], env)
    assert out.returncode == 1 and b"no rayka runtime is running" in out.stdout
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["running"] is False

    # A runtime.json left by a head that died is replaced; the topics are still in the data dir.
    Path(data_dir, "runtime.json").write_text(json.dumps({**json.loads(info.to_json()), "pid": 999999}))
    listing = assert_quiet(cli(["topics", "list"], env))
    assert listing.split() == ["orders"]
    fresh = runtime.read(data_dir)
    assert fresh.pid != 999999 and psutil.pid_exists(fresh.pid) and len(head_pids(data_dir)) == 1


def test_concurrent_first_starts_make_one_head_and_two_data_dirs_two(local_envs):
    env_a, env_b = local_envs("a"), local_envs("b")
    code = "import rayka; c = rayka.connect(num_cpus=1); print(c.runtime.pid, c.runtime.port)"
    procs = [subprocess.Popen(WORKER[:1] + ["-c", code], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for e in (env_a, env_a, env_b)]
    outs = [p.communicate(timeout=90) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1].decode()[-2000:] for o in outs]
    (pid1, port1), (pid2, port2), (pid_b, port_b) = [tuple(map(int, o[0].split())) for o in outs]
    assert pid1 == pid2 and port1 == port2, "two first starts on one data dir started two heads"
    assert len(head_pids(env_a["RAYKA_DATA_DIR"])) == 1
    assert pid_b != pid1 and port_b != port1
    assert head_pids(env_b["RAYKA_DATA_DIR"]) == [pid_b]


def _end_offset(env, topic):
    out = cli(["topics", "describe", topic, "--json"], env)
    return sum(p["log_end_offset"] for p in json.loads(out.stdout)["partitions"])


def _groups(env):
    out = cli(["groups", "list"], env)
    rows = [line.split("\t") for line in out.stdout.decode().splitlines()]
    return [{"group_id": r[0], "members": int(r[2].split()[0])} for r in rows if len(r) == 3]


def test_bad_arguments_are_refused_before_anything_starts(local_envs):
    env = local_envs()
    for args in (["produce", "x", "--linger-ms", "-5"], ["produce", "x", "--linger-ms", "nan"],
                 ["produce", "x", "--partition", "-1"], ["topics", "create", "x", "--partitions", "many"], ["runtime", "start", "--idle-timeout", "soon"],
                 ["consume"], ["topics", "list", "--num-cpus", "0"], ["topics", "create", "x", "-p", "0"],
                 ["topics", "create", "x", "-c", "retention.ms=soon"], ["topics", "create", "x", "-c", "colour=red"],
                 ["groups", "reset-offsets", "g", "--to", "yesterday"]):
        out = cli(args, env, timeout=30)
        assert out.returncode == 2 and b"Error" in out.stderr, out.stderr
    assert runtime.read(env["RAYKA_DATA_DIR"]) is None and head_pids(env["RAYKA_DATA_DIR"]) == []
    # An address where nothing listens: one line at once, not minutes of Ray's retries.
    out = cli(["topics", "list", "--address", "127.0.0.1:1"], env, timeout=30)
    assert out.returncode == 1 and out.stderr.startswith(b"error: nothing answers at the Ray address 127.0.0.1:1")
    assert len(out.stderr.splitlines()) == 1 and out.stdout == b""


def test_a_head_started_by_hand_with_token_auth_is_attached_with_address(local_envs, tmp_path):
    env = local_envs()
    env.pop("RAY_AUTH_MODE", None)
    token = tmp_path / "home" / ".ray" / "auth_token"
    token.parent.mkdir(parents=True)
    token.write_text("0123456789abcdef0123456789abcdef")  # with a token, `ray start --head` turns auth on
    temp_dir = tempfile.mkdtemp(prefix="rk-hand-", dir="/tmp")  # Ray's socket paths must stay short
    port = runtime._free_ports(1)[0]
    head_env = dict(env, RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0")
    try:
        out = subprocess.run([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", f"--port={port}",
                              "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--num-cpus=1",
                              f"--temp-dir={temp_dir}"], env=head_env, capture_output=True, timeout=90)
        assert out.returncode == 0 and b"Token authentication is enabled" in out.stderr + out.stdout, out.stderr
        address = f"127.0.0.1:{port}"
        assert_quiet(cli(["topics", "create", "by-hand", "--address", address], env))
        listing = assert_quiet(cli(["--address", address, "topics", "list"], env))
        assert listing.split() == ["by-hand"]
        assert runtime.read(env["RAYKA_DATA_DIR"]) is None  # no local runtime was started beside it
    finally:
        runtime._kill_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


# The tests below share one runtime (shared_env). The last two stop it: the stop test's worker
# starts it again, the idle test leaves it stopped.


def test_producer_two_group_consumers_and_the_cli_share_one_runtime(shared_env, tmp_path):
    env = shared_env
    total = 3000
    assert_quiet(cli(["topics", "create", "orders", "-p", "4"], env))
    stop = tmp_path / "stop"
    outs = [tmp_path / "a.txt", tmp_path / "b.txt"]

    def consumer(out):
        return subprocess.Popen(WORKER + ["consume", "orders", "g", str(out), str(stop)], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def seen():
        return set().union(*(set(o.read_text().split()) if o.exists() else set() for o in outs))

    first = consumer(outs[0])
    first_lines = Lines(first)
    try:
        first_lines.wait(lambda l: l == "assigned 0,1,2,3", 60, "the first member to own every partition")
        gate = tmp_path / "gate"
        producer = subprocess.Popen(WORKER + ["produce", "orders", str(total), str(gate)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert producer.stdout.readline().strip() == b"half"
        wait_for(lambda: outs[0].exists() and outs[0].stat().st_size > 0, 60, what="the first consumer's records")
        second = consumer(outs[1])
        second_lines = Lines(second)
        for args in (["topics", "describe", "orders"], ["groups", "describe", "g"], ["topics", "list"]):
            assert_quiet(cli(args, env))
        # cooperative-sticky: the first member gives up the two partitions that move, the second gets them
        revoked = first_lines.wait(lambda l: l.startswith("revoked ") and l != "revoked ", 60, "a revocation")
        assert len(revoked.split(" ")[1].split(",")) == 2, revoked
        second_lines.wait(lambda l: l.startswith("assigned ") and l != "assigned ", 60, "the second's partitions")
        gate.touch()  # the second half goes to a group of two
        p_out, p_err = producer.communicate(timeout=90)
        assert producer.returncode == 0 and p_out.strip() == f"acked {total}".encode(), p_err.decode()[-2000:]
        wanted = {f"v-{i}" for i in range(total)}
        wait_for(lambda: seen() >= wanted, 60, what="every acknowledged record to be consumed")
        assert seen() == wanted
        assert all(o.read_text() for o in outs), "both members consumed records"
        describe = assert_quiet(cli(["groups", "describe", "g"], env))
        assert "members 2" in describe
    finally:
        stop.touch()
        for p in (first, locals().get("second")):
            if p is not None:
                try:
                    p.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
    assert first.returncode == 0


def test_cli_output_is_free_of_ray_noise_verbose_shows_it_and_signals_end_it_cleanly(shared_env):
    env = shared_env  # its first command (creating "quiet") started the runtime, quietly
    out = cli(["produce", "quiet"], env, stdin=b"a\nb\n")
    assert assert_quiet(out, max_lines=1) == "" and out.stderr.strip() == b"produced 2 record(s) to quiet"
    out = cli(["consume", "quiet", "--from-beginning", "--max", "2", "--timeout-ms", "5000",
               "--data-dir", env["RAYKA_DATA_DIR"]], env)
    assert assert_quiet(out, max_lines=3).splitlines() == ["a", "b"]
    describe = assert_quiet(cli(["topics", "describe", "quiet"], env))
    assert "None" not in describe and (" B " in describe or "KiB" in describe)
    loud = cli(["topics", "list", "--verbose"], env)
    assert loud.returncode == 0 and b"INFO" in loud.stderr, loud.stderr.decode()
    # A consume ended by SIGTERM or Ctrl-C stops the normal way: it leaves its group, commits
    # and exits 0, no traceback. (Both at once, each in its own group.)
    sigs = {15: "sig-term", 2: "sig-int"}
    procs = {sig: subprocess.Popen(RAYKA + ["consume", "quiet", "--group", group], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for sig, group in sigs.items()}

    def with_members():
        return {m["group_id"] for m in _groups(env) if m["members"]} & set(sigs.values())

    wait_for(lambda: with_members() == set(sigs.values()), 60, what="both members")
    for sig, proc in procs.items():
        proc.send_signal(sig)
    for sig, proc in procs.items():
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, (sig, err.decode())
        assert b"Traceback" not in err and err.strip().startswith(b"consumed "), (sig, err.decode())
    assert with_members() == set()
    # Any other command killed by SIGTERM or Ctrl-C (here produce, waiting on its stdin) exits
    # with 143 / 130, no traceback. (Both at once: each sends one record, then waits on stdin.)
    codes = {15: 143, 2: 130}
    procs = {sig: subprocess.Popen(RAYKA + ["produce", "quiet"], env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE) for sig in codes}
    for proc in procs.values():
        proc.stdin.write(b"c\n")
        proc.stdin.flush()
    wait_for(lambda: _end_offset(env, "quiet") >= 4, 60, what="both records produced")
    for sig, proc in procs.items():
        proc.send_signal(sig)
    for sig, proc in procs.items():
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == codes[sig], (sig, err.decode())
        assert b"Traceback" not in err and len(err.splitlines()) <= 1, (sig, err.decode())


def test_stop_under_attached_clients_fails_their_calls_with_one_clear_error_and_loses_nothing(shared_env):
    env = dict(shared_env, RAY_gcs_rpc_server_reconnect_timeout_s="3")
    assert_quiet(cli(["topics", "create", "live", "-p", "2"], env))
    proc = subprocess.Popen(WORKER + ["outlive", "live"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    lines = Lines(proc)
    try:
        lines.wait(lambda l: l == "ready", 90, "500 acknowledged records")
        info = runtime.read(env["RAYKA_DATA_DIR"])
        stopped = cli(["runtime", "stop"], env)
        assert assert_quiet(stopped, max_lines=1).startswith("stopped the runtime")
        assert ended(info.pid)
        report = json.loads(lines.wait(lambda l: l.startswith("{"), 120, "the worker's report"))
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read().decode()
    assert proc.returncode == 0, err[-3000:]
    # The call in progress failed with the one rayka error, not a retried "unavailable".
    assert report["error"] == "RuntimeStoppedError", report
    assert "rayka runtime stop" in report["message"] and "rayka.connect()" in report["message"]
    assert set(report["errbacks"]) <= {"RuntimeStoppedError", "ProducerClosedError"}, report
    # Every acknowledged value is read back once, at its acknowledged offset, from the new runtime.
    assert report["acked"] >= 500 and report["wrong"] == [], report
    assert "Failed to connect to GCS" not in err and "Traceback" not in err, err[-3000:]
    assert runtime.find(env["RAYKA_DATA_DIR"]).pid != info.pid


def test_idle_timeout_stops_the_runtime_only_when_no_client_is_attached(shared_env):
    env = shared_env
    data_dir = env["RAYKA_DATA_DIR"]
    # A client attaches first (starting the runtime if no test before left it running), then the
    # timeout is set on the running runtime.
    holder = subprocess.Popen(WORKER[:1] + ["-c", "import rayka, sys; rayka.connect(num_cpus=1); print('ready', "
                                            "flush=True); sys.stdin.readline()"],
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"ready"
    out = cli(["runtime", "start", "--idle-timeout", "1s"], env)
    assert out.returncode == 0 and b"already running" in out.stdout and b"idle timeout 1s" in out.stdout, out.stdout
    info = runtime.read(data_dir)
    assert info.idle_timeout_s == 1 and psutil.pid_exists(info.watcher_pid)
    # While the client stays attached for twice the timeout (the watcher looks every 0.25 s), the
    # runtime keeps running.
    attached_at = time.monotonic()
    wait_for(lambda: time.monotonic() - attached_at > 2, 10, what="two seconds with a client attached")
    assert runtime.find(data_dir) is not None, "the runtime stopped while a client was attached"
    holder.communicate(b"\n", timeout=30)
    # Once it is gone, the runtime stops by itself: actors closed, head ended, file removed.
    wait_for(lambda: not Path(data_dir, "runtime.json").exists(), 40, what="the idle runtime to stop")
    wait_for(lambda: ended(info.pid), 20, what="the head to exit")
    assert head_pids(data_dir) == []


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kafka_port_gives_the_runtime_a_kafka_endpoint_that_keeps_it_in_use(local_envs):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    env = local_envs()
    data_dir = env["RAYKA_DATA_DIR"]
    port = _free_port()
    out = cli(["runtime", "start", "--num-cpus", "2", "--idle-timeout", "1s", "--kafka-port", str(port)], env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Kafka gateway: bootstrap.servers=127.0.0.1:{port}".encode() in out.stdout, out.stdout
    assert_quiet(cli(["topics", "create", "kafka-in", "-p", "1"], env))
    bootstrap = f"127.0.0.1:{port}"
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    acked = [producer.send("kafka-in", value=f"v{i}".encode(), key=b"k").get(30).offset for i in range(50)]
    producer.close()
    assert acked == list(range(50))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=20000)
    consumer.assign([TopicPartition("kafka-in", 0)])
    consumer.seek_to_beginning()
    got = []
    for m in consumer:
        got.append((m.offset, m.value))
        if len(got) == 50:
            break
    consumer.close()
    assert got == [(i, f"v{i}".encode()) for i in range(50)]
    st = json.loads(assert_quiet(cli(["runtime", "status", "--json"], env), max_lines=60))
    assert st["kafka_gateways"] == 1
    # No Ray driver is attached now, only the gateway: the idle watcher (1 s) must leave it running.
    info = runtime.read(data_dir)
    idle_from = time.monotonic()
    wait_for(lambda: time.monotonic() - idle_from > 2, 10, what="twice the idle timeout with only the gateway")
    assert runtime.find(data_dir) is not None and runtime.read(data_dir).pid == info.pid
    assert assert_quiet(cli(["runtime", "stop"], env), max_lines=1).startswith("stopped the runtime")
