"""``rayka export``: a topic to Parquet, Delta or Iceberg, exactly once and resumable."""

from __future__ import annotations

import click

from rayka.cli.base import _connect, cli, connection_options

__all__ = ["export"]

_EXPORT_HELP = """Export TOPIC to DEST as Parquet files, a Delta table or an Iceberg table.

\b
Each commit records the offsets it covers with its data, so running the same command
again exports only what was produced since (no row twice), and an export that was
killed continues where its last commit ended. --from applies to the first run only.
--from / --until take an offset or an ISO 8601 time (UTC if it has no zone);
--until is exclusive.
"""


def _bound(ctx, param, value):
    if value is None:
        return None
    if value.strip().isdigit():
        return int(value)
    from rayka.clients.topic_read import to_timestamp_ms
    from rayka.errors import ConfigError

    try:
        to_timestamp_ms(value)
    except ConfigError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


def _columns(ctx, param, value):
    if value is None:
        return None
    cols = [c.strip() for c in value.split(",") if c.strip()]
    if not cols:
        raise click.BadParameter("name at least one column")
    return cols


@cli.command(help=_EXPORT_HELP)
@connection_options
@click.argument("topic")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["parquet", "delta", "iceberg"]), default="parquet",
              show_default=True, help="What to write.")
@click.option("--from", "start", default=None, callback=_bound, help="First offset or time (first run only).")
@click.option("--until", "end", default=None, callback=_bound, help="Offset or time to stop before.")
@click.option("--partition-by", type=click.Choice(["partition", "date", "none"]), default="partition",
              show_default=True, help="Hive partitions: partition=N/, date=YYYY-MM-DD/ (UTC), or none.")
@click.option("--columns", default=None, callback=_columns, help="Comma-separated columns to keep (default all).")
@click.option("--commit-records", type=click.IntRange(min=1), default=None,
              help="Offsets per commit (what a crash can cost; default 1,000,000).")
@click.option("--skip-lost", is_flag=True, default=False,
              help="Go on past offsets retention deleted before they were exported (and say how many).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: on a terminal).")
@click.pass_context
def export(ctx, topic, dest, fmt, start, end, partition_by, columns, commit_records, skip_lost, progress):
    from rayka.clients.export import DEFAULT_COMMIT_RECORDS, export_topic

    cluster = _connect(ctx)
    result = export_topic(topic, dest, format=fmt, start=start, end=end,
                          partition_by=None if partition_by == "none" else partition_by, columns=columns,
                          progress=progress, cluster=cluster, skip_lost=skip_lost,
                          commit_records=commit_records or DEFAULT_COMMIT_RECORDS)
    click.echo(str(result))
    for p, (lo, hi) in sorted(result.ranges.items()):
        click.echo(f"  partition {p}: offsets {lo}..{hi - 1}" if hi > lo else f"  partition {p}: nothing new")
    for p, n in sorted(result.lost.items()):
        click.echo(f"  partition {p}: {n} offset(s) lost to retention, skipped", err=True)
