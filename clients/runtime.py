"""The shared local runtime: one detached loopback Ray head per data dir.

With no address, ``rayka.connect()`` attaches to the runtime of its data dir, or
starts it: ``ray start --head`` on 127.0.0.1 with free ports, no dashboard, Ray's
temp dir under ``/tmp/rayka-<hash of the data dir>`` (Unix socket paths must stay
short), and token authentication (the user's Ray token, ``~/.ray/auth_token``,
generated if missing, see :mod:`rayka.clients.ray_auth`). The head outlives the
process that started it; producer scripts, consumer scripts, the CLI and notebooks
on the same data dir all attach to it, so they share one coordinator and one set
of partition actors.

Files in the data dir::

    runtime.json    {"address", "port", "pid" (the head's gcs_server), "temp_dir",
                     "owner" {"pid", "user", "host"}, "started_at", "data_dir",
                     "idle_timeout_s", "watcher_pid"}; written atomically (tmp + rename)
    runtime.lock    flock taken while a runtime is started or stopped, so two
                    processes starting at once start one head
    runtime.log     output of ``ray start`` and of the idle watcher

A runtime.json whose head is gone (its pid dead, or its port closed) is stale:
the next start replaces it. Stopping closes rayka's actors (the coordinators
close their partitions), then ends every process of the head (found by its temp
dir, never by name: other Rays on the machine are left alone).
"""

from __future__ import annotations

import dataclasses
import fcntl
import getpass
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from rayka.clients.runtime_procs import free_ports as _free_ports
from rayka.clients.runtime_procs import gcs_pid as _gcs_pid
from rayka.clients.runtime_procs import head_processes as _head_processes  # noqa: F401 - tests use it
from rayka.clients.runtime_procs import idle_drivers, parse_duration, pid_alive
from rayka.clients.runtime_procs import kill_head as _kill_head
from rayka.clients.runtime_procs import kill_pid as _kill_pid
from rayka.clients.runtime_procs import last_log_line as _tail
from rayka.config import DEFAULT_NAMESPACE
from rayka.errors import LocalRuntimeError

__all__ = ["RuntimeInfo", "attach_env", "ensure", "find", "read", "start", "stop", "status", "parse_duration"]

RUNTIME_FILE = "runtime.json"
LOCK_FILE = "runtime.lock"
LOG_FILE = "runtime.log"
START_TIMEOUT_S = 60.0
DETACH_TIMEOUT_S = 5.0  # how long a stop waits for attached processes to disconnect


@dataclass(frozen=True, kw_only=True)
class RuntimeInfo:
    """What runtime.json records about a running local runtime."""

    address: str
    port: int
    pid: int
    temp_dir: str
    owner: dict
    started_at: float
    data_dir: str
    idle_timeout_s: float | None = None
    watcher_pid: int | None = None
    #: "running"; during a stop "stopping" (clients fail calls with RuntimeStoppedError), then
    #: "closed" once rayka's actors are (clients disconnect from Ray); see runtime_attach.
    state: str = "running"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=1, sort_keys=True)


def _data_dir(data_dir: str | os.PathLike) -> Path:
    return Path(data_dir).expanduser().resolve()


def temp_dir_for(data_dir: str | os.PathLike) -> str:
    """Ray's temp dir for the runtime of ``data_dir``: short, and one per data dir."""
    digest = hashlib.sha1(str(_data_dir(data_dir)).encode()).hexdigest()[:12]
    return f"/tmp/rayka-{digest}"


def read(data_dir: str | os.PathLike) -> RuntimeInfo | None:
    """The recorded runtime (alive or not), or None if there is no readable runtime.json."""
    try:
        raw = json.loads((_data_dir(data_dir) / RUNTIME_FILE).read_text())
        return RuntimeInfo(**raw)
    except (OSError, ValueError, TypeError):
        return None


def alive(info: RuntimeInfo) -> bool:
    """The head's GCS process exists and its port accepts connections."""
    if not pid_alive(info.pid):
        return False
    try:
        with socket.create_connection(("127.0.0.1", info.port), timeout=1.0):
            return True
    except OSError:
        return False


def find(data_dir: str | os.PathLike) -> RuntimeInfo | None:
    """The running runtime of ``data_dir``, or None (no runtime.json, a stale one, or one being
    stopped: a connect then waits for the stop to finish and starts a new one)."""
    info = read(data_dir)
    return info if info is not None and info.state == "running" and alive(info) else None


