"""The ``rayka`` command line: topics, produce, consume, groups, demo.

Every command connects like ``rayka.connect()``: to the Ray at ``--address``
(or ``RAY_ADDRESS``), else to a local Ray it starts (embedded; the data dir
keeps the topics between invocations, so what one run produces the next
consumes).
"""

from __future__ import annotations

import logging
import sys
import time

import click

from rayka.errors import RaykaError

__all__ = ["main"]


class ProduceFailed(click.ClickException):
    """Some records of ``rayka produce`` were not acknowledged (exit code 1)."""


def _connect(ctx: click.Context):
    import rayka

    obj = ctx.find_root().obj
    if obj.get("cluster") is None:
        obj["cluster"] = rayka.connect(address=obj["address"], data_dir=obj["data_dir"],
                                       cluster_name=obj["cluster_name"], num_cpus=obj["num_cpus"])
    return obj["cluster"]


def _admin(ctx: click.Context):
    import rayka

    return rayka.Admin(_connect(ctx))


def _parse_config(pairs: tuple[str, ...]) -> dict:
    config = {}
    for pair in pairs:
        if "=" not in pair:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--config")
        key, value = pair.split("=", 1)
        try:
            config[key] = int(value)
        except ValueError:
            config[key] = value
    return config


@click.group()
@click.option("--address", envvar="RAYKA_ADDRESS", default=None,
              help="Ray cluster address (default: the running Ray, else a local embedded one).")
@click.option("--data-dir", envvar="RAYKA_DATA_DIR", default=None, type=click.Path(file_okay=False),
              help="Where partitions keep their files (default ~/.rayka/data).")
@click.option("--cluster", "cluster_name", envvar="RAYKA_CLUSTER", default=None,
              help="Name of the rayka cluster on that Ray (default 'default').")
