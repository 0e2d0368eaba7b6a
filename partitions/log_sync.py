"""What a partition log wrote but has not fsynced yet, and an fsync failure not yet reported.

By ``flush.policy``:

- ``batch``: every append fsyncs its batch before it returns (segment.py); nothing is
  pending but the index entries, written when possible;
- ``interval``: the log's tick fsyncs what was written since the last fsync, at most
  ``flush.ms`` after it, and every segment sealed by a roll since (a roll does not fsync
  under the log's lock: up to ``flush.ms`` of writes to push to disk must not stall the
  appends waiting);
- ``never``: writing back is left to the OS (and to ``flush()`` and ``close()``).

A pending fsync stays pending until one succeeds (retried by every tick): a sealed
segment leaves the list only after its fsync passed, and the active segment counts as
synced only if no append came while its fsync ran. A failure is logged, and raised
once, as LogWriteError, by the next ``flush()`` (or append under ``flush.policy=batch``,
which then writes nothing): a later fsync that succeeds does not prove the data reached
the disk (Linux may drop the dirty pages of a failed writeback).

Thread-safety: the methods run under the log's lock, except :meth:`PendingSync.run`,
which does its fsyncs outside it (an fsync can take long on a busy disk) and takes the
lock (the log's, given at construction) only to record what they achieved.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from ..config import TopicConfig
from ..errors import LogWriteError
from .segment import LogSegment

__all__ = ["PendingSync", "SyncTicket"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SyncTicket:
    """The fsyncs one tick takes out of the lock: the sealed segments pending then, and the
    active segment if its interval fsync is due (its index entries already written)."""

    sealed: tuple[LogSegment, ...]
    active: LogSegment | None
    appends_seen: int
    now_ms: int


class PendingSync:
    """The unsynced state of one partition log (see the module docstring)."""

    def __init__(self, directory: Path, lock: threading.RLock, now_ms: int):
        self._directory = directory
        self._lock = lock
        self._sealed: list[LogSegment] = []  # sealed by a roll, fsynced by the next tick
        self._last_flush_ms = now_ms
        self._dirty = False  # appended since the last fsync of the active segment
        self._appends = 0  # appends so far: a tick's fsync clears ``_dirty`` only if none came since
        self._error: OSError | None = None  # a tick's fsync failed; not yet raised to a caller

    def appended(self) -> None:
        """A batch was written to the active segment (not fsynced yet, unless synced() follows)."""
        self._dirty = True
        self._appends += 1

    def synced(self, now_ms: int) -> None:
        """The active segment was fsynced (or replaced by a roll) at ``now_ms``."""
        self._last_flush_ms, self._dirty = now_ms, False

    def rolled(self, sealed: LogSegment, config: TopicConfig) -> None:
        """A roll sealed ``sealed`` without an fsync: under the interval policy the next tick does it."""
        if config.flush_policy == "interval":
            self._sealed.append(sealed)

    def active_due(self, now_ms: int, config: TopicConfig) -> bool:
        """Whether the interval fsync of the active segment is due."""
        return (self._dirty and config.flush_policy == "interval"
                and now_ms - self._last_flush_ms >= config.flush_ms)

    def sync_sealed(self) -> None:
        """fsync the sealed segments no tick has fsynced yet (or that failed); each leaves the list
        only once its fsync succeeded. Raises the OSError of the first that fails."""
        while self._sealed:
            self._sealed[0].fsync()
            self._sealed.pop(0)

    def ticket(self, active: LogSegment | None, now_ms: int) -> SyncTicket:
        """What :meth:`run` is to fsync, taken under the lock."""
        return SyncTicket(tuple(self._sealed), active, self._appends, now_ms)

    def run(self, ticket: SyncTicket) -> None:
        """Do the fsyncs of ``ticket`` outside the lock; record each that succeeded. One that fails
        is logged and kept for :meth:`raise_error`; what it was for stays pending."""
        try:
            for seg in ticket.sealed:
                seg.fsync()
                with self._lock:
                    if seg in self._sealed:
                        self._sealed.remove(seg)
            if ticket.active is not None:
                ticket.active.fsync()
                with self._lock:
                    self._last_flush_ms = ticket.now_ms
                    if self._appends == ticket.appends_seen:  # no append since: nothing left unsynced
                        self._dirty = False
        except OSError as exc:
            with self._lock:
                self._error = exc
            log.error("partition %s: fsync failed (%s); retried at the next tick; the next flush() (or "
                      "append under flush.policy=batch) raises LogWriteError", self._directory, exc)

    def raise_error(self) -> None:
        """Raise, once, the LogWriteError for the fsync a tick could not do (no-op if none failed)."""
        if self._error is None:
            return
        exc, self._error = self._error, None
        raise LogWriteError(
            f"an fsync of partition log {self._directory} failed ({exc.__class__.__name__}: {exc}); "
            "records acknowledged before it may not have reached the disk (they are still served). "
            "Check the disk; the fsync is retried at every tick and this is raised once",
            path=str(self._directory), errno=exc.errno, free_bytes=-1) from exc