@contextmanager
def _locked(data_dir: Path, *, shared: bool = False) -> Iterator[None]:
    """Exclusive for a start or a stop; shared while a process attaches (see attaching())."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)  # waits out a start or a stop
        yield
    finally:
        os.close(fd)


def _write(data_dir: Path, info: RuntimeInfo) -> None:
    tmp = data_dir / f".{RUNTIME_FILE}.{os.getpid()}.tmp"
    tmp.write_text(info.to_json())
    os.replace(tmp, data_dir / RUNTIME_FILE)


def head_env(base: dict | None = None) -> dict:
    """Environment for the head and every process that attaches to it."""
    from rayka.clients.ray_auth import prepare_token

    env = dict(os.environ if base is None else base)
    env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # keep every socket on 127.0.0.1
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    env.update(prepare_token(create=True))
    return env


def attach_env() -> None:
    """Prepare this process (before ``ray.init``) to attach to a local runtime."""
    from rayka.clients.ray_auth import use_token

    keep_loopback()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    use_token(create=True)


def keep_loopback() -> None:
    """Make Ray in this process keep 127.0.0.1 addresses as they are.

    Without ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, ``ray.init(address="127.0.0.1:p")``
    swaps 127.0.0.1 for the machine's routable address, where a loopback head does not
    listen (and the driver retries for minutes). Ray reads the variable when it is
    imported, so the constant it was read into is set as well.
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    return host in ("127.0.0.1", "localhost", "::1")


def ensure(data_dir: str | os.PathLike, *, num_cpus: int | None = None,
           idle_timeout_s: float | None = None) -> tuple[RuntimeInfo, bool]:
    """The running runtime of ``data_dir``, started if there is none: (info, started_now)."""
    data_dir = _data_dir(data_dir)
    info = find(data_dir)
    if info is not None:
        return info, False
    with _locked(data_dir):
        info = find(data_dir)  # another process may have started it while we waited
        if info is not None:
            return info, False
        return _start_locked(data_dir, num_cpus=num_cpus, idle_timeout_s=idle_timeout_s), True


@contextmanager
def attaching(data_dir: str | os.PathLike, *, num_cpus: int | None = None,
              idle_timeout_s: float | None = None) -> Iterator[RuntimeInfo]:
    """The running runtime of ``data_dir`` (started if there is none), kept from being stopped
    until the block ends: the caller attaches to it inside (``ray.init``). A stop (or the idle
    watcher) waits for the block, so it never begins half-way through an attachment, where
    ``ray.init`` would wait without bound for a head that is going."""
    data_dir = _data_dir(data_dir)
    for _attempt in range(3):  # a stop can come between the start and our shared lock
        with _locked(data_dir, shared=True):
            info = find(data_dir)
            if info is not None:
                yield info
                return
        ensure(data_dir, num_cpus=num_cpus, idle_timeout_s=idle_timeout_s)
    raise LocalRuntimeError(f"the local runtime of {data_dir} was stopped each time it started; "
                            f"see {data_dir / LOG_FILE}")


def start(data_dir: str | os.PathLike, *, num_cpus: int | None = None,
          idle_timeout_s: float | None = None) -> tuple[RuntimeInfo, bool]:
    """Start the runtime (or keep the running one, setting its idle timeout if given)."""
    data_dir = _data_dir(data_dir)
    with _locked(data_dir):
        info = find(data_dir)
        if info is None:
            return _start_locked(data_dir, num_cpus=num_cpus, idle_timeout_s=idle_timeout_s), True
        if idle_timeout_s is not None and idle_timeout_s != info.idle_timeout_s:
            _kill_pid(info.watcher_pid)
            info = dataclasses.replace(info, idle_timeout_s=idle_timeout_s,
                                       watcher_pid=_spawn_watcher(data_dir, idle_timeout_s))
            _write(data_dir, info)
        return info, False


def _start_locked(data_dir: Path, *, num_cpus: int | None, idle_timeout_s: float | None) -> RuntimeInfo:
    stale = read(data_dir)
    temp_dir = temp_dir_for(data_dir)
    if stale is not None and stale.temp_dir != temp_dir:
        _kill_head(stale.temp_dir)  # leftovers of a head whose GCS died
    # Leftovers in our own temp dir too, with or without a runtime.json: a start interrupted
    # (Ctrl-C) before it wrote the file leaves a head nobody records. We hold the lock and no
    # live runtime is recorded, so whatever runs there is an orphan.
    _kill_head(temp_dir)
    try:
        return _start_head(data_dir, temp_dir, num_cpus=num_cpus, idle_timeout_s=idle_timeout_s)
    except BaseException:  # interrupted or failed: leave no head behind
        _kill_head(temp_dir)
        raise


def _start_head(data_dir: Path, temp_dir: str, *, num_cpus: int | None, idle_timeout_s: float | None) -> RuntimeInfo:
    env = head_env()
    log_path = data_dir / LOG_FILE
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        port, agent, agent_grpc, env_agent, metrics = _free_ports(5)
        cmd = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--disable-usage-stats",
               f"--port={port}", "--node-ip-address=127.0.0.1", "--include-dashboard=false",
               f"--temp-dir={temp_dir}", f"--dashboard-agent-listen-port={agent}",
               f"--dashboard-agent-grpc-port={agent_grpc}", f"--runtime-env-agent-port={env_agent}",
               f"--metrics-export-port={metrics}"]
        if num_cpus is not None:
            cmd.append(f"--num-cpus={num_cpus}")
        with open(log_path, "ab") as log:
            log.write(f"\n--- {time.ctime()}: {' '.join(cmd)}\n".encode())
            log.flush()
            try:
                done = subprocess.run(cmd, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                      timeout=START_TIMEOUT_S, start_new_session=True)
            except subprocess.TimeoutExpired:
                _kill_head(temp_dir)
                raise LocalRuntimeError(f"the local Ray head did not start within {START_TIMEOUT_S:.0f} s; "
                                        f"see {log_path}") from None
        pid = _gcs_pid(temp_dir, port)
        if done.returncode == 0 and pid is not None:
            break
        last_error = _tail(log_path)
        _kill_head(temp_dir)
    else:
        raise LocalRuntimeError(f"could not start the local Ray head for {data_dir} ({last_error}); "
                                f"see {log_path}")
    info = RuntimeInfo(address=f"127.0.0.1:{port}", port=port, pid=pid, temp_dir=temp_dir,
                       owner={"pid": os.getpid(), "user": getpass.getuser(), "host": socket.gethostname()},
                       started_at=time.time(), data_dir=str(data_dir), idle_timeout_s=idle_timeout_s)
    if idle_timeout_s is not None:
        info = dataclasses.replace(info, watcher_pid=_spawn_watcher(data_dir, idle_timeout_s))
    _write(data_dir, info)
    return info


