"""FullDisk: a file system under a test directory that runs out of space on demand (no root needed).

It patches ``os.write``, ``os.writev``, ``os.fsync`` and ``os.ftruncate`` for descriptors of files
below ``root`` only, and behaves as a real full disk does: writes succeed until ``free`` bytes
have gone, the write that crosses the limit is partial (it returns fewer bytes than asked), and
the next one raises ENOSPC. ``fsync_errno`` makes fsync fail (EIO, as a failing disk does);
``truncate_errno`` makes ftruncate fail too, so the code's cleanup itself meets an error.
"""

import errno
import os


class FullDisk:
    def __init__(self, monkeypatch, root):
        self.root = str(os.path.realpath(root))
        self.free: int | None = None  # bytes left; None: unlimited
        self.fsync_errno: int | None = None
        self.truncate_errno: int | None = None
        self.failures = 0  # ENOSPC raised so far
        real_write, real_writev = os.write, os.writev
        real_fsync, real_ftruncate = os.fsync, os.ftruncate

        def write(fd, data):
            n = self._take(fd, len(memoryview(data).cast("B")))
            return real_write(fd, memoryview(data).cast("B")[:n])

        def writev(fd, buffers):
            views = [memoryview(b).cast("B") for b in buffers]
            total = sum(len(v) for v in views)
            n = self._take(fd, total)
            if n == total:
                return real_writev(fd, views)
            return real_write(fd, b"".join(bytes(v) for v in views)[:n])

        def fsync(fd):
            if self.fsync_errno is not None and self._mine(fd):
                raise OSError(self.fsync_errno, os.strerror(self.fsync_errno))
            return real_fsync(fd)

        def ftruncate(fd, length):
            if self.truncate_errno is not None and self._mine(fd):
                raise OSError(self.truncate_errno, os.strerror(self.truncate_errno))
            return real_ftruncate(fd, length)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "writev", writev)
        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "ftruncate", ftruncate)

    def restore(self) -> None:
        """Space returns and the disk heals."""
        self.free = self.fsync_errno = self.truncate_errno = None

    def _mine(self, fd) -> bool:
        try:
            return os.readlink(f"/proc/self/fd/{fd}").startswith(self.root)
        except OSError:
            return False

    def _take(self, fd, size: int) -> int:
        if self.free is None or size == 0 or not self._mine(fd):
            return size
        if self.free == 0:
            self.failures += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = min(size, self.free)
        self.free -= n
        return n
