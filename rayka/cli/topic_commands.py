"""``rayka topics ...``: create, list, describe, delete, alter-config, config, schema and evolve."""

from __future__ import annotations

import click

from rayka.cli.base import (
    _admin,
    _echo_json,
    _formats,
    _json_option,
    _parse_config,
    _render,
    _table,
    cli,
    connection_options,
)

__all__ = ["topics", "human_bytes"]

_SCHEMA_HELP = "Typed values: NAME:TYPE,... in pyarrow's type names (e.g. sym:string,px:double)."


@cli.group()
def topics():
    """Create, list, describe and delete topics."""


@topics.command("create")
@connection_options
@click.argument("name")
@click.option("-p", "--partitions", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("--replication-factor", default=1, show_default=True, type=click.IntRange(min=1))
@click.option("-c", "--config", "config", multiple=True, help="Topic config KEY=VALUE (e.g. retention.ms=3600000).")
@click.option("--schema", default=None,
              help=_SCHEMA_HELP)
@click.pass_context
def topics_create(ctx, name, partitions, replication_factor, config, schema):
    """Create topic NAME."""
    from rayka.config import TopicConfig
    from rayka.errors import ConfigError

    config = _parse_config(config)
    try:
        TopicConfig.from_dict(config)  # checked before anything starts
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--config") from None
    schema = _formats().parse_schema(schema) if schema is not None else None
    admin = _admin(ctx)
    desc = admin.create_topic(name, partitions=partitions, replication_factor=replication_factor,
                              config=config, schema=schema)
    click.echo(f"created topic {desc.name} with {desc.num_partitions} partition(s)")


@topics.command("list")
@connection_options
@_json_option
@click.pass_context
def topics_list(ctx, as_json):
    """List topic names."""
    admin = _admin(ctx)
    if as_json:
        return _echo_json(admin.list_topics())
    for name in admin.list_topics():
        click.echo(name)


@topics.command("describe")
@connection_options
@click.argument("name")
@_json_option
@click.pass_context
def topics_describe(ctx, name, as_json):
    """Partitions of topic NAME with their offsets, sizes and leader nodes."""
    admin = _admin(ctx)
    desc = admin.describe_topic(name)
    if as_json:
        return _echo_json(_render().topic_description_json(desc))
    click.echo(f"topic {desc.name}  partitions {desc.num_partitions}  replication {desc.replication_factor}  "
               f"messages {desc.messages}  size {human_bytes(sum(p.size_bytes or 0 for p in desc.partitions))}")
    nodes = _node_names()
    replicated = desc.replication_factor > 1 or any(len(p.replica_ids) > 1 for p in desc.partitions)
    head = ("partition", "start", "end", "messages", "size", "segments", "leader")
    rows = [head + (("replicas", "isr", "epoch") if replicated else ())]
    for p in desc.partitions:
        row = (p.partition, p.log_start_offset, p.log_end_offset, p.log_end_offset - p.log_start_offset,
               human_bytes(p.size_bytes), "-" if p.segments is None else p.segments,
               _node_label(p.leader, nodes))
        if replicated:
            leader = "none (offline)" if p.offline else f"r{p.leader_replica} {row[-1]}"
            row = row[:-1] + (leader, ",".join(f"r{r}" for r in p.replica_ids), ",".join(f"r{r}" for r in p.isr),
                              p.leader_epoch)
        rows.append(row)
    _table(rows)
    if replicated and desc.under_replicated:
        click.echo(f"under-replicated partitions: {', '.join(map(str, desc.under_replicated))}")
    for p in desc.partitions:
        for first, last in p.damaged_offsets:
            click.echo(f"partition {p.partition}: offsets {first}..{last} are damaged (reads raise; seek past them)")
    config = {k: v for k, v in sorted(desc.config.items()) if v is not None}
    click.echo("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))
    if desc.schema_version is not None:
        click.echo(f"value schema: version {desc.schema_version} ({len(desc.value_schema)} fields; "
                   f"rayka topics schema {desc.name})")


def human_bytes(n) -> str:
    """``1536`` -> ``"1.5 KiB"``; None -> ``"-"``."""
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _node_names() -> dict[str, str]:
    """Ray node id -> a short name: the node's name if it has one, else its address."""
    import ray

    try:
        return {n["NodeID"]: n.get("NodeName") or n.get("NodeManagerAddress") or n["NodeID"][:8]
                for n in ray.nodes()}
    except Exception:  # only labels are at stake
        return {}


def _node_label(node_id, names: dict[str, str]) -> str:
    if not node_id:
        return "-"
    name = names.get(node_id)
    return f"{name} ({node_id[:8]})" if name else node_id[:8]


@topics.command("delete")
@connection_options
@click.argument("name")
@click.pass_context
def topics_delete(ctx, name):
    """Delete topic NAME and its data."""
    admin = _admin(ctx)
    admin.delete_topic(name)
    click.echo(f"deleted topic {name}")


@topics.command("reassign")
@connection_options
@click.argument("name")
@click.option("--partition", "partition", type=int, default=None,
              help="Only this partition (with --nodes); without: every partition is spread again.")
@click.option("--nodes", "nodes", default=None, help="Comma-separated Ray node ids for the partition's replicas.")
@click.pass_context
def topics_reassign(ctx, name, partition, nodes):
    """Move topic NAME's replicas: spread them over the alive nodes, or put one partition on --nodes."""
    if (partition is None) != (nodes is None):
        raise click.UsageError("--partition and --nodes go together (or give neither, to spread every partition)")
    targets = None if nodes is None else {partition: [n.strip() for n in nodes.split(",") if n.strip()]}
    moved = _admin(ctx).reassign_partitions(name, targets)
    for p, target in sorted(moved.items()):
        click.echo(f"partition {p}: moving to {', '.join(t[:8] for t in target)}")


@topics.command("elect-leaders")
@connection_options
@click.argument("name")
@click.pass_context
def topics_elect_leaders(ctx, name):
    """Give the leadership of topic NAME's partitions back to their preferred replicas."""
    moved = _admin(ctx).elect_leaders(name)
    if moved:
        click.echo(f"preferred replicas lead again: partition(s) {', '.join(map(str, moved))}")
    else:
        click.echo("every partition is led by its preferred replica (or that replica is not alive and in sync)")


@topics.command("alter-config")
@connection_options
@click.argument("name")
@click.option("-c", "--config", "config", multiple=True, required=True,
              help="Topic config KEY=VALUE to change (repeatable); KEY= resets it to its default.")
@click.pass_context
def topics_alter_config(ctx, name, config):
    """Change config keys of topic NAME; running partitions apply them without a restart."""
    changes = {}
    for pair in config:
        key, sep, value = pair.partition("=")
        if sep and value == "":
            changes[key] = None  # KEY= : back to the default
        else:
            changes.update(_parse_config((pair,)))
    new = _admin(ctx).alter_topic_config(name, changes)
    click.echo(f"altered topic {name}: " + ", ".join(f"{k}={new[k]}" for k in sorted(changes) if k in new))


@topics.command("config")
@connection_options
@click.argument("name")
@_json_option
@click.pass_context
def topics_config(ctx, name, as_json):
    """Show the config of topic NAME (KEY VALUE per line)."""
    config = _admin(ctx).describe_topic_config(name)
    if as_json:
        _echo_json(dict(sorted(config.items())))
        return
    _table([("key", "value")] + sorted(config.items()))



@topics.command("schema")
@connection_options
@click.argument("name")
@click.option("--history", is_flag=True, help="Every version, oldest first (default: the latest).")
@_json_option
@click.pass_context
def topics_schema(ctx, name, history, as_json):
    """Show the value schema of typed topic NAME: its version and fields (name, type, nullable, default)."""
    versions = _admin(ctx).schema_history(name)
    shown = versions if history else versions[-1:]
    if as_json:
        data = [_render().schema_version_json(name, v) for v in shown]
        return _echo_json(data if history else (data[0] if data else None))
    if not versions:
        click.echo(f"topic {name} is untyped: its values are bytes, it has no value schema")
        return
    for i, v in enumerate(shown):
        info = _render().schema_version_json(name, v)
        if i:
            click.echo("")
        click.echo(f"topic {name}  value schema version {v.version} of {len(versions)}  registered {info['registered']}")
        _table([("field", "type", "nullable", "default")] + [
            (f["name"], f["type"], "yes" if f["nullable"] else "no", "-" if f["default"] is None else f["default"])
            for f in info["fields"]])


@topics.command("evolve")
@connection_options
@click.argument("name")
@click.option("--schema", required=True, help=_SCHEMA_HELP + " The whole new schema, as for create.")
@click.pass_context
def topics_evolve(ctx, name, schema):
    """Register a new value schema version of typed topic NAME, checked by its schema.compatibility.

    A change the mode refuses exits with code 1 and lists every offending field.
    """
    new = _formats().parse_schema(schema)  # checked before anything connects
    admin = _admin(ctx)
    before = admin.schema_history(name)
    version = admin.evolve_schema(name, new)
    if before and version.version == before[-1].version:
        click.echo(f"topic {name}: the schema equals version {version.version}, the latest; nothing registered")
    else:
        click.echo(f"topic {name}: registered value schema version {version.version}")
