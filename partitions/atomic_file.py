"""Replacing a small file atomically: write a temp file, fsync it, rename it over, fsync the directory.

Every small state file rayka rewrites whole goes through :func:`atomic_write`: the topic
metadata and the compacted committed-offsets log (coordinator/), a partition's
``topic_config.json`` and ``producer_state.json`` (partitions/). What it guarantees:

- *all or nothing*: a reader (or a restart after a crash) finds the old file or the
  new one, never a mix; the temp file sits beside ``path`` (same file system, so the
  rename is atomic) and is named ``path`` with its suffix replaced by ``tmp_suffix``;
- *nothing left behind*: if a write, the fsync or the rename fails (ENOSPC, EIO, an
  interrupt), the temp file is removed, the old file is untouched, and the exception
  propagates as it came (callers turn an OSError into their own error, usually
  :meth:`rayka.errors.LogWriteError.from_os_error`);
- *durable*: the data is fsynced before the rename, and with ``fsync_dir`` the directory
  after it, so the new name survives a power loss. A directory fsync that fails is
  logged, not raised: the new file is in place and what the caller holds in memory
  agrees with it; only the rename's durability across a power loss is in doubt.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import BinaryIO, Callable

__all__ = ["atomic_write", "fsync_directory"]

log = logging.getLogger(__name__)


def atomic_write(path: str | Path, data_or_writer: bytes | Callable[[BinaryIO], None], *,
                 fsync_dir: bool = True, tmp_suffix: str = ".tmp") -> None:
    """Replace ``path`` with ``data_or_writer``: bytes, or a function that writes the new
    content to the binary file it is given. All or nothing (see the module docstring)."""
    path = Path(path)
    tmp = path.with_suffix(tmp_suffix)
    if tmp == path:
        raise ValueError(f"the temp file of {path} cannot be the file itself (suffix {tmp_suffix!r})")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if callable(data_or_writer):
                with open(fd, "wb", closefd=False) as f:
                    data_or_writer(f)
            else:
                view = memoryview(data_or_writer).cast("B")
                while view:
                    view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a half-written temp file
        raise
    if fsync_dir:
        try:
            fsync_directory(path.parent)
        except OSError:
            log.warning("%s: fsync of its directory failed after replacing it (the new file is in "
                        "place; only the rename's durability across a power loss is in doubt)", path,
                        exc_info=True)


def fsync_directory(path: str | Path) -> None:
    """fsync a directory, so that a file created or renamed in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
