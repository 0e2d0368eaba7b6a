"""``rayka produce``, ``consume``, ``tail`` and ``demo``: records in and out of topics."""

from __future__ import annotations

import contextlib
import sys

import click

from rayka.cli.base import (
    ProduceFailed,
    _connect,
    cli,
    connection_options,
)

__all__ = ["produce", "consume", "tail", "demo"]


_FORMATS = ["bytes", "str", "json", "msgpack", "pickle"]


def _finite(ctx, param, value):
    if value is not None and value != value:  # NaN passes every range check
        raise click.BadParameter("must be a number, not nan")
    return value


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
--key-format/--value-format (untyped topics; default bytes): how the key and value text
becomes the record's bytes: bytes (as it is), str (UTF-8, checked), json (read as JSON,
written compact), msgpack or pickle (read as JSON, written in that format).
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
@click.option("--key-format", type=click.Choice(_FORMATS), default="bytes", show_default=True,
              help="How each key's text is encoded (see above).")
@click.option("--value-format", type=click.Choice(_FORMATS), default="bytes", show_default=True,
              help="How each value's text is encoded (see above; untyped topics only).")
@click.option("--partition", type=click.IntRange(min=0), default=None, help="Send every record to this partition.")
@click.option("--linger-ms", type=click.FloatRange(min=0), default=5, show_default=True, callback=_finite,
              help="How long a batch waits for more records before it is sent.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: for --file, if stderr is a terminal; for stdin, off).")
@click.pass_context
def produce(ctx, topic, path, fmt, key_sep, key_format, value_format, partition, linger_ms, progress):
    import rayka
    from rayka.clients import console, formats
    from rayka.clients.cli_codecs import produce_codec

    if fmt == "parquet" and path is None:
        raise click.UsageError("--format parquet needs --file (Parquet cannot stream from stdin)")
    if key_sep is not None and (fmt or "raw") != "raw":
        raise click.UsageError("--key-sep is for --format raw; JSON and CSV name the key field")
    if path is not None and fmt is None:
        fmt = formats.format_of(path)
    coded = (key_format, value_format) != ("bytes", "bytes")
    if coded and path is not None and fmt != "raw":
        raise click.UsageError("--key-format/--value-format apply to records sent one by one (stdin, or "
                               "--format raw); a file is sent in bulk as its columns are")
    cluster = _connect(ctx)
    meta, _ = cluster.topic(topic, refresh=True)
    if value_format != "bytes" and meta.value_schema is not None:
        raise click.UsageError(f"topic {topic} has a schema: its values are columns, not encoded bytes; "
                               "drop --value-format")
    failed: list[BaseException] = []  # appended from the producer's callback thread
    codecs = {"key_serializer": produce_codec(key_format, "--key-format"),
              "value_serializer": produce_codec(value_format, "--value-format")}
    with rayka.Producer(linger_ms=linger_ms, **{k: v for k, v in codecs.items() if v is not None}) as producer:
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
        click.option("--key-format", type=click.Choice(_FORMATS), default="bytes", show_default=True,
                     help="Decode each key with this format and print it as text (JSON for non-strings)."),
        click.option("--value-format", type=click.Choice(_FORMATS), default="bytes", show_default=True,
                     help="Decode each value with this format and print it as text (JSON for non-strings)."),
        click.option("--allow-pickle", is_flag=True,
                     help="Allow --key-format/--value-format pickle (unpickling runs code: trusted topics only)."),
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


def _consume_codecs(options: dict) -> dict:
    """The Consumer's deserializers for --key-format/--value-format (popped from ``options``)."""
    from rayka.clients.cli_codecs import consume_codec
    from rayka.errors import ConfigError

    allow = options.pop("allow_pickle")
    out = {}
    for what in ("key", "value"):
        name = options.pop(f"{what}_format")
        try:
            codec = consume_codec(name, f"--{what}-format", allow_pickle=allow)
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        if codec is not None:
            out[f"{what}_deserializer"] = codec
    return out


@cli.command()
@connection_options
@click.argument("topic")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record (default: only new ones).")
@click.option("--client-rack", default=None, metavar="VALUE",
              help="Read from an in-sync replica near this process: 'local' (on its Ray node) or a rayka-zone "
                   "name; else, and by default, from each partition's leader.")
@_output_options
@click.pass_context
def consume(ctx, topic, from_beginning, group_id, client_rack, **options):
    """Print records of TOPIC (stops at --max, after --timeout-ms idle, or on Ctrl-C)."""
    import rayka

    _connect(ctx)
    codecs = _consume_codecs(options)
    consumer = rayka.Consumer(topic, group_id=group_id, auto_offset_reset="earliest" if from_beginning else "latest",
                              client_rack=client_rack, **codecs)
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
    codecs = _consume_codecs(options)
    consumer = rayka.Consumer(topic, group_id=group_id, auto_offset_reset="latest", **codecs)
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
