"""The shared local runtime's head as processes and a GCS: free ports, finding and ending its
processes (by their Ray temp dir, never by name), and asking the GCS who is attached.

Split from :mod:`rayka.clients.runtime` (which starts, finds and stops runtimes) so that the
process-level details sit together; runtime re-exports what its callers and tests use.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

__all__ = ["pid_alive", "free_ports", "head_processes", "gcs_pid", "kill_head", "kill_pid", "last_log_line",
           "idle_drivers", "parse_duration"]


def pid_alive(pid: int) -> bool:
    """The process exists (a zombie counts; one owned by another user too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def head_processes(temp_dir: str) -> list:
    """Every process of the head whose Ray temp dir is ``temp_dir`` (and their children)."""
    import psutil

    marks = (f"={temp_dir}/", f"={temp_dir}")
    me = os.getpid()
    found: dict[int, object] = {}
    for proc in psutil.process_iter(["cmdline"]):
        if proc.pid == me:
            continue
        args = proc.info.get("cmdline") or []
        if any(a.startswith("--") and (a.endswith(marks[1]) or marks[0] in a) for a in args):
            found[proc.pid] = proc
            try:
                for child in proc.children(recursive=True):
                    if child.pid != me:
                        found[child.pid] = child
            except psutil.Error:
                pass
    return list(found.values())


def gcs_pid(temp_dir: str, port: int) -> int | None:
    for proc in head_processes(temp_dir):
        try:
            if proc.name().startswith("gcs_server"):
                return proc.pid
        except Exception:
            continue
    return None


def kill_head(temp_dir: str, timeout_s: float = 1.0) -> int:
    """End every process of the head (SIGTERM, then SIGKILL); the number ended.

    SIGKILL after ``timeout_s``: by then rayka's actors are closed (their files synced), and
    some of Ray's processes take seconds over a SIGTERM."""
    import psutil

    procs = head_processes(temp_dir)
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    left = _wait_ended(procs, timeout_s)
    for proc in left:
        try:
            proc.kill()
        except psutil.Error:
            pass
    _wait_ended(left, timeout_s)
    return len(procs)


def _wait_ended(procs: list, timeout_s: float) -> list:
    """Wait until every process in ``procs`` has exited (or ``timeout_s`` passed); the ones still
    running. A zombie has exited: the head's processes are orphans, and the init process of a
    container may reap them late or never (psutil.wait_procs would wait out its timeout on them)."""
    import psutil

    def running(proc) -> bool:
        try:
            return proc.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout_s
    left = [p for p in procs if running(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [p for p in left if running(p)]
    return left


def kill_pid(pid: int | None) -> None:
    if pid:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


def last_log_line(path: Path) -> str:
    try:
        lines = [l for l in path.read_text(errors="replace").splitlines() if l.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "no output"


_states: dict[str, object] = {}  # one GCS connection per head, reused by the watcher's polls


def idle_drivers(address: str) -> int:
    """How many users the head has now: drivers attached (processes that called ray.init)
    plus alive Kafka gateway actors (their clients are no Ray drivers, so a gateway keeps
    the runtime in use)."""
    from ray._private.internal_api import get_state_from_address

    state = _states.get(address)
    if state is None:
        state = _states[address] = get_state_from_address(address)
    drivers = sum(1 for j in state.job_table() if not j["IsDead"])
    if drivers:
        return drivers
    return sum(1 for a in state.actor_table(None).values()
               if a.get("State") == "ALIVE" and ":gateway:" in (a.get("Name") or ""))


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Seconds in ``"30m"``, ``"90s"``, ``"2h"``, ``"500ms"`` or a bare number of seconds."""
    text = text.strip().lower()
    for unit in sorted(_UNITS, key=len, reverse=True):
        if text.endswith(unit):
            number = text[: -len(unit)]
            break
    else:
        number, unit = text, "s"
    try:
        value = float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (like 30m, 90s, 2h)") from None
    if value <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return value
