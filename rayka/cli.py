"""The ``rayka`` command line: topics, produce, consume, tail, groups, runtime, demo.

Every command connects like ``rayka.connect()``: to the Ray at ``--address``
(or ``RAY_ADDRESS``), else to the shared local runtime of the data dir (started
by the first command that needs it; ``rayka runtime stop`` ends it). Arguments
are checked by click before anything connects. Ray's own logs, warnings and
workers' output stay off the terminal unless ``--verbose``; Ctrl-C and SIGTERM
end a command with exit code 130 / 143 and no traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time

import click

from rayka.errors import RaykaError

__all__ = ["main"]


class ProduceFailed(click.ClickException):
    """Some records of ``rayka produce`` were not acknowledged (exit code 1)."""


class _Terminated(BaseException):
    """SIGTERM arrived: unwind (closing consumers and producers) and exit with 143."""


_signalled: list[int] = []  # the exit code a signal asked for (130 / 143)


def _on_sigterm(signum, frame):
    _signalled.append(143)
    raise _Terminated()


def _on_sigint(signum, frame):
    _signalled.append(130)
    raise KeyboardInterrupt()


def _connect(ctx: click.Context):
    import rayka

    obj = _obj(ctx)
    if obj.get("cluster") is None:
        obj["cluster"] = rayka.connect(address=obj["address"], data_dir=obj["data_dir"],
                                       cluster_name=obj["cluster_name"], num_cpus=obj["num_cpus"])
        signal.signal(signal.SIGTERM, _on_sigterm)  # ray.init installed its own (exit code 15)
        signal.signal(signal.SIGINT, _on_sigint)
    return obj["cluster"]


def _obj(ctx: click.Context) -> dict:
    root = ctx.find_root()
    if root.obj is None:
        root.obj = {"address": None, "data_dir": None, "cluster_name": None, "num_cpus": None, "cluster": None}
    return root.obj


def _data_dir(ctx: click.Context):
    from rayka.config import default_data_dir

    return _obj(ctx)["data_dir"] or default_data_dir()


def _set_global(name: str):
    def callback(ctx, param, value):
        if value is not None and value is not False:
            _obj(ctx)[name] = value
            if name == "verbose":
                _set_verbose()
        return value
    return callback


def _set_verbose() -> None:
    os.environ["RAYKA_VERBOSE"] = "1"
    logging.getLogger().setLevel(logging.INFO)


def connection_options(f):
    """--address/--data-dir/--cluster/--num-cpus/--verbose, also accepted after the subcommand."""
    options = [
        click.option("--address", default=None, expose_value=False, callback=_set_global("address"),
                     help="Ray cluster address (default: the data dir's shared local runtime)."),
        click.option("--data-dir", default=None, type=click.Path(file_okay=False), expose_value=False,
                     callback=_set_global("data_dir"), help="Where partitions keep their files."),
        click.option("--cluster", default=None, expose_value=False, callback=_set_global("cluster_name"),
                     help="Name of the rayka cluster on that Ray."),
        click.option("--num-cpus", type=click.IntRange(min=1), default=None, expose_value=False,
                     callback=_set_global("num_cpus"), help="CPUs of a local runtime this command starts."),
        click.option("-v", "--verbose", is_flag=True, default=None, expose_value=False,
                     callback=_set_global("verbose"), help="Show Ray's logs and workers' output."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


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


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def _formats():
    from rayka.clients import formats

    return formats


def _render():
    from rayka.clients import render

    return render


@click.group()
@click.option("--address", envvar="RAYKA_ADDRESS", default=None,
              help="Ray cluster address (default: the data dir's shared local runtime, started if needed).")
@click.option("--data-dir", envvar="RAYKA_DATA_DIR", default=None, type=click.Path(file_okay=False),
              help="Where partitions keep their files (default ~/.rayka/data).")
@click.option("--cluster", "cluster_name", envvar="RAYKA_CLUSTER", default=None,
              help="Name of the rayka cluster on that Ray (default 'default').")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None,
              help="CPUs of a local runtime this command starts (default: all).")
@click.option("-v", "--verbose", is_flag=True, help="Show Ray's logs, warnings and workers' output.")
@click.pass_context
def cli(ctx, address, data_dir, cluster_name, num_cpus, verbose):
    """rayka: a Kafka-style log on Ray."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if verbose:
        _set_verbose()
    obj = _obj(ctx)
    for key, value in (("address", address), ("data_dir", data_dir), ("cluster_name", cluster_name),
                       ("num_cpus", num_cpus)):
        if value is not None:
            obj[key] = value


