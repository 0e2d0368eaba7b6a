"""The leader-epoch cache of one replica: where each leader epoch starts in its log.

Every batch a leader writes carries the leader epoch it was written in. The cache
keeps, per epoch, the offset of its first batch in this replica's log (Kafka's
``LeaderEpochFileCache``), so a follower can find where its log and the leader's part
(KIP-101/KIP-279, see divergence.py) without trusting the high watermark. It lives
in the partition directory as ``leader-epoch-checkpoint``, in Kafka's text format::

    0                 format version
    2                 number of entries
    0 0               epoch start_offset, one line each, both strictly increasing
    3 1200

Invariants: epochs and start offsets strictly increase from line to line (an epoch
with no records left has no entry; two epochs never start at one offset). The file is
rewritten whole on every change (temp file, fsync, rename, fsync of the directory),
and the change is applied in memory only once the file is written: a failed write
(a full disk) raises LogWriteError and leaves the cache as it was.

Opening tolerates a missing file (an empty cache: a new replica, or a log written
before epochs existed) and refuses a damaged one with LogOpenError naming the file.
The owner keeps the cache in step with its log: after opening, it calls
``truncate_from_end(log_end)`` and ``truncate_from_start(log_start)``, since the
log may have lost a tail or segments that the file still names; a leader calls
``assign(leader_epoch, log_end)`` when it takes over, before its first append, and a
follower calls ``assign(batch_epoch, base_offset)`` for each batch it copies (nothing
changes unless the epoch is new).

A cache opened with ``path=None`` is memory-only (a scratch copy, tests). Not
thread-safe: the partition log serialises appends and truncations.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

from ..errors import LogOpenError, LogWriteError
from .atomic_file import atomic_write

__all__ = ["EpochCache", "EpochEntry", "EpochEndOffset", "EPOCH_FILE", "UNDEFINED_EPOCH", "UNDEFINED_OFFSET"]

log = logging.getLogger(__name__)

EPOCH_FILE = "leader-epoch-checkpoint"
UNDEFINED_EPOCH = -1
UNDEFINED_OFFSET = -1
_VERSION = 0
_MAX_ENTRIES = 1_000_000  # a count line past this is damage, not a real cache


class EpochEntry(NamedTuple):
    """Leader epoch ``epoch`` starts at ``start_offset`` in this log."""

    epoch: int
    start_offset: int


class EpochEndOffset(NamedTuple):
    """The answer to "where does my epoch end in your log" (Kafka's OffsetsForLeaderEpoch):
    ``epoch`` is the largest epoch <= the one asked that this log knows, ``end_offset`` the
    offset where the next known epoch starts (the log end for the latest). Both are -1
    (UNDEFINED) when the log knows no such epoch."""

    epoch: int
    end_offset: int

    @property
    def undefined(self) -> bool:
        return self.end_offset == UNDEFINED_OFFSET


UNDEFINED = EpochEndOffset(UNDEFINED_EPOCH, UNDEFINED_OFFSET)


class EpochCache:
    """Leader epoch -> start offset of one replica's log (see the module docstring)."""

    def __init__(self, entries=(), path: str | Path | None = None):
        self._entries: list[EpochEntry] = [EpochEntry(int(e), int(o)) for e, o in entries]
        problem = _order_problem(self._entries)
        if problem:
            raise ValueError(f"leader epoch entries out of order: {problem}")
        self.path = Path(path) if path is not None else None

    @classmethod
    def open(cls, directory: str | Path) -> "EpochCache":
        """The cache kept in ``directory`` (empty if it has no file yet)."""
        path = Path(directory) / EPOCH_FILE
        try:
            text = path.read_text(encoding="ascii")
        except FileNotFoundError:
            return cls(path=path)
        except (OSError, UnicodeDecodeError) as exc:
            raise _damaged(path, f"it cannot be read ({exc})") from exc
        entries, problem = _parse(text)
        if problem:
            raise _damaged(path, problem)
        return cls(entries, path=path)

    # -- reading ---------------------------------------------------------------------------

    @property
    def entries(self) -> tuple[EpochEntry, ...]:
        return tuple(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def latest_epoch(self) -> int:
        """The newest epoch with an entry, or UNDEFINED_EPOCH (-1)."""
        return self._entries[-1].epoch if self._entries else UNDEFINED_EPOCH

    @property
    def earliest(self) -> EpochEntry | None:
        return self._entries[0] if self._entries else None

    def start_offset_of(self, epoch: int) -> int | None:
        """Where ``epoch`` starts in this log, if it has an entry."""
        for entry in self._entries:
            if entry.epoch == epoch:
                return entry.start_offset
        return None

    def epoch_for_offset(self, offset: int) -> int:
        """The epoch the record at ``offset`` was written in (-1 if before every entry)."""
        found = UNDEFINED_EPOCH
        for entry in self._entries:
            if entry.start_offset > offset:
                break
            found = entry.epoch
        return found

    def end_offset_for(self, epoch: int, log_end: int) -> EpochEndOffset:
        """Kafka's ``endOffsetFor``: the largest known epoch <= ``epoch`` and where it ends in
        this log (the start offset of the next known epoch, or ``log_end`` for the latest).

        An ``epoch`` older than every entry (its records were deleted by retention) answers
        ``(epoch, start of the earliest entry)``; an undefined or newer-than-known epoch
        answers UNDEFINED.
        """
        if epoch == UNDEFINED_EPOCH or not self._entries:
            return UNDEFINED
        if epoch == self._entries[-1].epoch:
            return EpochEndOffset(epoch, log_end)
        higher = next((e for e in self._entries if e.epoch > epoch), None)
        if higher is None:
            return UNDEFINED
        floor = [e for e in self._entries if e.epoch <= epoch]
        return EpochEndOffset(floor[-1].epoch if floor else epoch, higher.start_offset)

    # -- changing --------------------------------------------------------------------------

    def assign(self, epoch: int, start_offset: int) -> bool:
        """Record that ``epoch`` starts at ``start_offset``; True if the cache changed.

        As Kafka: the latest epoch again at the same or a later offset changes nothing (its
        start is where its first batch went). Otherwise entries that would break the order
        (an epoch >= ``epoch``, or a start >= ``start_offset``) are dropped from the end and
        the new entry appended, with a warning when that drops more than an empty epoch; the
        log truncates its tail before this happens, so in practice it drops nothing.
        Negative values raise ValueError.
        """
        if epoch < 0 or start_offset < 0:
            raise ValueError(f"invalid leader epoch entry: epoch {epoch}, start offset {start_offset}")
        latest = self._entries[-1] if self._entries else None
        if latest is not None and latest.epoch == epoch and start_offset >= latest.start_offset:
            return False
        kept = [e for e in self._entries if e.epoch < epoch and e.start_offset < start_offset]
        removed = self._entries[len(kept):]
        if len(removed) > 1 or (removed and removed[0].start_offset != start_offset):
            log.warning("leader epoch %d at offset %d drops conflicting entries %s (%s)", epoch, start_offset,
                        removed, self.path or "memory")
        self._replace(kept + [EpochEntry(epoch, start_offset)])
        return True

    def truncate_from_end(self, end_offset: int) -> bool:
        """The log was cut back to end at ``end_offset``: forget epochs starting at or after it
        (also when it is the log end: an epoch with no records goes). True if anything went."""
        kept = [e for e in self._entries if e.start_offset < end_offset]
        if len(kept) == len(self._entries):
            return False
        self._replace(kept)
        return True

    def truncate_from_start(self, start_offset: int) -> bool:
        """The log now starts at ``start_offset`` (retention): epochs that end before it go, and
        the one it falls in starts there. True if anything changed."""
        before = [e for e in self._entries if e.start_offset <= start_offset]
        if not before or (len(before) == 1 and before[0].start_offset == start_offset):
            return False
        self._replace([EpochEntry(before[-1].epoch, start_offset)] + self._entries[len(before):])
        return True

    def clear(self) -> None:
        """Forget every entry (the log was emptied, to be copied again from its leader)."""
        if self._entries:
            self._replace([])

    def copy(self) -> "EpochCache":
        """A memory-only copy, to try truncations on (divergence.resolve_truncation)."""
        return EpochCache(self._entries)

    def _replace(self, entries: list[EpochEntry]) -> None:
        if self.path is None:
            self._entries = entries
            return
        try:
            atomic_write(self.path, _format(entries))
        except OSError as exc:
            raise LogWriteError.from_os_error(exc, self.path.parent,
                                              f"writing the leader-epoch file {self.path}") from exc
        self._entries = entries

    def __repr__(self) -> str:
        return f"EpochCache({[tuple(e) for e in self._entries]}, path={self.path})"


def _format(entries: list[EpochEntry]) -> bytes:
    lines = [str(_VERSION), str(len(entries))] + [f"{e.epoch} {e.start_offset}" for e in entries]
    return ("\n".join(lines) + "\n").encode("ascii")


def _parse(text: str) -> tuple[list[EpochEntry], str | None]:
    """The entries of a checkpoint file, or the reason it is damaged."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        return [], "it is shorter than its two header lines (a torn write?)"
    if lines[0].strip() != str(_VERSION):
        return [], f"its format version is {lines[0][:20]!r}, not {_VERSION}"
    try:
        count = int(lines[1])
    except ValueError:
        return [], f"its entry count {lines[1][:20]!r} is not a number"
    if not 0 <= count <= _MAX_ENTRIES or count != len(lines) - 2:
        return [], f"it says {count} entries but holds {len(lines) - 2} lines"
    entries = []
    for number, line in enumerate(lines[2:], start=3):
        parts = line.split()
        try:
            if len(parts) != 2:
                raise ValueError
            epoch, start = int(parts[0]), int(parts[1])
        except ValueError:
            return [], f"line {number} is {line[:40]!r}, not '<epoch> <start offset>'"
        if epoch < 0 or start < 0:
            return [], f"line {number} holds a negative epoch or offset: {line[:40]!r}"
        entries.append(EpochEntry(epoch, start))
    problem = _order_problem(entries)
    return entries, problem


def _order_problem(entries: list[EpochEntry]) -> str | None:
    for prev, entry in zip(entries, entries[1:]):
        if entry.epoch <= prev.epoch or entry.start_offset <= prev.start_offset:
            return (f"epoch {entry.epoch} at offset {entry.start_offset} follows epoch {prev.epoch} "
                    f"at {prev.start_offset}")
    return None


def _damaged(path: Path, problem: str) -> LogOpenError:
    return LogOpenError(
        f"the leader-epoch file {path} is damaged: {problem}. The replica does not guess its epochs, "
        "since a wrong one could keep a divergent tail after a failover. Move the file aside: the "
        "replica then starts with no epochs, and as a follower copies its log again from the leader",
        directory=str(path.parent), cause=problem)
