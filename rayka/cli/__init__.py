"""The ``rayka`` command line: topics, produce, consume, tail, groups, runtime, demo.

Every command connects like ``rayka.connect()``: to the Ray at ``--address``
(or ``RAY_ADDRESS``), else to the shared local runtime of the data dir (started
by the first command that needs it; ``rayka runtime stop`` ends it). Arguments
are checked by click before anything connects. Ray's own logs, warnings and
workers' output stay off the terminal unless ``--verbose``; Ctrl-C and SIGTERM
end a command with exit code 130 / 143 and no traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time

import click

from rayka.cli.base import ProduceFailed, _on_sigint, _on_sigterm, _signalled, _Terminated, cli
# The commands register themselves on ``cli`` when their modules load.
from rayka.cli import export_commands, gateway_commands, group_commands, record_commands, runtime_commands  # noqa: F401
from rayka.cli import topic_commands  # noqa: F401
from rayka.cli.topic_commands import human_bytes
from rayka.errors import RaykaError

__all__ = ["main", "cli", "human_bytes", "ProduceFailed"]


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
        if argv is None:
            _exit_now(0)
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
        if argv is None:
            _exit_now(1)
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


def _exit_now(code: int) -> None:
    """End the ``rayka`` process at once once the command is done (or failed with a clear line).

    Every command has already closed what it opened (producers flushed, consumers left their
    group, each waiting for the answer), so what remains is Ray's atexit shutdown and the
    interpreter's teardown of a thousand modules: about 0.8 s on the 2-core machine, half of an
    attached command's time. The head notices the closed connection and marks this driver dead.
    Only for the script (``main()`` with no argv); callers passing argv keep a normal exit.
    """
    if "ray" not in sys.modules:
        sys.exit(code)
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:  # a closed pipe: nothing more to say
        pass
    os._exit(code)


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