# -- topics --------------------------------------------------------------------------------------


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
              help="Typed values: NAME:TYPE,... in pyarrow's type names (e.g. sym:string,px:double).")
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
    rows = [("partition", "start", "end", "messages", "size", "segments", "leader")]
    for p in desc.partitions:
        rows.append((p.partition, p.log_start_offset, p.log_end_offset, p.log_end_offset - p.log_start_offset,
                     human_bytes(p.size_bytes), "-" if p.segments is None else p.segments,
                     _node_label(p.leader, nodes)))
    _table(rows)
    for p in desc.partitions:
        for first, last in p.damaged_offsets:
            click.echo(f"partition {p.partition}: offsets {first}..{last} are damaged (reads raise; seek past them)")
    config = {k: v for k, v in sorted(desc.config.items()) if v is not None}
    click.echo("config: " + ", ".join(f"{k}={v}" for k, v in config.items()))


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
@click.pass_context
def topics_config(ctx, name):
    """Show the config of topic NAME (KEY VALUE per line)."""
    config = _admin(ctx).describe_topic_config(name)
    _table([("key", "value")] + sorted(config.items()))


# -- produce / consume ---------------------------------------------------------------------------


_PRODUCE_HELP = """Send records to TOPIC from standard input or, in bulk, from a --file.

\b
Formats (--format, default raw for stdin, from the suffix for a file):
  raw      one record per line, the line's bytes as its value (--key-sep splits off a key)
  json     JSON lines: {"key", "value", "headers", "timestamp_ms"}; a typed topic (created
           with a schema) takes its columns by name instead of "value". A string value is
           sent as its UTF-8 bytes, other JSON as its JSON text; fields listed in "base64"
           are base64 (what `rayka consume --format json` prints can be produced again)
  csv      a header row; columns key, timestamp_ms and value (or the topic's columns);
           an empty cell is null
  parquet  (--file only) the same columns, plus headers as map<string, binary>
\b
A file is read and checked whole first (a bad line or column sends nothing), then sent
in bulk with send_table; lines from stdin are sent as they come.
"""


@cli.command(help=_PRODUCE_HELP)
@connection_options
@click.argument("topic")
@click.option("--file", "path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Send this .jsonl/.json, .csv or .parquet file in bulk.")
@click.option("--format", "fmt", type=click.Choice(["raw", "json", "csv", "parquet"]), default=None,
              help="Input format (default: raw for stdin, the file's suffix for --file).")
@click.option("--key-sep", default=None, help="raw: split each line at the first SEP into key and value.")
@click.option("--partition", type=int, default=None, help="Send every record to this partition.")
@click.option("--linger-ms", type=float, default=5, show_default=True)
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: for --file, if stderr is a terminal; for stdin, off).")
@click.pass_context
def produce(ctx, topic, path, fmt, key_sep, partition, linger_ms, progress):
    import rayka
    from rayka.clients import console, formats

    if fmt == "parquet" and path is None:
        raise click.UsageError("--format parquet needs --file (Parquet cannot stream from stdin)")
    if key_sep is not None and (fmt or "raw") != "raw":
        raise click.UsageError("--key-sep is for --format raw; JSON and CSV name the key field")
    if path is not None and fmt is None:
        fmt = formats.format_of(path)
    cluster = _connect(ctx)
    meta, _ = cluster.topic(topic, refresh=True)
    failed: list[BaseException] = []  # appended from the producer's callback thread
    with rayka.Producer(linger_ms=linger_ms) as producer:
        if path is not None and fmt != "raw":
            source = formats.FileSource(path, meta.value_schema, fmt, topic=topic,
                                        max_message_bytes=meta.topic_config.max_message_bytes)
            count = console.produce_file(producer, topic, source, partition=partition,
                                         progress=console.want_progress(progress))
        else:
            with open(path, "rb") if path is not None else contextlib.nullcontext(sys.stdin.buffer) as stream:
                count = console.produce_stream(producer, topic, stream, fmt or "raw", meta.value_schema,
                                               key_sep=key_sep, partition=partition,
                                               progress=bool(progress), on_error=failed.append)
    if failed:
        raise ProduceFailed(f"{len(failed)} of {count} record(s) to {topic} were not written: {failed[0]}")
    click.echo(f"produced {count} record(s) to {topic}", err=True)


