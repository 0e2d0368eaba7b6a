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
import threading

from rayka.clients.runtime_procs import pid_alive
from rayka.errors import RuntimeStoppedError

log = logging.getLogger(__name__)

POLL_S = 0.2


class Attachment:
    """One attachment of this process to a shared local runtime; stopped once, for good.

    A Cluster keeps the attachment it was made on, so the Producers, Consumers and Admins made
    from it keep failing with RuntimeStoppedError after the process attaches to a new runtime
    (their actor handles belong to the old one).
    """

    def __init__(self) -> None:
        self.error: RuntimeStoppedError | None = None

    def check(self) -> None:
        """Raise the stop's error if this attachment's runtime was stopped."""
        if self.error is not None:
            raise self.error


#: The attachment of this process now (None: not attached to a shared runtime).
_current: Attachment | None = None
_watch: "RuntimeWatch | None" = None
_lock = threading.Lock()


def stopped() -> RuntimeStoppedError | None:
    """The error every rayka call raises once this process's runtime was stopped, else None."""
    current = _current
    return None if current is None else current.error


def current() -> Attachment | None:
    """The attachment a new Cluster belongs to."""
    return _current


def watching() -> bool:
    """A watch runs for the runtime this process is attached to."""
    return _watch is not None and _watch.is_alive()


def _mark(attachment: Attachment, error: RuntimeStoppedError) -> None:
    with _lock:
        if attachment.error is None:
            attachment.error = error


def reset() -> Attachment:
    """A new attachment (``connect()``, also after a stop): the old one stays stopped."""
    global _current
    with _lock:
        _current = Attachment()
        return _current


class RuntimeWatch(threading.Thread):
    """Watches the runtime.json of the runtime this process attached to (see the module doc)."""

    def __init__(self, data_dir: str, head_pid: int, *, on_closed, read, poll_s: float = POLL_S):
        super().__init__(name="rayka-runtime-watch", daemon=True)
        self.data_dir = data_dir
        self.head_pid = head_pid
        self.on_closed = on_closed  # disconnects this process (ray.shutdown and forgets the cluster)
        self.read = read  # runtime.read: the data dir's RuntimeInfo or None (given: no import cycle)
        self.poll_s = poll_s
        self.attachment = current() or reset()
        self._done = threading.Event()

    def start(self) -> None:
        global _watch
        with _lock:
            previous, _watch = _watch, self
        if previous is not None:
            previous.cancel()
        super().start()

    def state(self) -> str:
        """running, stopping, closed, or gone (no runtime.json, another head, or the head exited)."""
        info = self.read(self.data_dir)
        if info is None or info.pid != self.head_pid:
            return "gone"
        if info.state == "running" and not pid_alive(self.head_pid):
            return "gone"
        return info.state

    def run(self) -> None:
        while not self._done.wait(self.poll_s):
            state = self.state()
            if state == "running":
                continue
            how = {"gone": f"its head (pid {self.head_pid}) exited"}.get(state, "it was stopped (rayka runtime stop)")
            _mark(self.attachment, RuntimeStoppedError(
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
