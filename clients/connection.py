"""connect(): attach to (or start) Ray, and find (or start) the rayka coordinator.

Embedded by default: with no Ray running and no address given, a local Ray is
started in this process (it ends with the process; the data stays in the data
dir). ``address="auto"`` or an address attaches to an existing Ray cluster, as
does ``RAY_ADDRESS`` in the environment. The coordinator is a named, detached
actor, so every process on the cluster that connects with the same
``cluster_name`` shares it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ray
from ray.exceptions import ActorUnschedulableError, RayActorError, RayTaskError

from rayka.config import DEFAULT_NAMESPACE, default_data_dir
from rayka.errors import ConfigError, CoordinatorUnavailableError, PartitionUnavailableError, RaykaError

__all__ = ["Cluster", "connect", "current", "resolve", "unwrap"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_current: "Cluster | None" = None


def unwrap(exc: BaseException, what: str = "partition") -> BaseException:
    """Turn a Ray error into the rayka error a user should see."""
    if isinstance(exc, RayTaskError):
        cause = getattr(exc, "cause", None)
        if isinstance(cause, RaykaError):
            return cause
        if isinstance(cause, RayActorError):
            exc = cause
        elif cause is not None:
            return cause
    kind = CoordinatorUnavailableError if what == "coordinator" else PartitionUnavailableError
    if isinstance(exc, ActorUnschedulableError):
        err = kind(
            f"the {what} actor cannot run: the Ray node that holds its files is gone. With one "
            "replica per partition its records are unavailable until that node returns"
        )
        err.retriable = False  # waiting will not bring the node back
        return err
    if isinstance(exc, RayActorError):
        return kind(f"the {what} actor is unavailable (it died or is restarting): {exc.__class__.__name__}")
    return exc


def resolve(ref, what: str = "partition", timeout: float | None = None):
    """``ray.get`` that raises rayka errors instead of Ray's wrappers."""
    try:
        return ray.get(ref, timeout=timeout)
    except (RayTaskError, RayActorError, ActorUnschedulableError) as exc:
        raise unwrap(exc, what) from None


@dataclass
class _TopicEntry:
    meta: object
    handles: list
    fetched: float


class Cluster:
    """A connection to one rayka cluster: the coordinator handle and cached topic metadata."""

    def __init__(self, coordinator, *, cluster_name: str, namespace: str, data_dir: str, started_ray: bool):
        self.coordinator = coordinator
        self.cluster_name = cluster_name
        self.namespace = namespace
        self.data_dir = data_dir
        self.started_ray = started_ray
        self._topics: dict[str, _TopicEntry] = {}
        self._lock = threading.Lock()

    def call(self, method: str, *args, retry_s: float = 60.0, bounded: bool = False, **kwargs):
        """Call a coordinator method and wait for it, retrying while the coordinator restarts.

        Retries stop ``retry_s`` from now (CoordinatorUnavailableError); with ``bounded``, each
        attempt also waits for its answer only until then (ray's GetTimeoutError after).
        """
        deadline = time.monotonic() + retry_s
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if bounded else None
            try:
                return resolve(getattr(self.coordinator, method).remote(*args, **kwargs), "coordinator",
                               timeout=timeout)
            except CoordinatorUnavailableError:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise
                time.sleep(min(0.2, remaining))  # it is restarting (Ray restarts it): try again

    def topic(self, name: str, *, refresh: bool = False):
        """(TopicMetadata, [partition actor handles]), cached until ``refresh``."""
        with self._lock:
            entry = self._topics.get(name)
        if entry is None or refresh:
            meta, handles = self.call("topic", name)
            entry = _TopicEntry(meta, handles, time.monotonic())
            with self._lock:
                self._topics[name] = entry
        return entry.meta, entry.handles

    def forget(self, name: str) -> None:
        with self._lock:
            self._topics.pop(name, None)

    def shutdown(self, *, delete_data: bool = False) -> None:
        """Close every partition, kill the rayka actors of this cluster (Ray itself stays up)."""
        from rayka.actors import _ray

        global _current
        try:
            self.call("shutdown", delete_data, retry_s=2.0)
        except CoordinatorUnavailableError:
            log.warning("coordinator of %s is gone; nothing to close", self.cluster_name)
        finally:
            _ray.kill(self.coordinator)
            with _lock:
                if _current is self:
                    _current = None


def connect(
    address: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    cluster_name: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    num_cpus: int | None = None,
    **ray_init_kwargs,
) -> Cluster:
    """Connect to a rayka cluster, starting what is missing, and make it the current one.

    - ``address``: a Ray address or ``"auto"``; default: attach to the Ray this process
      already runs, else ``RAY_ADDRESS``, else start a local Ray (embedded).
    - ``data_dir``: where partitions keep their files; default ``$RAYKA_DATA_DIR`` or
      ``~/.rayka/data``. Fixed when the coordinator first starts; a different one
      for a running cluster is an error.
    - ``cluster_name``: several rayka clusters can share one Ray (default ``"default"``,
      or ``$RAYKA_CLUSTER``).
    """
    from rayka.actors import _ray
    from rayka.actors.coordinator import start_coordinator

    global _current
    cluster_name = cluster_name or os.environ.get("RAYKA_CLUSTER", "default")
    started = False
    if not ray.is_initialized():
        address = address or os.environ.get("RAYKA_ADDRESS") or os.environ.get("RAY_ADDRESS")
        kwargs = dict(namespace=namespace, include_dashboard=False, logging_level=logging.WARNING,
                      configure_logging=True, log_to_driver=True)
        if address is None and num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        kwargs.update(ray_init_kwargs)
        ray.init(address=address, **kwargs)
        started = address is None
    wanted = str(Path(data_dir).expanduser().resolve()) if data_dir is not None else None
    coordinator = _ray.get_actor(_ray.coordinator_name(cluster_name), namespace)
    if coordinator is None:
        coordinator = start_coordinator(cluster_name, namespace, wanted or str(default_data_dir()))
    cluster = Cluster(coordinator, cluster_name=cluster_name, namespace=namespace, data_dir="",
                      started_ray=started)
    info = cluster.call("info")
    cluster.data_dir = info["data_dir"]
    if wanted is not None and wanted != info["data_dir"]:
        raise ConfigError(
            f"rayka cluster {cluster_name!r} already runs with data_dir {info['data_dir']}, not {wanted}; "
            "connect without data_dir, or use another cluster_name"
        )
    with _lock:
        _current = cluster
    return cluster


def current() -> Cluster:
    """The current connection, connecting with the defaults if there is none."""
    with _lock:
        cluster = _current
    return cluster if cluster is not None else connect()
