"""The Delta side of :func:`rayka.export_topic`: one Delta commit per export commit.

Each commit is a ``write_deltalake(..., mode="append")`` of a stream of record batches (the
table is never held in memory whole), whose commit info carries the export state under
``rayka.export`` (its offsets, next to the files it adds, in the same atomic log entry). A
resume reads the newest commit info that has that key from the table's history. Data files
of a write that crashed before its log entry are not part of the table (Delta readers go by
the log); ``DeltaTable.vacuum`` removes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from rayka.clients.export_base import STATE_KEY, CommitInput, ExportLock, ExportState, date_of

__all__ = ["DeltaExport"]


def with_partition_column(batch: pa.RecordBatch, out: pa.RecordBatch, partition_by, partition: int) -> pa.RecordBatch:
    """``out`` plus the Hive partition column: ``partition`` (int32) or ``date`` (YYYY-MM-DD)."""
    if partition_by == "partition":
        return out.append_column("partition", pa.array([partition] * out.num_rows, pa.int32()))
    if partition_by == "date":
        return out.append_column("date", date_of(batch))
    return out


class DeltaExport:
    """Appends commits to the Delta table at ``dest``."""

    def __init__(self, dest: str):
        self.dest = dest
        # A name Delta readers and vacuum pass over (it starts with "_").
        self._lock = ExportLock(str(Path(dest) / "_rayka_export.lock"), dest)

    def close(self) -> None:
        """Let the next export to this table in."""
        self._lock.release()

    def recover(self) -> ExportState | None:
        """The state of the newest commit an export made, or None for a new table."""
        from deltalake import DeltaTable

        self._lock.take()
        if not DeltaTable.is_deltatable(self.dest):
            return None
        for entry in DeltaTable(self.dest).history():  # newest first
            if STATE_KEY in entry:
                return ExportState.from_json(entry[STATE_KEY])
        return None

    def commit(self, source: CommitInput, partition_by, state: ExportState, covered: dict) -> int:
        """Append the rows of ``source`` as one Delta commit; the bytes of data files it added."""
        from deltalake import CommitProperties, write_deltalake

        batches = (with_partition_column(batch, source.output(batch), partition_by, piece.partition)
                   for piece, batch in source.batches())
        first = next(batches, None)
        if first is None:
            # Nothing kept (a filter): no commit; these offsets are read (and dropped) again next time.
            return 0

        def stream():
            yield first
            yield from batches

        reader = pa.RecordBatchReader.from_batches(first.schema, stream())
        write_deltalake(self.dest, reader, mode="append", partition_by=[partition_by] if partition_by else None,
                        commit_properties=CommitProperties(custom_metadata={STATE_KEY: state.to_json(covered)}))
        return self._added_bytes()

    def _added_bytes(self) -> int:
        from deltalake import DeltaTable

        version = DeltaTable(self.dest).version()
        log = Path(self.dest, "_delta_log", f"{version:020d}.json")
        total = 0
        for line in log.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                total += int(action["add"].get("size", 0))
        return total
