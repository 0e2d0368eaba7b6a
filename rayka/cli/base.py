"""What every ``rayka`` command shares: the root ``cli`` group and its connection options,
connecting (once per command), signal handling (Ctrl-C and SIGTERM unwind, then exit 130 /
143), config parsing and the plain-text table and JSON output."""

from __future__ import annotations

import json
import logging
import os
import signal

import click

__all__ = ["cli", "connection_options", "ProduceFailed"]


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


def _table(rows) -> None:
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
