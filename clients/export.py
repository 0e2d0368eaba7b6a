"""Exports of a topic to Parquet, Delta or Iceberg: the plan, the resume logic, the driver.

An export reads the topic with :mod:`rayka.clients.topic_read` and writes it in commits of
at most ``commit_records`` offsets each. Every commit records, atomically with the data it
adds (a Parquet manifest renamed into place, a Delta commit's commit info, an Iceberg
snapshot's summary), the offset ranges it covers and the next offset of every partition so
far. A re-run reads that state back from the last commit and continues from there, so no
offset is exported twice and a crash loses at most the commit it was writing. The format
modules (export_parquet, export_delta, export_iceberg) only know how to write one commit
and how to read the last state back; everything else is here.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from rayka.clients.export_base import STATE_KEY, CommitInput, ExportState
from rayka.clients.topic_read import PartitionRange, plan_ranges, split_ranges
from rayka.errors import ConfigError, OffsetOutOfRangeError

__all__ = ["ExportResult", "ExportState", "export_topic", "plan_commits", "resume_ranges", "options_of",
           "check_options", "DEFAULT_COMMIT_RECORDS", "STATE_KEY"]

#: Offsets per commit by default: what a crash can cost, and (for Iceberg) the rows held in memory.
DEFAULT_COMMIT_RECORDS = 1_000_000
FORMATS = ("parquet", "delta", "iceberg")
PARTITION_BY = ("partition", "date", None)


@dataclass
class ExportResult:
    """What one :func:`export_topic` call wrote: ``rows`` and ``bytes`` (of data files) added,
    ``ranges`` (partition -> ``(start, end)`` offsets covered by this call, end exclusive),
    ``commits`` made, ``seconds`` taken, and ``lost`` (partition -> offsets that retention had
    deleted before they could be exported; only non-empty with ``skip_lost=True``)."""

    format: str
    dest: str
    topic: str
    rows: int = 0
    bytes: int = 0
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    commits: int = 0
    seconds: float = 0.0
    lost: dict[int, int] = field(default_factory=dict)

    def __str__(self) -> str:
        covered = sum(e - s for s, e in self.ranges.values())
        text = (f"exported {self.rows} row(s) ({self.bytes} B) of {self.topic} to {self.dest} as {self.format} "
                f"in {self.commits} commit(s), {covered} offset(s) covered, {self.seconds:.1f}s")
        if self.lost:
            text += f"; {sum(self.lost.values())} offset(s) skipped (deleted by retention)"
        return text


def options_of(topic: str, fmt: str, columns, filter, partition_by) -> dict:
    """The options that decide what an export's rows are; a resume must use the same ones."""
    return {"topic": topic, "format": fmt, "columns": None if columns is None else list(columns),
            "filter": None if filter is None else str(filter), "partition_by": partition_by}


def check_options(dest: str, previous: dict, now: dict) -> None:
    """ConfigError naming the first option that differs from the one ``dest`` was exported with."""
    for name in ("topic", "format", "columns", "filter", "partition_by"):
        if previous.get(name) != now.get(name):
            raise ConfigError(
                f"{dest} holds an export made with {name}={previous.get(name)!r}, not {now.get(name)!r}: "
                f"a resume must use the same topic, columns, filter and partitioning "
                f"(export to a new destination to change them)")


def resume_ranges(topic: str, planned: list[PartitionRange], committed: dict[int, int] | None, *,
                  skip_lost: bool = False) -> tuple[list[PartitionRange], dict[int, int]]:
    """Where this run starts: ``planned`` (from :func:`plan_ranges`; with a previous export,
    planned from the log start) moved up to the ``committed`` next offsets.

    An offset that the previous export did not reach and retention has since deleted raises
    OffsetOutOfRangeError, or with ``skip_lost`` is skipped and counted in the second result
    (partition -> offsets lost). Never skipped silently.
    """
    if committed is None:
        return list(planned), {}
    out, lost = [], {}
    for r in planned:
        nxt = committed.get(r.partition)
        if nxt is None:  # a partition added since the last export: from its start
            out.append(r)
            continue
        if nxt < r.start:
            if not skip_lost:
                raise OffsetOutOfRangeError(
                    f"{topic}-{r.partition}: the export stopped at offset {nxt} but the log now starts at "
                    f"{r.start} (retention deleted {r.start - nxt} offset(s) before they were exported); "
                    "pass skip_lost=True (--skip-lost) to go on from the log start and lose them",
                    log_start_offset=r.start, log_end_offset=r.end)
            lost[r.partition] = r.start - nxt
            nxt = r.start
        if nxt > r.end and r.end == r.start:
            pass  # an empty log; nothing to do
        elif nxt > r.end:
            raise OffsetOutOfRangeError(
                f"{topic}-{r.partition}: the export already reached offset {nxt} but the log ends at {r.end}; "
                "was the topic deleted and created again? Export it to a new destination",
                log_start_offset=r.start, log_end_offset=r.end)
        out.append(PartitionRange(r.topic, r.partition, min(nxt, r.end), r.end, r.node_id, r.schema_version))
    return out, lost


