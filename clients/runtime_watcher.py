"""The idle watcher of a shared local runtime: stops it after no client was attached for a while.

Started by :func:`rayka.clients.runtime.start` as a detached process
(``python -m rayka.clients.runtime_watcher DATA_DIR IDLE_TIMEOUT_S``) when an idle
timeout is configured. It is not a Ray driver itself: every poll it reads the
head's job table from the GCS and counts the drivers alive (scripts, notebooks,
CLI commands that called ``ray.init``). Once none has been attached for the whole
timeout it stops the runtime as ``rayka runtime stop`` does, then exits. It exits
as well when the runtime it watches is gone or replaced.
"""

from __future__ import annotations

import logging
import sys
import time

from rayka.clients import runtime

log = logging.getLogger("rayka.runtime_watcher")


def watch(data_dir: str, idle_timeout_s: float, *, clock=time.monotonic, sleep=time.sleep) -> str:
    """Run until the runtime stops or is stopped here; why it ended."""
    first = runtime.find(data_dir)
    if first is None:
        return "no runtime"
    poll_s = min(1.0, idle_timeout_s / 4)
    idle_since: float | None = None
    while True:
        info = runtime.find(data_dir)
        if info is None or info.pid != first.pid:
            return "runtime gone"
        try:
            attached = runtime.idle_drivers(info.address)
        except Exception as exc:  # the head is going away: the next find() tells
            log.info("cannot read the job table: %s", exc)
            attached = 1
        now = clock()
        if attached:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= idle_timeout_s:
            log.warning("no client attached for %.0f s: stopping the runtime of %s", idle_timeout_s, data_dir)
            if runtime.stop(data_dir, if_idle=True) is not None:
                return "stopped idle runtime"
            idle_since = None  # a client attached just now: keep running
        sleep(poll_s)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s watcher: %(message)s")
    print(watch(argv[0], float(argv[1])), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