@click.option("--num-cpus", type=int, default=None, help="CPUs for an embedded Ray (default: all).")
@click.option("-v", "--verbose", is_flag=True, help="Log at INFO level.")
@click.pass_context
def cli(ctx, address, data_dir, cluster_name, num_cpus, verbose):
    """rayka: a Kafka-style log on Ray."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    ctx.obj = {"address": address, "data_dir": data_dir, "cluster_name": cluster_name,
               "num_cpus": num_cpus, "cluster": None}


# -- topics --------------------------------------------------------------------------------------


@cli.group()
def topics():
    """Create, list, describe and delete topics."""


@topics.command("create")
@click.argument("name")
@click.option("-p", "--partitions", default=1, show_default=True, type=int)
@click.option("--replication-factor", default=1, show_default=True, type=int)
@click.option("-c", "--config", "config", multiple=True, help="Topic config KEY=VALUE (e.g. retention.ms=3600000).")
@click.pass_context
def topics_create(ctx, name, partitions, replication_factor, config):
    """Create topic NAME."""
    admin = _admin(ctx)
    desc = admin.create_topic(name, partitions=partitions, replication_factor=replication_factor,
                              config=_parse_config(config))
    click.echo(f"created topic {desc.name} with {desc.num_partitions} partition(s)")


@topics.command("list")
@click.pass_context
def topics_list(ctx):
    """List topic names."""
    admin = _admin(ctx)
    for name in admin.list_topics():
        click.echo(name)


@topics.command("describe")
@click.argument("name")
@click.pass_context
def topics_describe(ctx, name):
    """Partitions of topic NAME with their offsets, sizes and leader nodes."""
    admin = _admin(ctx)
    desc = admin.describe_topic(name)
    click.echo(f"topic {desc.name}  partitions {desc.num_partitions}  replication {desc.replication_factor}  "
               f"messages {desc.messages}")
    rows = [("partition", "start", "end", "messages", "bytes", "segments", "leader")]
    for p in desc.partitions:
        rows.append((p.partition, p.log_start_offset, p.log_end_offset, p.log_end_offset - p.log_start_offset,
                     p.size_bytes, p.segments, (p.leader or "-")[:12]))
    _table(rows)
    for p in desc.partitions:
        for first, last in p.damaged_offsets:
            click.echo(f"partition {p.partition}: offsets {first}..{last} are damaged (reads raise; seek past them)")
    click.echo("config: " + ", ".join(f"{k}={v}" for k, v in sorted(desc.config.items())))


@topics.command("delete")
@click.argument("name")
@click.pass_context
def topics_delete(ctx, name):
    """Delete topic NAME and its data."""
    admin = _admin(ctx)
    admin.delete_topic(name)
    click.echo(f"deleted topic {name}")


@topics.command("alter-config")
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
@click.argument("name")
@click.pass_context
def topics_config(ctx, name):
    """Show the config of topic NAME (KEY VALUE per line)."""
    config = _admin(ctx).describe_topic_config(name)
    _table([("key", "value")] + sorted(config.items()))


# -- produce / consume ---------------------------------------------------------------------------


@cli.command()
@click.argument("topic")
@click.option("--key-sep", default=None, help="Split each line at the first SEP into key and value.")
@click.option("--partition", type=int, default=None)
@click.option("--linger-ms", type=float, default=5, show_default=True)
@click.pass_context
def produce(ctx, topic, key_sep, partition, linger_ms):
    """Send one record per line of standard input to TOPIC."""
    import rayka

    _connect(ctx)
    count = 0
    failed: list[BaseException] = []  # appended from the producer's callback thread

    def check(future) -> None:
        error = future.exception()
        if error is not None:
            failed.append(error)

    with rayka.Producer(linger_ms=linger_ms) as producer:
        for line in sys.stdin.buffer:
            line = line.rstrip(b"\r\n")
            key = None
            if key_sep is not None:
                sep = key_sep.encode()
                if sep not in line:
                    raise click.UsageError(f"line {count + 1} has no key separator {key_sep!r}")
                key, line = line.split(sep, 1)
            producer.send(topic, value=line, key=key, partition=partition).add_done_callback(check)
            count += 1
    if failed:
        raise ProduceFailed(f"{len(failed)} of {count} record(s) to {topic} were not written: {failed[0]}")
    click.echo(f"produced {count} record(s) to {topic}", err=True)


@cli.command()
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record (default: only new ones).")
@click.option("--max", "max_records", type=int, default=None, help="Stop after this many records.")
@click.option("--group", "group_id", default=None, help="Consume as a member of this group (commits offsets).")
@click.option("--timeout-ms", type=int, default=None,
              help="Stop after this long without a record (default: wait forever).")
@click.option("--print-key", is_flag=True, help="Print KEY<sep>VALUE.")
@click.option("--print-offset", is_flag=True, help="Print partition:offset before each record.")
@click.option("--key-sep", default="\t", show_default=True)
@click.pass_context
def consume(ctx, topic, from_beginning, max_records, group_id, timeout_ms, print_key, print_offset, key_sep):
    """Print records of TOPIC, one per line."""
    import rayka

    _connect(ctx)
    consumer = rayka.Consumer(topic, group_id=group_id,
                              auto_offset_reset="earliest" if from_beginning else "latest",
                              consumer_timeout_ms=timeout_ms)
    out = sys.stdout.buffer
    seen = 0
    try:
        for rec in consumer:
            parts = []
            if print_offset:
                parts.append(f"{rec.partition}:{rec.offset}".encode())
            if print_key:
                parts.append(rec.key or b"")
            parts.append(rec.value if isinstance(rec.value, bytes) else str(rec.value).encode())
            out.write(key_sep.encode().join(parts) + b"\n")
            seen += 1
            if max_records is not None and seen >= max_records:
                break
        out.flush()
        if group_id is not None:
            consumer.commit()
    finally:
        consumer.close()
    click.echo(f"consumed {seen} record(s) from {topic}", err=True)


# -- demo ----------------------------------------------------------------------------------------


@cli.command()
@click.option("--messages", default=1_000_000, show_default=True, type=int)
@click.option("--partitions", default=4, show_default=True, type=int)
@click.pass_context
def demo(ctx, messages, partitions):
    """Create a topic, produce, consume it with a group, and print what happened."""
    from rayka.clients.demo import run_demo

    cluster = _connect(ctx)
    result = run_demo(cluster, messages=messages, partitions=partitions, echo=click.echo)
    if not result["ok"]:
        sys.exit(1)


# -- groups --------------------------------------------------------------------------------------


@cli.group()
def groups():
    """List, describe, reset and delete consumer groups."""


@groups.command("list")
@click.pass_context
def groups_list(ctx):
    """List group ids with their state."""
    admin = _admin(ctx)
    for g in admin.list_groups():
        click.echo(f"{g['group_id']}\t{g['state']}\t{g['members']} member(s)")


@groups.command("describe")
@click.argument("group_id")
@click.pass_context
def groups_describe(ctx, group_id):
    """Members, assignment, committed offsets and lag of GROUP_ID."""
    admin = _admin(ctx)
    d = admin.describe_group(group_id)
    click.echo(f"group {d.group_id}  state {d.state}  generation {d.generation}  protocol {d.protocol}  "
               f"members {len(d.members)}")
    rows = [("topic", "partition", "committed", "end", "lag", "member")]
    for p in d.partitions:
        rows.append((p.topic, p.partition, "-" if p.committed is None else p.committed, p.end_offset,
                     p.lag, p.member or "-"))
    _table(rows)
    click.echo(f"total lag {d.total_lag}")


@groups.command("reset-offsets")
@click.argument("group_id")
@click.option("--topic", "topics", multiple=True, help="Only these topics (default: all the group committed).")
@click.option("--to", "to", required=True, help="earliest | latest | an offset | ts:<epoch ms>")
@click.pass_context
def groups_reset(ctx, group_id, topics, to):
    """Move GROUP_ID's committed offsets (the group must have no active members)."""
    admin = _admin(ctx)
    target: object = to
    if to.startswith("ts:"):
        target = {"timestamp_ms": int(to[3:])}
    elif to not in ("earliest", "latest"):
        target = int(to)
    new = admin.reset_offsets(group_id, to=target, topics=list(topics) or None)
    for tp, off in sorted(new.items()):
        click.echo(f"{tp.topic}\t{tp.partition}\t{off}")


@groups.command("delete")
@click.argument("group_id")
@click.pass_context
def groups_delete(ctx, group_id):
    """Delete GROUP_ID and its committed offsets (it must have no active members)."""
    admin = _admin(ctx)
    admin.delete_group(group_id)
    click.echo(f"deleted group {group_id}")


def _table(rows) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main(argv=None) -> None:
    """Entry point of the ``rayka`` script: rayka errors become one clear line and exit code 1."""
    start = time.monotonic()
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (RaykaError, TypeError, ValueError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        logging.getLogger(__name__).debug("took %.1fs", time.monotonic() - start)


if __name__ == "__main__":
    main()
