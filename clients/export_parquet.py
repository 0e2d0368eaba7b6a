"""The Parquet side of :func:`rayka.export_topic`: Hive-partitioned files and manifests.

Layout of ``dest``::

    partition=3/part-00000007-<id>-0.parquet     (or date=2026-12-01/..., or at the top)
    _rayka_export/manifest-00000007.json         one per commit: its files, its offsets
    _rayka_export/tmp/                           data files being written (not yet committed)

A commit writes its data files under ``_rayka_export/tmp`` with a ``.tmp`` suffix, then
writes its manifest under a temp name and renames it into place (the commit point), then
moves the data files to their partition directories. So a reader that globs
``dest/**/*.parquet`` never sees a row of an unfinished commit: until the manifest exists the
files are hidden (a ``_`` directory, which Spark and Hive-style readers skip, and a name not
ending in ``.parquet``, which a DuckDB glob does not match). The next export (its ``recover``)
finishes the moves of a commit that crashed after its manifest and deletes the temp files of
one that crashed before. Readers that want exactly the committed files use
:func:`committed_files`.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from rayka.clients.export_base import CommitInput, ExportLock, ExportState, date_of
from rayka.errors import ConfigError

__all__ = ["ParquetExport", "committed_files", "manifests"]

META_DIR = "_rayka_export"
TMP_DIR = "tmp"
#: Rows gathered before a row group is written (fetches can return small batches).
ROW_GROUP_ROWS = 256 * 1024


def manifests(dest) -> list[dict]:
    """The manifests of the Parquet export in ``dest``, oldest first (``[]`` if there is none)."""
    meta = Path(dest, META_DIR)
    if not meta.is_dir():
        return []
    out = []
    for path in sorted(meta.glob("manifest-*.json")):
        try:
            out.append(json.loads(path.read_text()))
        except ValueError:
            raise ConfigError(f"{path} is not a valid manifest (damaged?); export to a new destination") from None
    return out


def committed_files(dest) -> list[str]:
    """The data files of every commit of the Parquet export in ``dest``: what a reader should
    read (``duckdb.read_parquet(committed_files(dest), hive_partitioning=True)``)."""
    return [str(Path(dest, f["path"])) for m in manifests(dest) for f in m["files"]]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _Open:
    """One data file being written: its writer, its temp path, and the rows held back."""

    def __init__(self, tmp: Path, rel: str, schema: pa.Schema):
        self.tmp, self.rel = tmp, rel
        self.writer = pq.ParquetWriter(tmp, schema)
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(pa.Table.from_batches(self.pending))
            self.rows += self.pending_rows
            self.pending, self.pending_rows = [], 0

    def close(self) -> None:
        self.flush()
        self.writer.close()
        with open(self.tmp, "rb+") as f:
            os.fsync(f.fileno())


class ParquetExport:
    """Writes commits of Parquet files with a manifest each; see the module docstring."""

    def __init__(self, dest: str):
        self.dest = Path(dest)
        self.meta = self.dest / META_DIR
        self.tmp = self.meta / TMP_DIR
        self.seq = 0
        self._lock = ExportLock(str(self.meta / "lock"), str(self.dest))

    def close(self) -> None:
        """Let the next export to this destination in (the lock also ends with the process)."""
        self._lock.release()

    def recover(self) -> ExportState | None:
        """Finish or undo what a crashed run left, and return the last commit's state."""
        self._lock.take()
        done = manifests(self.dest)
        named = set()
        for m in done:
            for f in m["files"]:
                named.add(f["tmp"])
                self._move(f)
        if self.tmp.is_dir():
            for leftover in self.tmp.iterdir():
                if leftover.name not in named:
                    leftover.unlink()  # a data file of a commit that never got its manifest
        for stale in self.meta.glob("manifest-*.json.tmp") if self.meta.is_dir() else ():
            stale.unlink()
        if not done:
            return None
        self.seq = done[-1]["seq"]
        return ExportState.from_json(json.dumps(done[-1]["state"]))

    def _move(self, f: dict) -> None:
        src, final = self.tmp / f["tmp"], self.dest / f["path"]
        if src.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, final)
        elif not final.exists():
            raise ConfigError(f"{final} is named by a manifest of {self.dest} but is missing; "
                              "the export is damaged: export to a new destination")

    def commit(self, source: CommitInput, partition_by, state: ExportState, covered: dict) -> int:
        """Write the rows of ``source`` as one commit; the bytes of data files written."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        seq, token = self.seq + 1, uuid.uuid4().hex[:12]
        files: dict[str, _Open] = {}

        def file_for(directory: str, schema: pa.Schema) -> _Open:
            if directory not in files:
                name = f"part-{seq:08d}-{token}-{len(files)}.parquet"
                rel = f"{directory}/{name}" if directory else name
                files[directory] = _Open(self.tmp / f"{name}.tmp", rel, schema)
            return files[directory]

        try:
            for piece, batch in source.batches():
                if partition_by == "date":
                    days = date_of(batch)
                    out = source.output(batch)
                    for day in days.unique().to_pylist():
                        part = out.filter(pc.equal(days, day))
                        file_for(f"date={day}", part.schema).add(part)
                else:
                    out = source.output(batch)
                    file_for(f"partition={piece.partition}" if partition_by == "partition" else "", out.schema).add(out)
            for f in files.values():
                f.close()
        except BaseException:
            for f in files.values():
                # Every file is removed even when closing one fails (a full disk); the error
                # raised is the one that stopped the commit.
                try:
                    f.writer.close()
                except Exception:
                    pass
                f.tmp.unlink(missing_ok=True)
            raise
        entries = [{"path": f.rel, "tmp": f.tmp.name, "rows": f.rows, "bytes": f.tmp.stat().st_size}
                   for f in files.values()]
        manifest = {"version": 1, "seq": seq, "files": entries,
                    "ranges": {str(p): list(r) for p, r in sorted(covered.items())},
                    "state": json.loads(state.to_json())}
        final = self.meta / f"manifest-{seq:08d}.json"
        tmp = final.with_name(final.name + ".tmp")
        with open(tmp, "w") as out:
            json.dump(manifest, out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, final)  # the commit point
        _fsync_dir(self.meta)
        for entry in entries:
            self._move(entry)
        self.seq = seq
        return sum(e["bytes"] for e in entries)
