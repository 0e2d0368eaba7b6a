"""Committed offsets of consumer groups, kept durably as a compacted log of JSON lines.

File ``<data_dir>/__consumer_offsets.jsonl``, one record per line, later lines win
(like Kafka's compacted ``__consumer_offsets`` topic)::

    {"g": "billing", "t": "clicks", "p": 3, "o": 1200, "m": "", "ts": 1732480000000}
    {"g": "billing", "gen": 7}                       the group's last generation
    {"g": "billing", "state": {...}}                 the group's members (see group_snapshot)
    {"g": "billing", "deleted": true}                tombstone: the group was deleted

Every ``commit`` call appends its lines with one write and fsyncs before it
returns, so an acknowledged commit survives any crash; the directory is fsynced
too when the file is created, and after compaction renames a new file into
place, so the file itself survives a crash. Each line is an independent record.
Opening replays the file: a torn last line (no newline: a crash mid-write) is
dropped and truncated away; a corrupt line with valid lines after it is skipped
with a warning, and the later lines still count. When the file holds more than
``compact_ratio`` times as many lines as live keys, it is rewritten (temp file,
fsync, atomic rename, directory fsync) with only the latest of each.
``path=None`` keeps everything in memory. Not thread-safe: callers lock.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import LogWriteError
from ..partitions.atomic_file import atomic_write, fsync_directory

__all__ = ["OffsetStore", "CommittedOffset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CommittedOffset:
    offset: int
    metadata: str
    commit_ms: int


class OffsetStore:
    """group -> (topic, partition) -> CommittedOffset, plus each group's last generation."""

    def __init__(self, path: str | Path | None, *, compact_ratio: int = 4, compact_min_lines: int = 10_000):
        self.path = Path(path) if path is not None else None
        self.compact_ratio = compact_ratio
        self.compact_min_lines = compact_min_lines
        self._offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}
        self._generations: dict[str, int] = {}
        self._states: dict[str, dict] = {}
        self._lines = 0
        self._size = 0  # bytes of whole lines in the file: where the next append must start
        if self.path is not None:
            self._replay()

    # -- reading -------------------------------------------------------------------------------

    def groups(self) -> list[str]:
        return sorted(set(self._offsets) | set(self._generations) | set(self._states))

    def offsets(self, group: str) -> dict[tuple[str, int], CommittedOffset]:
        return dict(self._offsets.get(group, {}))

    def get(self, group: str, topic: str, partition: int) -> CommittedOffset | None:
        return self._offsets.get(group, {}).get((topic, partition))

    def generation(self, group: str) -> int:
        return self._generations.get(group, 0)

    def group_state(self, group: str) -> dict | None:
        """The group's last membership snapshot (see ``group_snapshot``), or None."""
        return self._states.get(group)

    # -- writing -------------------------------------------------------------------------------

    def commit(self, group: str, offsets: dict[tuple[str, int], int], *, now_ms: int,
               metadata: str | dict[tuple[str, int], str] = "") -> None:
        """Durably record ``offsets`` for ``group`` (one write, one fsync); ``metadata`` is one
        string for all, or one per (topic, partition)."""
        meta = metadata.get if isinstance(metadata, dict) else (lambda key, default: metadata)
        self._write([{"g": group, "t": t, "p": p, "o": int(o), "m": meta((t, p), ""), "ts": now_ms}
                     for (t, p), o in offsets.items()])

    def set_generation(self, group: str, generation: int) -> None:
        if self._generations.get(group) != generation:
            self._write([{"g": group, "gen": generation}])

    def set_group_state(self, group: str, state: dict) -> None:
        """Durably record the group's membership snapshot (nothing is written if it is unchanged)."""
        if self._states.get(group) != state:
            self._write([{"g": group, "state": state}])

    def delete_group(self, group: str) -> None:
        self._write([{"g": group, "deleted": True}])

    def delete_topic(self, topic: str) -> None:
        """Forget offsets of a deleted topic (its partitions will start over if it returns)."""
        rows = [{"g": group, "t": t, "p": p, "o": -1, "m": "", "ts": 0}
                for group, bucket in self._offsets.items() for t, p in bucket if t == topic]
        if rows:
            self._write(rows)  # every group's tombstones in one write and one fsync

    def _write(self, rows: list[dict]) -> None:
        """Append ``rows`` durably, apply them to memory exactly as a replay would, then compact
        if the file has grown past its bound. Compaction writes memory out, so it must come after
        the rows are applied: before, the rows that triggered it were left out of the new file."""
        self._append(rows)
        for row in rows:
            self._apply(row)
        self._maybe_compact()

    def _append(self, rows: list[dict]) -> None:
        """Append ``rows`` as whole lines and fsync. All or nothing: a write or fsync that fails
        (a full disk) cuts the file back to its last whole line and raises LogWriteError
        (DiskFullError); if the cut fails too, the next append makes it first."""
        if self.path is None:
            return
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise self._error(exc, len(rows)) from exc
        try:
            if os.fstat(fd).st_size != self._size:
                os.ftruncate(fd, self._size)  # bytes an earlier failed write left behind
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            if created:
                fsync_directory(self.path.parent)  # else a crash may lose the new file's directory entry
        except OSError as exc:
            try:
                os.ftruncate(fd, self._size)
            except OSError:
                pass  # redone by the fstat check of the next append
            raise self._error(exc, len(rows)) from exc
        finally:
            os.close(fd)
        self._size += len(data)
        self._lines += len(rows)

    def _maybe_compact(self) -> None:
        if self.path is None:
            return
        live = sum(len(b) for b in self._offsets.values()) + len(self._generations) + len(self._states) + 1
        if self._lines > max(self.compact_min_lines, self.compact_ratio * live):
            try:
                self.compact()
            except OSError:
                # The rows are durable in the uncompacted file; compaction is retried later.
                log.warning("offset store %s: compaction failed; retried later", self.path, exc_info=True)

    def _error(self, exc: OSError, rows: int) -> LogWriteError:
        return LogWriteError.from_os_error(
            exc, self.path.parent, f"writing {rows} record(s) to the committed-offsets log {self.path}")

    def _replay(self) -> None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        self._size = len(data)
        complete, newline, torn = data.rpartition(b"\n")
        if not newline:  # no newline at all: the whole file is one torn line
            complete, torn = b"", data
        if complete or newline:
            for number, line in enumerate(complete.split(b"\n"), 1):
                self._lines += 1
                try:
                    self._apply(json.loads(line))
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    # Each line stands alone and later lines win, so one bad line in the middle
                    # costs only its own record; truncating there would drop every later commit.
                    log.warning("offset store %s: skipping corrupt line %d (%s): %r", self.path, number,
                                exc.__class__.__name__, line[:80])
        if torn:
            good = len(data) - len(torn)
            log.warning("offset store %s: dropping %d torn bytes at the end", self.path, len(torn))
            self._size = good
            try:
                os.truncate(self.path, good)
            except OSError:
                pass  # the next append cuts it (it checks the size first)

    def _apply(self, row: dict) -> None:
        group = row["g"]
        if not isinstance(group, str):
            raise TypeError(f"group id {group!r} is not a str")
        if row.get("deleted"):
            self._offsets.pop(group, None)
            self._generations.pop(group, None)
            self._states.pop(group, None)
        elif "gen" in row:
            self._generations[group] = int(row["gen"])
        elif "state" in row:
            if not isinstance(row["state"], dict):
                raise TypeError("group state is not an object")
            self._states[group] = row["state"]
        elif row["o"] < 0:
            self._offsets.get(group, {}).pop((row["t"], row["p"]), None)
        else:
            self._offsets.setdefault(group, {})[(row["t"], row["p"])] = CommittedOffset(
                int(row["o"]), row.get("m", ""), int(row.get("ts", 0)))

    def compact(self) -> None:
        """Rewrite the file with only the live entries (atomic)."""
        if self.path is None:
            return
        rows = [{"g": g, "gen": gen} for g, gen in sorted(self._generations.items())]
        rows += [{"g": g, "state": st} for g, st in sorted(self._states.items())]
        for g, bucket in sorted(self._offsets.items()):
            rows += [{"g": g, "t": t, "p": p, "o": c.offset, "m": c.metadata, "ts": c.commit_ms}
                     for (t, p), c in sorted(bucket.items())]
        data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        atomic_write(self.path, data, tmp_suffix=".compacting")  # the old file stays if it fails
        self._size, self._lines = len(data), len(rows)
