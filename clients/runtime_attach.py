"""The attached side of a stop: how a process on the shared local runtime learns it is going.

``rayka runtime stop`` (or the idle watcher) marks runtime.json ``stopping``, closes rayka's
actors, marks it ``closed``, waits a few seconds for the attached drivers to go, then ends the
head. Each process attached to that runtime runs a :class:`RuntimeWatch`, a daemon thread
reading runtime.json a few times a second:

- from ``stopping`` on, every failed rayka call raises :class:`RuntimeStoppedError`, not a
  retriable "partition unavailable" that a producer would retry for its whole delivery timeout;
- at ``closed`` it disconnects this process from Ray (``ray.shutdown()``) while the head still
  answers. Without that, Ray ends the whole process (a notebook's kernel too) 15 s after the
  head is gone, with a C++ line on stderr. Calls made after it fail with the same error.

A head that exits without a stop (killed) is seen too, by its pid: the calls fail the same way,
but Ray's core worker cannot be disconnected from a dead head, so Ray still ends the process.
"""

from __future__ import annotations

import logging
import os
import threading

from rayka.errors import RuntimeStoppedError

log = logging.getLogger(__name__)

POLL_S = 0.2

_stopped: RuntimeStoppedError | None = None
_lock = threading.Lock()


def stopped() -> RuntimeStoppedError | None:
    """The error every rayka call raises once this process's runtime was stopped, else None."""
    return _stopped


def _mark(error: RuntimeStoppedError) -> None:
    global _stopped
    with _lock:
        if _stopped is None:
            _stopped = error


def reset() -> None:
    """A new attachment (``connect()`` after a stop) starts with no stop recorded."""
    global _stopped
    with _lock:
        _stopped = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class RuntimeWatch(threading.Thread):
    """Watches the runtime.json of the runtime this process attached to (see the module doc)."""

    def __init__(self, data_dir: str, head_pid: int, *, on_closed, poll_s: float = POLL_S):
        super().__init__(name="rayka-runtime-watch", daemon=True)
        self.data_dir = data_dir
        self.head_pid = head_pid
        self.on_closed = on_closed  # disconnects this process (ray.shutdown and forgets the cluster)
        self.poll_s = poll_s
        self._done = threading.Event()

    def state(self) -> str:
        """running, stopping, closed, or gone (no runtime.json, another head, or the head exited)."""
        from rayka.clients import runtime

        info = runtime.read(self.data_dir)
        if info is None or info.pid != self.head_pid:
            return "gone"
        if info.state == "running" and not _pid_alive(self.head_pid):
            return "gone"
        return info.state

    def run(self) -> None:
        while not self._done.wait(self.poll_s):
            state = self.state()
            if state == "running":
                continue
            how = {"gone": f"its head (pid {self.head_pid}) exited"}.get(state, "it was stopped (rayka runtime stop)")
            _mark(RuntimeStoppedError(
                f"the shared local rayka runtime of {self.data_dir} is gone: {how}. What was acknowledged "
                "is on disk; connect again (rayka.connect()) to start a new runtime"))
            if state == "stopping":
                continue
            if state == "closed":
                try:
                    self.on_closed()
                except Exception as exc:  # noqa: BLE001 - the calls fail with the error all the same
                    log.info("disconnecting from the stopped runtime: %s", exc)
            return

    def cancel(self) -> None:
        self._done.set()