def _output_options(command):
    """--format and the raw-line options, shared by consume and tail."""
    for option in reversed([
        click.option("--format", "fmt", type=click.Choice(["raw", "json", "table"]), default="raw", show_default=True,
                     help="raw: the value's bytes (typed values as JSON), one per line; json: one object per "
                          "record (topic, partition, offset, timestamp_ms, key, headers, value); bytes are "
                          "printed as UTF-8 text where valid, else as base64 with the field named in the "
                          "record's \"base64\" list; table: aligned columns."),
        click.option("--max", "max_records", type=click.IntRange(min=0), default=None,
                     help="Stop after this many records."),
        click.option("--group", "group_id", default=None, help="Consume as a member of this group (commits offsets)."),
        click.option("--timeout-ms", type=click.IntRange(min=0), default=None,
                     help="Stop after this long without a record (default: wait until Ctrl-C)."),
        click.option("--print-key", is_flag=True, help="raw: print KEY<sep>VALUE."),
        click.option("--print-offset", is_flag=True, help="raw: print partition:offset before each record."),
        click.option("--key-sep", default="\t", show_default="tab", help="raw: the separator of those fields."),
        click.option("--progress/--no-progress", default=None,
                     help="Progress bar on stderr (default: if it is a terminal and --max is given)."),
    ]):
        command = option(command)
    return command


def _print_records(ctx, consumer, topic, *, fmt, max_records, timeout_ms, print_key, print_offset, key_sep,
                   progress, group_id, on_ready=None) -> int:
    from rayka.clients import console

    meta, _ = _connect(ctx).topic(topic)
    out = sys.stdout.buffer
    write = console.record_writer(fmt, meta.value_schema, out, print_key=print_key, print_offset=print_offset,
                                  key_sep=key_sep)
    show = console.want_progress(progress) if progress is not None else (max_records is not None
                                                                         and console.want_progress(None))
    try:
        with console.stop_on_signals() as stop:
            seen = console.consume_loop(consumer, write, out=out, max_records=max_records, timeout_ms=timeout_ms,
                                        stop=stop, progress=show, on_ready=on_ready)
            if group_id is not None:
                consumer.commit()
    finally:
        consumer.close()
    return seen


@cli.command()
@connection_options
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record (default: only new ones).")
@_output_options
@click.pass_context
def consume(ctx, topic, from_beginning, group_id, **options):
    """Print records of TOPIC (stops at --max, after --timeout-ms idle, or on Ctrl-C)."""
    import rayka

    _connect(ctx)
    consumer = rayka.Consumer(topic, group_id=group_id, auto_offset_reset="earliest" if from_beginning else "latest")
    seen = _print_records(ctx, consumer, topic, group_id=group_id, **options)
    click.echo(f"consumed {seen} record(s) from {topic}", err=True)


@cli.command()
@connection_options
@click.argument("topic")
@_output_options
@click.pass_context
def tail(ctx, topic, group_id, **options):
    """Print new records of TOPIC as they arrive, from all partitions, like `tail -f`.

    Starts at the end of every partition and runs until Ctrl-C (or --max, --timeout-ms).
    With --group it joins that group instead: it shares the partitions with the group's
    other members, starts where the group left off (the end, if it committed nothing)
    and commits what it printed.
    """
    import rayka

    _connect(ctx)
    consumer = rayka.Consumer(topic, group_id=group_id, auto_offset_reset="latest")
    if group_id is None:
        consumer.seek_to_end()

    def ready():
        parts = len(consumer.assignment())
        click.echo(f"tailing {topic} ({parts} partition(s)){' as group ' + group_id if group_id else ''}; "
                   "Ctrl-C to stop", err=True)

    seen = _print_records(ctx, consumer, topic, group_id=group_id, on_ready=ready, **options)
    click.echo(f"tail: {seen} record(s) from {topic}", err=True)


# -- demo ----------------------------------------------------------------------------------------


@cli.command()
@connection_options
@click.option("--messages", default=1_000_000, show_default=True, type=click.IntRange(min=1))
@click.option("--partitions", default=4, show_default=True, type=click.IntRange(min=1))
@click.option("--reset", is_flag=True, help="Replace the topic 'demo' (and group 'demo-group') if they exist.")
@click.option("--progress/--no-progress", default=None, help="Progress bars on stderr (default: if it is a terminal).")
@click.pass_context
def demo(ctx, messages, partitions, reset, progress):
    """Create topic 'demo', produce, consume it with a group, and print what happened.

    An existing 'demo' topic is left alone (the command fails) unless --reset is given.
    """
    from rayka.demo import run_demo

    cluster = _connect(ctx)
    from rayka.clients.console import want_progress

    result = run_demo(cluster, messages=messages, partitions=partitions, echo=click.echo, reset=reset,
                      progress=want_progress(progress))
    if cluster.runtime is not None:
        click.echo(f"the local runtime keeps running at {cluster.runtime.address} for the next commands; "
                   "`rayka runtime stop` stops it")
    if not result["ok"]:
        sys.exit(1)


# -- groups --------------------------------------------------------------------------------------


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


# -- runtime -------------------------------------------------------------------------------------


