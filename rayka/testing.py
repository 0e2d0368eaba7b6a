"""Helpers for tests that use rayka (ours and users'): an embedded cluster in a temp dir.

    from rayka.testing import embedded_cluster

    def test_pipeline(tmp_path):
        with embedded_cluster(tmp_path) as cluster:
            rayka.Admin(cluster).create_topic("t")
            ...

Each call gets its own rayka cluster name, so many can share one Ray session;
on exit its actors are killed and (by default) its files deleted.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

__all__ = ["embedded_cluster", "start_local_ray"]


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
