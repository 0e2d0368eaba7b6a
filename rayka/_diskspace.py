"""How full a file system is, and the messages of rayka.errors' write errors that say so.

Private to rayka.errors (it imports nothing of rayka, so errors stays a leaf of the import graph).
"""

from __future__ import annotations

import errno
import os

# The OS errors that mean "the file system is full" rather than "the disk failed".
DISK_FULL_ERRNOS = frozenset(e for e in (getattr(errno, "ENOSPC", None), getattr(errno, "EDQUOT", None)) if e)


def free_bytes(path: str) -> int:
    """Bytes available to unprivileged writers on ``path``'s file system (or its nearest existing
    parent's); -1 if unknown."""
    while path:
        try:
            st = os.statvfs(path)
            return st.f_bavail * st.f_frsize
        except OSError:
            parent = os.path.dirname(path)
            if parent == path:
                return -1
            path = parent
    return -1


def describe_write_failure(exc: OSError, path: str, what: str) -> tuple[bool, str, int]:
    """``(disk_full, message, free_bytes)`` for ``exc``, raised while doing ``what`` in ``path``:
    the message of rayka.errors.LogWriteError.from_os_error, naming the free space left."""
    free = free_bytes(path)
    space = f"{free} bytes free" if free >= 0 else "free space unknown"
    if exc.errno in DISK_FULL_ERRNOS:
        return True, (f"{what} failed: the file system of {path} is full ({exc.strerror}; {space}). Nothing "
                      "of it was kept; free space (delete topics or data, lower retention) and retry"), free
    return False, (f"{what} failed: {exc.__class__.__name__}: {exc} ({path}; {space}). Nothing of it was "
                   "kept; check the disk and retry"), free
