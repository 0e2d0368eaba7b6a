"""DirLock: at most one PartitionLog owns a partition directory at a time.

On disk: ``<partition dir>/.lock``, an ordinary file holding the owner's pid (for
the error message only; the lock itself is the kernel's). The owner holds an
exclusive ``flock`` on it from open to close. Why ``flock``:

- the kernel drops it whenever the owning process dies, however it dies, so a
  partition actor that Ray restarts after a crash (a new process) takes it at once,
  and a stale ``.lock`` file left behind never blocks anyone;
- it belongs to the open file description, so a second open in the *same* process
  conflicts too: two PartitionLogs on one directory fail whichever process they
  live in (two rayka clusters sharing a data dir in one Ray, a leaked object in a
  notebook).

Acquiring never blocks: a held lock raises LogDirLockedError at once. A DirLock
that is garbage-collected without :meth:`release` closes its descriptor (as a
file object would), so an abandoned PartitionLog does not hold its directory
forever; tests that simulate a crash while keeping the old object call
``release()`` instead.
"""

from __future__ import annotations

import errno
import fcntl
import os
import weakref
from pathlib import Path

from ..errors import LogDirLockedError

__all__ = ["DirLock", "LOCK_FILE"]

LOCK_FILE = ".lock"


class DirLock:
    """An exclusive, non-blocking ``flock`` on ``directory/.lock``; :meth:`release` is idempotent."""

    def __init__(self, directory: Path):
        self.path = Path(directory) / LOCK_FILE
        self._close: weakref.finalize | None = None  # closes the descriptor exactly once

    @property
    def held(self) -> bool:
        return self._close is not None and self._close.alive

    def acquire(self) -> None:
        # O_CREAT without O_TRUNC: a losing opener must not wipe the owner's pid.
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise LogDirLockedError(
                f"partition directory {self.path.parent} is in use by another partition log "
                f"({self._owner()}); two rayka clusters (or two partition actors) must not share "
                "one data directory. Stop the other one (the shared local runtime: connect without an "
                "address so that every process attaches to it, or `rayka runtime stop`), or give this "
                "cluster its own data_dir (RAYKA_DATA_DIR)"
            ) from None
        self._close = weakref.finalize(self, os.close, fd)
        try:
            os.ftruncate(fd, 0)
            os.write(fd, b"%d\n" % os.getpid())
        except OSError:
            pass  # the pid is only for error messages: a full disk must not stop the log opening

    def release(self) -> None:
        """Drop the lock (closing the descriptor releases the flock)."""
        if self._close is not None:
            self._close()

    def _owner(self) -> str:
        try:
            pid = self.path.read_text().strip()
        except OSError:
            pid = ""
        if not pid:
            return "holder unknown"
        return f"held by pid {pid}" + (", this process" if pid == str(os.getpid()) else "")
