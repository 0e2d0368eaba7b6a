"""``rayka groups ...``: list, describe, reset-offsets and delete consumer groups."""

from __future__ import annotations

import click

from rayka.cli.base import (
    _admin,
    _echo_json,
    _json_option,
    _render,
    _table,
    cli,
    connection_options,
)

__all__ = ["groups"]


@cli.group()
def groups():
    """List, describe, reset and delete consumer groups."""


@groups.command("list")
@connection_options
@_json_option
@click.pass_context
def groups_list(ctx, as_json):
    """List group ids with their state."""
    admin = _admin(ctx)
    if as_json:
        return _echo_json(admin.list_groups())
    for g in admin.list_groups():
        click.echo(f"{g['group_id']}\t{g['state']}\t{g['members']} member(s)")


@groups.command("describe")
@connection_options
@click.argument("group_id")
@_json_option
@click.pass_context
def groups_describe(ctx, group_id, as_json):
    """Members, assignment, committed offsets and lag of GROUP_ID."""
    admin = _admin(ctx)
    d = admin.describe_group(group_id)
    if as_json:
        return _echo_json(_render().group_description_json(d))
    fields = (("state", d.state), ("generation", d.generation), ("protocol", d.protocol),
              ("members", len(d.members)))
    # A group with no members has no protocol yet: say nothing rather than "None".
    click.echo("  ".join([f"group {d.group_id}"] + [f"{k} {v}" for k, v in fields if v is not None]))
    rows = [("topic", "partition", "committed", "end", "lag", "member")]
    for p in d.partitions:
        rows.append((p.topic, p.partition, _dash(p.committed), _dash(p.end_offset), _dash(p.lag), p.member or "-"))
    _table(rows)
    click.echo(f"total lag {_dash(d.total_lag)}" + (" (a partition's lag is unknown)" if d.total_lag is None else ""))


@groups.command("reset-offsets")
@connection_options
@click.argument("group_id")
@click.option("--topic", "topics", multiple=True, help="Only these topics (default: all the group committed).")
@click.option("--to", "to", required=True, help="earliest | latest | an offset | ts:<epoch ms>")
@click.pass_context
def groups_reset(ctx, group_id, topics, to):
    """Move GROUP_ID's committed offsets (the group must have no active members)."""
    target: object = to
    try:
        if to.startswith("ts:"):
            target = {"timestamp_ms": int(to[3:])}
        elif to not in ("earliest", "latest"):
            target = int(to)
    except ValueError:
        raise click.BadParameter(f"{to!r} is not earliest, latest, an offset or ts:<epoch ms>",
                                 param_hint="--to") from None
    admin = _admin(ctx)
    new = admin.reset_offsets(group_id, to=target, topics=list(topics) or None)
    for tp, off in sorted(new.items()):
        click.echo(f"{tp.topic}\t{tp.partition}\t{off}")


@groups.command("delete")
@connection_options
@click.argument("group_id")
@click.pass_context
def groups_delete(ctx, group_id):
    """Delete GROUP_ID and its committed offsets (it must have no active members)."""
    admin = _admin(ctx)
    admin.delete_group(group_id)
    click.echo(f"deleted group {group_id}")


def _dash(value):
    return "-" if value is None else value