def plan_commits(ranges: list[PartitionRange], max_records: int) -> list[list[PartitionRange]]:
    """``ranges`` cut into commits of at most ``max_records`` offsets each (several small
    partitions share a commit; a large one spans several), in partition then offset order."""
    commits, current, size = [], [], 0
    for piece in split_ranges(ranges, max_records):
        if current and size + piece.records > max_records:
            commits.append(current)
            current, size = [], 0
        current.append(piece)
        size += piece.records
    if current:
        commits.append(current)
    return commits


def _writer_for(fmt: str, dest: str, topic: str, catalog: dict | None):
    if fmt == "parquet":
        from rayka.clients.export_parquet import ParquetExport
        return ParquetExport(dest)
    if fmt == "delta":
        from rayka.clients.export_delta import DeltaExport
        return DeltaExport(dest)
    from rayka.clients.export_iceberg import IcebergExport
    return IcebergExport(dest, topic, catalog or {})


def export_topic(topic: str, dest, *, format: str = "parquet", start=None, end=None,
                 partition_by: str | None = "partition", columns=None, filter=None, progress: bool | None = None,
                 cluster=None, commit_records: int = DEFAULT_COMMIT_RECORDS, skip_lost: bool = False,
                 catalog: dict | None = None) -> ExportResult:
    """Export ``topic`` (offsets ``start`` .. ``end``, see :func:`rayka.clients.topic_read.plan_ranges`)
    to ``dest`` as ``format`` ("parquet": Hive-partitioned files plus manifests; "delta": a Delta
    table; "iceberg": an Iceberg table in a SQLite catalog under ``dest``), exactly once.

    ``partition_by``: "partition" (``partition=3/``), "date" (``date=2026-12-01/``, UTC, from
    timestamp_ms) or None. ``columns`` / ``filter`` (a ``pyarrow.compute`` expression) select what
    is written. Each commit holds at most ``commit_records`` offsets and records the offsets it
    covers with its data, so a re-run to the same ``dest`` continues where the last commit ended
    (``start`` only applies to the first run) and a crash loses at most the commit in flight. A
    re-run with other columns, filter or partitioning is refused (ConfigError). Offsets deleted by
    retention before they were exported raise OffsetOutOfRangeError unless ``skip_lost``.
    ``progress``: a tqdm bar on stderr (default: when stderr is a terminal). ``catalog``: extra
    pyiceberg SqlCatalog properties (``{"uri": ..., "warehouse": ...}``; default under ``dest``).
    """
    from rayka.clients.connection import current
    from rayka.clients.console import progress_bar

    began = time.monotonic()
    if format not in FORMATS:
        raise ConfigError(f"format= must be one of {FORMATS}, not {format!r}")
    if partition_by not in PARTITION_BY:
        raise ConfigError(f"partition_by= must be 'partition', 'date' or None, not {partition_by!r}")
    if isinstance(columns, str):
        columns = [columns]
    if commit_records < 1:
        raise ConfigError(f"commit_records must be at least 1, not {commit_records}")
    dest = str(dest)
    cluster = cluster or current()
    options = options_of(topic, format, columns, filter, partition_by)
    writer = _writer_for(format, dest, topic, catalog)
    try:
        state = writer.recover()
        if state is not None:
            check_options(dest, state.options, options)
        planned = plan_ranges(topic, start if state is None else None, end, cluster=cluster)
        ranges, lost = resume_ranges(topic, planned, None if state is None else state.next_offsets,
                                     skip_lost=skip_lost)
        next_offsets = dict(state.next_offsets) if state is not None else {}
        for r in ranges:
            next_offsets.setdefault(r.partition, r.start)
        result = ExportResult(format, dest, topic, lost=lost)
        todo = [r for r in ranges if r.records]
        enabled = sys.stderr.isatty() if progress is None else bool(progress)
        with progress_bar(enabled, total=sum(r.records for r in todo), unit="rec", desc=f"export {topic}") as bar:
            for pieces in plan_commits(todo, commit_records):
                covered = {p.partition: (p.start, p.end) for p in pieces}
                for p in pieces:
                    next_offsets[p.partition] = p.end
                source = CommitInput(pieces, columns, filter, partition_by, cluster, bar)
                new_state = ExportState(options, dict(next_offsets))
                written = writer.commit(source, partition_by, new_state, covered)
                result.rows += source.rows
                result.bytes += written
                if source.rows or format == "parquet":  # Delta and Iceberg skip a commit of no rows
                    result.commits += 1
                for p, (lo, hi) in covered.items():
                    old = result.ranges.get(p)
                    result.ranges[p] = (lo if old is None else old[0], hi)
    finally:
        writer.close()
    result.seconds = time.monotonic() - began
    return result