@cli.group()
def runtime():
    """Show, start and stop the shared local runtime of the data dir."""


def _parse_idle(ctx, param, value):
    if value is None:
        return None
    from rayka.clients.runtime import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


@runtime.command("status")
@connection_options
@click.pass_context
def runtime_status(ctx):
    """Address, pid, uptime, topics and actors of the running runtime (exit 1 if none runs)."""
    from rayka.clients import runtime as local
    from rayka.coordinator.metadata import METADATA_FILE, MetadataStore

    data_dir = _data_dir(ctx)
    st = local.status(data_dir)
    if st is None:
        click.echo(f"no rayka runtime is running for {data_dir} (rayka runtime start starts one)")
        sys.exit(1)
    info = st["info"]
    try:
        topics = MetadataStore(os.path.join(info.data_dir, METADATA_FILE)).load()
    except Exception:  # a half-written metadata file must not break status
        topics = {}
    idle = "off" if info.idle_timeout_s is None else f"{info.idle_timeout_s:g}s"
    click.echo(f"running      {info.address}  pid {info.pid}  up {_uptime(st['uptime_s'])}")
    click.echo(f"data dir     {info.data_dir}")
    click.echo(f"started by   pid {info.owner.get('pid')} ({info.owner.get('user')}@{info.owner.get('host')})")
    click.echo(f"clients      {st['drivers']} attached  idle timeout {idle}")
    click.echo(f"topics       {len(topics)}" + (f" ({', '.join(sorted(topics)[:8])}"
                                                  + (", ..." if len(topics) > 8 else "") + ")" if topics else ""))
    click.echo(f"actors       {st['partitions_alive']} partition(s) alive, {st['actors_alive']} actor(s) in all; "
               f"rayka clusters: {', '.join(st['coordinators']) or '-'}")


@runtime.command("start")
@connection_options
@click.option("--idle-timeout", default=None, callback=_parse_idle,
              help="Stop the runtime after no client was attached for this long (30m, 90s, 2h).")
@click.pass_context
def runtime_start(ctx, idle_timeout):
    """Start the shared local runtime of the data dir (or show the running one)."""
    from rayka.clients import runtime as local

    info, started = local.start(_data_dir(ctx), num_cpus=_obj(ctx)["num_cpus"], idle_timeout_s=idle_timeout)
    idle = "" if info.idle_timeout_s is None else f", idle timeout {info.idle_timeout_s:g}s"
    click.echo(f"{'started' if started else 'already running'}: {info.address} (pid {info.pid}{idle})")


@runtime.command("stop")
@connection_options
@click.pass_context
def runtime_stop(ctx):
    """Close rayka's actors cleanly, then stop the runtime's Ray head."""
    from rayka.clients import runtime as local

    data_dir = _data_dir(ctx)
    info = local.stop(data_dir)
    if info is None:
        click.echo(f"no rayka runtime is running for {data_dir}")
    else:
        click.echo(f"stopped the runtime at {info.address} (pid {info.pid})")


def _table(rows) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def main(argv=None) -> None:
    """Entry point of the ``rayka`` script: rayka errors become one clear line and exit code 1.

    Ctrl-C exits with 130 and SIGTERM with 143, without a traceback.
    """
    start = time.monotonic()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, _on_sigint)
    if "-v" not in (argv or sys.argv[1:]) and "--verbose" not in (argv or sys.argv[1:]):
        _quiet_ray_loggers()
    try:
        cli.main(args=argv, standalone_mode=False)
        _late_signals()
    except (click.exceptions.Abort, KeyboardInterrupt):
        _exit_quietly(130)
    except _Terminated:
        _exit_quietly(143)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (RaykaError, TypeError, ValueError) as exc:
        if _signalled:
            _exit_quietly(_signalled[0])
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except Exception:
        # A signal raised inside a Ray call can come out wrapped (SystemError): still a clean exit.
        if _signalled:
            _exit_quietly(_signalled[0])
        raise
    finally:
        logging.getLogger(__name__).debug("took %.1fs", time.monotonic() - start)


def _late_signals() -> None:
    """The command is done; a signal during the exit (Ray's atexit shutdown) ends the process at
    once with its code instead of raising inside an atexit callback (a traceback, exit 0)."""
    signal.signal(signal.SIGTERM, lambda *_: os._exit(143))
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


def _quiet_ray_loggers() -> None:
    # Ray logs through the "ray" logger tree; its warnings are not the user's business here.
    logging.getLogger("ray").setLevel(logging.ERROR)


def _exit_quietly(code: int) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not interrupt the exit
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        sys.stdout.flush()
    except Exception:  # a closed pipe: nothing more to say
        pass
    sys.exit(code)


if __name__ == "__main__":
    main()
