"""LogOpener: a partition log that may fail to open, and the failed state that answers for it.

A partition actor that raised in ``__init__`` because its files cannot be opened
would be restarted by Ray into the same failure, over and over, while its callers
saw only "actor died". Instead the actor holds a LogOpener: :meth:`LogOpener.ready`
returns the open log, or raises the error that keeps it from opening (a
LogOpenError naming the directory, the cause and what to do; a LogDirLockedError
if another process owns the directory). The failure is logged once (again only if
it changes), and opening is tried again on a call at most every
``retry_interval_s`` (``LOCKED_RETRY_S`` for a directory locked by another
process, which may be exiting), so fixing the files brings the partition back
without a restart. After :meth:`stop` (the partition is closing) nothing is reopened.

Thread-safe: calls from any thread; one of them at a time tries to open.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ..clock import Clock, MonotonicClock
from ..errors import LogDirLockedError, LogOpenError, RaykaError
from .log import PartitionLog

__all__ = ["LogOpener", "REOPEN_INTERVAL_S"]

log = logging.getLogger(__name__)

REOPEN_INTERVAL_S = 5.0
LOCKED_RETRY_S = 0.2  # a directory another process holds is tried again this soon


class LogOpener:
    """The log opened by ``open_log()``, or the rayka error that keeps it from opening."""

    def __init__(self, open_log: Callable[[], PartitionLog], *, directory: str, name: str = "",
                 retry_interval_s: float = REOPEN_INTERVAL_S, clock: Clock = MonotonicClock()):
        self._open_log = open_log
        self._directory = directory
        self._name = name or directory
        self._retry_interval_ms = round(retry_interval_s * 1000)
        self._clock = clock
        self._lock = threading.Lock()
        self._stopped = False
        self.log: PartitionLog | None = None  # None while the log cannot open
        self.error: RaykaError | None = None  # why, while it cannot
        self._next_try_ms = 0
        self._try_open()

    def ready(self) -> PartitionLog:
        """The open log; else the error that keeps it from opening (after one more try, if the
        last one is ``retry_interval_s`` old)."""
        opened = self.log
        if opened is not None:
            return opened
        with self._lock:
            if self.log is None and not self._stopped and self._clock() >= self._next_try_ms:
                self._try_open()
            if self.log is None:
                raise self.error.with_traceback(None)  # the same error each time, not a growing traceback
            return self.log

    def stop(self) -> None:
        """No more attempts to open (the partition is closing or being deleted)."""
        with self._lock:
            self._stopped = True

    def _try_open(self) -> None:
        self._next_try_ms = self._clock() + self._retry_interval_ms
        try:
            opened = self._open_log()
        except Exception as exc:  # noqa: BLE001 - every caller gets it as a rayka error
            cause = f"{type(exc).__name__}: {exc}"
            error = exc if isinstance(exc, RaykaError) else LogOpenError(
                f"partition log {self._directory} cannot be opened: {cause}", directory=self._directory,
                cause=cause)
            if self.error is None or str(self.error) != str(error):
                log.error("%s: %s", self._name, error)  # once, not once per call
            self.error = error
            if isinstance(error, LogDirLockedError):  # cheap to retry (nothing is read before the lock),
                self._next_try_ms = self._clock() + round(LOCKED_RETRY_S * 1000)  # and the owner may be exiting
            return
        if self.error is not None:
            log.warning("%s: partition log %s opened after earlier failures", self._name, self._directory)
        self.error = None
        self.log = opened
