"""What the export driver (:mod:`rayka.clients.export`) and the format modules share: the
state a commit records, and the lazily read input of one commit."""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from rayka.clients import topic_read
from rayka.clients.topic_read import PartitionRange
from rayka.errors import ConfigError

__all__ = ["STATE_KEY", "ExportState", "CommitInput", "ExportLock", "date_of"]

#: The key under which a commit's metadata carries the export state (Delta, Iceberg).
STATE_KEY = "rayka.export"


class ExportLock:
    """One export at a time per destination, among the processes of this machine: an
    ``flock`` on a file, which also ends with the process that held it (a killed run never
    leaves it stuck). Two runs at once would each write the same offsets (Delta and Iceberg
    appends do not conflict with each other) or delete each other's uncommitted files."""

    def __init__(self, path, dest: str):
        self.path, self.dest, self._fd = path, dest, None

    def take(self) -> None:
        """Hold the lock, or raise ConfigError at once if another export holds it."""
        if self._fd is not None:
            return
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"another export to {self.dest} is running; wait for it to end") from None
        self._fd = fd

    def release(self) -> None:
        """Let the next export to this destination in."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class ExportState:
    """What the last commit of an export recorded: the options it was made with and the next
    offset to export of each partition."""

    options: dict
    next_offsets: dict[int, int]

    def to_json(self, ranges: dict[int, tuple[int, int]] | None = None) -> str:
        body = {"version": 1, "options": self.options,
                "next": {str(p): o for p, o in sorted(self.next_offsets.items())}}
        if ranges is not None:
            body["ranges"] = {str(p): list(r) for p, r in sorted(ranges.items())}
        return json.dumps(body, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExportState":
        try:
            body = json.loads(text)
            return cls(body["options"], {int(p): int(o) for p, o in body["next"].items()})
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"the export state {text[:200]!r} cannot be read ({exc}); "
                              "export to a new destination") from None


def _read_columns(columns, partition_by) -> list[str] | None:
    """The columns to read: those asked, plus timestamp_ms when the date partitions need it."""
    if columns is None:
        return None
    cols = list(columns)
    if partition_by == "date" and "timestamp_ms" not in cols:
        cols.append("timestamp_ms")
    return cols


def date_of(batch: pa.RecordBatch) -> pa.Array:
    """The UTC date (``YYYY-MM-DD``) of each record of ``batch``, from its timestamp_ms."""
    ts = pc.cast(batch.column("timestamp_ms"), pa.timestamp("ms", tz="UTC"))
    return pc.strftime(ts, format="%Y-%m-%d")


class CommitInput:
    """The record batches of one commit, read lazily (bounded memory), with what was read."""

    def __init__(self, pieces: list[PartitionRange], columns, filter, partition_by, cluster, bar):
        self.pieces, self.columns, self.filter = pieces, columns, filter
        self.partition_by, self.cluster, self.bar = partition_by, cluster, bar
        self.read_columns = _read_columns(columns, partition_by)
        self.rows = 0

    def batches(self) -> Iterator[tuple[PartitionRange, pa.RecordBatch]]:
        """(piece, batch) pairs of the stored columns asked for (plus timestamp_ms if needed)."""
        for piece in self.pieces:
            done = piece.start
            for batch in topic_read.read_range(piece, columns=self.read_columns, filter=self.filter, cluster=self.cluster):
                self.rows += batch.num_rows
                if "offset" in batch.schema.names and batch.num_rows:
                    last = batch.column("offset")[-1].as_py() + 1
                    self.bar.update(last - done)
                    done = last
                yield piece, batch
            self.bar.update(piece.end - done)

    def output(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """``batch`` with just the columns asked (timestamp_ms dropped if only read for dates)."""
        if self.columns is not None and batch.schema.names != list(self.columns):
            batch = batch.select(list(self.columns))
        return batch