def _spawn_watcher(data_dir: Path, idle_timeout_s: float) -> int:
    with open(data_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rayka.clients.runtime_watcher", str(data_dir), str(idle_timeout_s)],
            env=head_env(), stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    return proc.pid


def _close_rayka_actors(info: RuntimeInfo, timeout_s: float) -> int:
    """Attach, ask every rayka coordinator on the head to close its partitions; how many."""
    import ray

    from rayka.actors import _ray
    from rayka.clients.ray_quiet import quiet_ray_init_kwargs, quiet_stderr as _quiet_stderr
    from rayka.clients.stubs import CoordinatorClient

    attach_env()
    with _quiet_stderr():
        ray.init(address=info.address, namespace=DEFAULT_NAMESPACE, **quiet_ray_init_kwargs())
    try:
        names = [a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                 if a["namespace"] == DEFAULT_NAMESPACE and a["name"].endswith(":coordinator")]
        calls = []
        for name in names:
            handle = _ray.get_actor(name, DEFAULT_NAMESPACE)
            if handle is not None:
                calls.append((handle, CoordinatorClient(handle).start_shutdown(False)))
        for handle, call in calls:
            try:
                call.result(timeout_s)
            except Exception:  # dead or stuck: the head goes anyway, and the files keep what was written
                pass
            _ray.kill(handle)
        return len(names)
    finally:
        ray.shutdown()


def stop(data_dir: str | os.PathLike, *, timeout_s: float = 20.0, if_idle: bool = False) -> RuntimeInfo | None:
    """Stop the runtime of ``data_dir``: rayka's actors first, then the head. The stopped one, or None.

    ``if_idle`` (the idle watcher): only if no process is attached, checked under the lock that
    attaching processes hold until they are attached.
    """
    data_dir = _data_dir(data_dir)
    with _locked(data_dir):
        info = read(data_dir)
        if info is None:
            return None
        if if_idle and alive(info) and idle_drivers(info.address) > 0:
            return None
        _kill_pid(info.watcher_pid if info.watcher_pid != os.getpid() else None)
        if alive(info):
            _write(data_dir, dataclasses.replace(info, state="stopping"))
            try:
                _close_rayka_actors(info, timeout_s)
            except Exception:  # cannot attach: the processes are ended below all the same
                pass
            _write(data_dir, dataclasses.replace(info, state="closed"))
            _wait_detached(info, DETACH_TIMEOUT_S)
        _kill_head(info.temp_dir)
        (data_dir / RUNTIME_FILE).unlink(missing_ok=True)
        if info.temp_dir == temp_dir_for(data_dir):  # Ray's session logs and sockets of this head only
            shutil.rmtree(info.temp_dir, ignore_errors=True)
        return info


def _wait_detached(info: RuntimeInfo, timeout_s: float) -> None:
    """Give attached processes a moment to disconnect (each watches runtime.json) while the head
    still answers, so Ray does not end them for a lost head."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if idle_drivers(info.address) == 0:
                return
        except Exception:  # noqa: BLE001 - the head is going: nothing to wait for
            return
        time.sleep(0.1)


def status(data_dir: str | os.PathLike) -> dict | None:
    """What ``rayka runtime status`` prints, or None when no runtime is running."""
    info = find(data_dir)
    if info is None:
        return None
    from ray._private.internal_api import get_state_from_address

    attach_env()
    state = get_state_from_address(info.address)
    actors = [a for a in state.actor_table(None).values() if a.get("State") == "ALIVE"]
    rayka_actors = [a for a in actors if (a.get("Name") or "").startswith("rayka:")]
    drivers = [j for j in state.job_table() if not j["IsDead"]]
    return {
        "info": info,
        "uptime_s": time.time() - info.started_at,
        "actors_alive": len(actors),
        "partitions_alive": sum(1 for a in rayka_actors if ":p:" in a["Name"]),
        "coordinators": sorted(a["Name"].split(":")[1] for a in rayka_actors
                               if a["Name"].endswith(":coordinator")),
        "drivers": len(drivers),
        "gateways": sum(1 for a in rayka_actors if ":gateway:" in a["Name"]),
    }
