"""Helpers for tests that use rayka (ours and users'): an embedded cluster in a temp dir,
bounded waits instead of sleeps, and the coordinator's manual clock.

    from rayka.testing import consume_all, embedded_cluster, wait_for

    def test_pipeline(tmp_path):
        with embedded_cluster(tmp_path) as cluster:
            rayka.Admin(cluster).create_topic("t")
            ...
            records = consume_all(consumer, 100, timeout_s=30)
            wait_for(lambda: admin.describe_group("g").total_lag == 0, 30, what="lag 0")

Each ``embedded_cluster`` gets its own rayka cluster name, so many can share one Ray
session; on exit its actors are killed and (by default) its files deleted. For pytest,
:mod:`rayka.pytest_plugin` has the same as fixtures. For fault tests, :mod:`rayka.checker`
records a producer's history and checks the log read back against it (Jepsen-style: lost,
duplicated, reordered, wrong). Importing this module loads no Ray.
"""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rayka.coordinator.clock import ManualClock

__all__ = ["embedded_cluster", "start_local_ray", "wait_for", "consume_all", "ManualClock", "pause_heartbeats",
           "resume_heartbeats", "told_to_rejoin"]


def wait_for(predicate, timeout_s: float = 30.0, interval_s: float = 0.05, what: str = "condition"):
    """Call ``predicate`` until it returns something true, and return that; AssertionError
    naming ``what`` after ``timeout_s`` (a deadline, not a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def consume_all(consumer, n: int, timeout_s: float = 60.0, *, max_records: int = 10_000) -> list:
    """Poll ``consumer`` until ``n`` records arrived or ``timeout_s`` passed; the records, in the
    order polled (check their number: at the deadline there may be fewer)."""
    out: list = []
    deadline = time.monotonic() + timeout_s
    while len(out) < n and time.monotonic() < deadline:
        out += consumer.poll(timeout_ms=500, max_records=max_records)
    return out


def _membership(consumer):
    from rayka.clients.consumer import group_membership

    group = group_membership(consumer)
    if group is None:
        raise ValueError("this Consumer has no group_id, so no group membership or heartbeats")
    return group


def pause_heartbeats(consumer) -> None:
    """Stop a group consumer's heartbeats (and wait for its heartbeat thread to end), as a paused
    process (GC, SIGSTOP) would; with no poll() either, the group drops it after its timeouts."""
    _membership(consumer).pause_heartbeats()


def resume_heartbeats(consumer) -> None:
    """Start a group consumer's heartbeats again after :func:`pause_heartbeats`."""
    _membership(consumer).resume_heartbeats()


def told_to_rejoin(consumer) -> bool:
    """Whether a group consumer's heartbeat heard of a rebalance (its next poll joins again)."""
    return _membership(consumer).told_to_rejoin


def start_local_ray(num_cpus: int = 2, **kwargs) -> None:
    """Start a local Ray for tests (loopback, no dashboard) unless one is running."""
    import ray

    if not ray.is_initialized():
        # address="local": a Ray of its own, never another process's head found on this machine
        # (test sessions running side by side would otherwise attach to each other's).
        kwargs.setdefault("address", "local")
        ray.init(num_cpus=num_cpus, include_dashboard=False, namespace="rayka", **kwargs)


@contextmanager
def embedded_cluster(data_dir: str | os.PathLike | None = None, *, num_cpus: int = 2,
                     delete_data: bool = True) -> Iterator["rayka.Cluster"]:  # noqa: F821
    """A fresh rayka cluster on the local Ray (started if needed), torn down on exit."""
    import rayka

    start_local_ray(num_cpus)
    tmp = None
    if data_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="rayka-")
        data_dir = tmp.name
    cluster = rayka.connect(data_dir=Path(data_dir) / "data", cluster_name=f"test-{uuid.uuid4().hex[:10]}")
    try:
        yield cluster
    finally:
        try:
            cluster.shutdown(delete_data=delete_data)
        finally:
            if tmp is not None:
                tmp.cleanup()
