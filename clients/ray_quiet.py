"""Keeping Ray quiet: the ``ray.init`` arguments and the stderr filter rayka attaches with.

Ray's logs, warnings and workers' output are Ray's business, not the user's: they stay off
the terminal unless ``RAYKA_VERBOSE=1`` (``rayka --verbose``). A leaf module (it imports no
other rayka module), shared by connect() and the runtime's stop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

__all__ = ["verbose", "quiet_ray_init_kwargs", "quiet_stderr", "_quiet_stderr"]


def verbose() -> bool:
    """``RAYKA_VERBOSE=1`` (``rayka --verbose``) lets Ray's own logs and worker output through."""
    return os.environ.get("RAYKA_VERBOSE", "") not in ("", "0")


def quiet_ray_init_kwargs() -> dict:
    """``ray.init`` arguments that keep Ray's logs, warnings and workers' output off the terminal."""
    if verbose():
        return dict(include_dashboard=False, logging_level=logging.INFO, log_to_driver=True)
    # The driver's C++ core worker logs to stderr; warnings there are Ray's business, not the user's.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "error")
    return dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False,
                configure_logging=True)


@contextlib.contextmanager
def _quiet_stderr():
    """Drop the one line Ray's C++ logger prints when it reads RAY_BACKEND_LOG_LEVEL.

    fd 2 goes to a temp file while ``ray.init`` runs; everything else written there is
    passed on to the real stderr afterwards.
    """
    if verbose():
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = False
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        except BaseException:
            failed = True  # Ray's retry warnings: the error raised says it in one line
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            rest = [line for line in tmp.read().splitlines(keepends=True)
                    if b"Set ray log level from environment variable" not in line]
            if rest and not failed:
                os.write(2, b"".join(rest))


quiet_stderr = _quiet_stderr
