"""How an attached process learns that its shared runtime is stopping (no Ray: runtime.json only)."""

import dataclasses
import os
import subprocess
import sys
import threading

import pytest

from rayka.clients import runtime, runtime_attach
from rayka.errors import LocalRuntimeError, RuntimeStoppedError
from rayka.testing import wait_for


def _info(data_dir, pid, state="running"):
    return runtime.RuntimeInfo(address="127.0.0.1:1", port=1, pid=pid, temp_dir=str(data_dir / "tmp"),
                               owner={}, started_at=0.0, data_dir=str(data_dir), state=state)


def _record(data_dir, info):
    runtime._write(data_dir, info)


@pytest.fixture
def attachment():
    previous = runtime_attach._current
    yield runtime_attach.reset()
    runtime_attach._current = previous


def _watch(tmp_path, pid, closed):
    watch = runtime_attach.RuntimeWatch(str(tmp_path), pid, on_closed=closed.set, read=runtime.read, poll_s=0.01)
    watch.start()
    return watch


def _wait(predicate, timeout_s=10):
    wait_for(predicate, timeout_s, interval_s=0.01, what="the watch to see runtime.json change")


def test_states_read_from_runtime_json(tmp_path, attachment):
    watch = runtime_attach.RuntimeWatch(str(tmp_path), os.getpid(), on_closed=lambda: None, read=runtime.read)
    assert watch.state() == "gone"  # no file
    _record(tmp_path, _info(tmp_path, os.getpid()))
    assert watch.state() == "running"
    _record(tmp_path, _info(tmp_path, os.getpid(), "stopping"))
    assert watch.state() == "stopping"
    _record(tmp_path, _info(tmp_path, os.getpid() + 1))
    assert watch.state() == "gone"  # another head took the data dir


def test_a_dead_head_is_gone_even_when_the_file_says_running(tmp_path, attachment):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _record(tmp_path, _info(tmp_path, dead.pid))
    assert runtime_attach.RuntimeWatch(str(tmp_path), dead.pid, on_closed=lambda: None, read=runtime.read).state() == "gone"


def test_stopping_marks_the_attachment_and_closed_disconnects(tmp_path, attachment):
    _record(tmp_path, _info(tmp_path, os.getpid()))
    closed = threading.Event()
    watch = _watch(tmp_path, os.getpid(), closed)
    try:
        assert runtime_attach.stopped() is None
        attachment.check()  # running: nothing to raise
        _record(tmp_path, _info(tmp_path, os.getpid(), "stopping"))
        _wait(lambda: runtime_attach.stopped() is not None)
        assert not closed.is_set() and watch.is_alive()  # still stopping: calls fail, not yet detached
        with pytest.raises(RuntimeStoppedError, match="rayka runtime stop") as info:
            attachment.check()
        assert isinstance(info.value, LocalRuntimeError) and info.value.retriable is False
        _record(tmp_path, _info(tmp_path, os.getpid(), "closed"))
        _wait(closed.is_set)
        watch.join(5)
        assert not watch.is_alive()
    finally:
        watch.cancel()


def test_a_new_attachment_starts_clean_and_the_old_one_stays_stopped(tmp_path, attachment):
    _record(tmp_path, _info(tmp_path, os.getpid(), "closed"))
    closed = threading.Event()
    _watch(tmp_path, os.getpid(), closed).join(5)
    assert closed.is_set()
    with pytest.raises(RuntimeStoppedError):
        attachment.check()
    fresh = runtime_attach.reset()
    assert runtime_attach.current() is fresh and runtime_attach.stopped() is None
    fresh.check()
    with pytest.raises(RuntimeStoppedError):  # objects made on the old runtime keep failing
        attachment.check()


def test_a_head_that_exits_fails_calls_but_is_not_disconnected(tmp_path, attachment):
    head = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _record(tmp_path, _info(tmp_path, head.pid))
        closed = threading.Event()
        watch = _watch(tmp_path, head.pid, closed)
        head.kill()
        head.wait()
        watch.join(5)
        assert not watch.is_alive() and not closed.is_set()
        with pytest.raises(RuntimeStoppedError, match=f"its head \\(pid {head.pid}\\) exited"):
            attachment.check()
    finally:
        head.kill()


def test_only_the_newest_watch_runs(tmp_path, attachment):
    _record(tmp_path, _info(tmp_path, os.getpid()))
    first = _watch(tmp_path, os.getpid(), threading.Event())
    second = _watch(tmp_path, os.getpid(), threading.Event())
    try:
        first.join(5)
        assert not first.is_alive() and second.is_alive() and runtime_attach.watching()
    finally:
        second.cancel()
        second.join(5)
    assert not runtime_attach.watching()


def test_a_stop_waits_for_a_process_that_is_attaching(tmp_path, listening_port):
    """attaching() holds the lock shared: an exclusive lock (a start or a stop) waits for it."""
    _record(tmp_path, dataclasses.replace(_info(tmp_path, os.getpid()), port=listening_port))
    got_exclusive = threading.Event()

    def stopper():
        with runtime._locked(tmp_path):
            got_exclusive.set()

    with runtime.attaching(tmp_path) as info:
        assert info.pid == os.getpid()
        thread = threading.Thread(target=stopper)
        thread.start()
        assert not got_exclusive.wait(0.3)
    thread.join(5)
    assert got_exclusive.is_set()


@pytest.fixture
def listening_port():
    """A loopback port that accepts connections, as a live head's GCS port does."""
    import socket

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]
