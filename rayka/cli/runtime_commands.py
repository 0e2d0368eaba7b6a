"""``rayka runtime ...``: status, start and stop of the data dir's shared local runtime."""

from __future__ import annotations

import os
import sys

import click

from rayka.cli.base import (
    _data_dir,
    _echo_json,
    _json_option,
    _obj,
    cli,
    connection_options,
)

__all__ = ["runtime"]


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
@_json_option
@click.pass_context
def runtime_status(ctx, as_json):
    """Address, pid, uptime, topics and actors of the running runtime (exit 1 if none runs)."""
    from rayka.clients import runtime as local
    from rayka.coordinator.metadata import METADATA_FILE, MetadataStore

    data_dir = _data_dir(ctx)
    st = local.status(data_dir)
    if st is None:
        if as_json:
            _echo_json({"running": False, "data_dir": str(data_dir)})
        else:
            click.echo(f"no rayka runtime is running for {data_dir} (rayka runtime start starts one)")
        sys.exit(1)
    info = st["info"]
    try:
        topics = MetadataStore(os.path.join(info.data_dir, METADATA_FILE)).load_all()[0]  # name -> stored fields
    except Exception:  # a half-written metadata file must not break status
        topics = {}
    if as_json:
        _echo_json({"running": True, "address": info.address, "pid": info.pid, "data_dir": info.data_dir,
                    "uptime_s": round(st["uptime_s"], 1), "owner": info.owner, "clients": st["drivers"],
                    "idle_timeout_s": info.idle_timeout_s, "topics": sorted(topics),
                    "partitions_alive": st["partitions_alive"], "actors_alive": st["actors_alive"],
                    "clusters": st["coordinators"], "kafka_gateways": st["gateways"]})
        return
    idle = "off" if info.idle_timeout_s is None else f"{info.idle_timeout_s:g}s"
    click.echo(f"running      {info.address}  pid {info.pid}  up {_uptime(st['uptime_s'])}")
    click.echo(f"data dir     {info.data_dir}")
    click.echo(f"started by   pid {info.owner.get('pid')} ({info.owner.get('user')}@{info.owner.get('host')})")
    click.echo(f"clients      {st['drivers']} attached  idle timeout {idle}")
    click.echo(f"topics       {len(topics)}" + (f" ({', '.join(sorted(topics)[:8])}"
                                                  + (", ..." if len(topics) > 8 else "") + ")" if topics else ""))
    click.echo(f"actors       {st['partitions_alive']} partition(s) alive, {st['actors_alive']} actor(s) in all; "
               f"rayka clusters: {', '.join(st['coordinators']) or '-'}")
    if st["gateways"]:
        click.echo(f"kafka        {st['gateways']} Kafka gateway actor(s) alive")


@runtime.command("start")
@connection_options
@click.option("--idle-timeout", default=None, callback=_parse_idle,
              help="Stop the runtime after no client was attached for this long (30m, 90s, 2h).")
@click.option("--kafka-port", type=click.IntRange(0, 65535), default=None,
              help="Also serve the Kafka protocol: a gateway per node on 127.0.0.1:PORT (PORT+1, ... "
                   "for further nodes; 0: free ports).")
@click.pass_context
def runtime_start(ctx, idle_timeout, kafka_port):
    """Start the shared local runtime of the data dir (or show the running one).

    With ``--kafka-port`` the runtime also gets a Kafka endpoint (``rayka.gateway.start``):
    Kafka clients then use ``bootstrap.servers=127.0.0.1:PORT``. A runtime with a gateway
    counts as in use, so an idle timeout does not stop it under its Kafka clients.
    """
    from rayka.clients import runtime as local

    info, started = local.start(_data_dir(ctx), num_cpus=_obj(ctx)["num_cpus"], idle_timeout_s=idle_timeout)
    idle = "" if info.idle_timeout_s is None else f", idle timeout {info.idle_timeout_s:g}s"
    click.echo(f"{'started' if started else 'already running'}: {info.address} (pid {info.pid}{idle})")
    if kafka_port is not None:
        import rayka.gateway
        from rayka.cli.base import _connect

        gateways = rayka.gateway.start(port=kafka_port, cluster=_connect(ctx))
        click.echo("Kafka gateway: bootstrap.servers=" + ",".join(f"{h}:{p}" for _, h, p in gateways))


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
