"""The Iceberg side of :func:`rayka.export_topic`: one snapshot per export commit.

The table lives in a pyiceberg ``SqlCatalog`` on SQLite (``dest/catalog.db``, data under
``dest/warehouse``) unless ``catalog=`` names another one. Each commit is a streamed
``table.append`` (held in memory, at most ``commit_records`` rows, for a partitioned table:
pyiceberg 0.12 streams only into unpartitioned ones) whose snapshot summary carries the
export state under ``rayka.export``: the offsets and the files that hold them become visible
in one catalog commit. A resume reads the
state from the current snapshot (or, if another writer appended since, the newest ancestor
that has it). Files of an append that crashed before its catalog commit are not in the table.
"""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from rayka.clients.export_base import STATE_KEY, CommitInput, ExportLock, ExportState
from rayka.clients.export_delta import with_partition_column

__all__ = ["IcebergExport", "open_catalog", "table_identifier"]

NAMESPACE = "rayka"


def table_identifier(topic: str) -> str:
    """``rayka.<topic>``, with characters Iceberg names do not take replaced by ``_``."""
    return f"{NAMESPACE}.{re.sub(r'[^A-Za-z0-9_]', '_', topic)}"


def open_catalog(dest: str, options: dict | None = None):
    """The SqlCatalog of an export to ``dest`` (SQLite and a warehouse under ``dest`` unless
    ``options`` give ``uri`` / ``warehouse``)."""
    from pyiceberg.catalog.sql import SqlCatalog

    root = Path(dest).resolve()
    root.mkdir(parents=True, exist_ok=True)
    props = {"uri": f"sqlite:///{root / 'catalog.db'}", "warehouse": (root / "warehouse").as_uri()}
    props.update({k: v for k, v in (options or {}).items() if k != "identifier"})
    return SqlCatalog("rayka", **props)


class IcebergExport:
    """Appends snapshots to the Iceberg table of ``topic`` in the catalog under ``dest``."""

    def __init__(self, dest: str, topic: str, options: dict):
        self.dest, self.options = dest, dict(options)
        self.identifier = self.options.get("identifier") or table_identifier(topic)
        self.catalog = open_catalog(dest, self.options)
        self.table = None
        self._lock = ExportLock(str(Path(dest).resolve() / f"_rayka_export-{self.identifier}.lock"), dest)

    def close(self) -> None:
        """Let the next export to this table in."""
        self._lock.release()

    def recover(self) -> ExportState | None:
        """The state of the newest snapshot an export made, or None for a new table."""
        from pyiceberg.exceptions import NoSuchTableError

        self._lock.take()
        try:
            self.table = self.catalog.load_table(self.identifier)
        except NoSuchTableError:
            return None
        snap = self.table.current_snapshot()
        while snap is not None:
            text = (snap.summary.additional_properties if snap.summary is not None else {}).get(STATE_KEY)
            if text is not None:
                return ExportState.from_json(text)
            snap = None if snap.parent_snapshot_id is None else self.table.snapshot_by_id(snap.parent_snapshot_id)
        return None

    def _create(self, schema: pa.Schema, partition_by):
        self.catalog.create_namespace_if_not_exists(self.identifier.rsplit(".", 1)[0])
        table = self.catalog.create_table_if_not_exists(self.identifier, schema=schema)
        if partition_by and not table.spec().fields:
            with table.update_spec() as spec:
                spec.add_identity(partition_by)
            table = self.catalog.load_table(self.identifier)
        return table

    def commit(self, source: CommitInput, partition_by, state: ExportState, covered: dict) -> int:
        """Append the rows of ``source`` as one snapshot; the bytes of data files it added."""
        batches = (with_partition_column(batch, source.output(batch), partition_by, piece.partition)
                   for piece, batch in source.batches())
        first = next(batches, None)
        if first is None:
            return 0  # nothing kept (a filter): no snapshot; the offsets are read again next time
        if self.table is None:
            self.table = self._create(first.schema, partition_by)

        def stream():
            yield first
            yield from batches

        data = pa.RecordBatchReader.from_batches(first.schema, stream())
        if not self.table.spec().is_unpartitioned():
            # pyiceberg 0.12 streams only into unpartitioned tables (iceberg-python#2152): a
            # partitioned commit is held in memory, which commit_records bounds.
            data = data.read_all()
        self.table.append(data, snapshot_properties={STATE_KEY: state.to_json(covered)})
        summary = self.table.current_snapshot().summary
        return int(summary.additional_properties.get("added-files-size", 0)) if summary is not None else 0
