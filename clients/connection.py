"""connect(): attach to (or start) Ray, and find (or start) the rayka coordinator.

Embedded by default: with no Ray running and no address given, it attaches to
the shared local runtime of the data dir (a detached loopback Ray head, started
if none runs; see rayka.clients.runtime), so every process on that data dir
shares one coordinator and one set of partition actors. ``address="auto"`` or an address attaches to an existing Ray cluster, as
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

from rayka.clients import runtime_attach
from rayka.clients.ray_quiet import _quiet_stderr, quiet_ray_init_kwargs, verbose
from rayka.clients.stubs import CoordinatorClient
from rayka.config import DEFAULT_NAMESPACE, default_data_dir
from rayka.errors import ConfigError, CoordinatorUnavailableError, KafkaTimeoutError

__all__ = ["Cluster", "connect", "current", "quiet_ray_init_kwargs", "verbose"]

log = logging.getLogger(__name__)

_lock = threading.Lock()
_current: "Cluster | None" = None


@dataclass
class _TopicEntry:
    meta: object
    handles: list
    fetched: float


class Cluster:
    """A connection to one rayka cluster: the coordinator (a :class:`CoordinatorClient`) and
    cached topic metadata with the topics' partition stubs."""

    def __init__(self, coordinator: CoordinatorClient, *, cluster_name: str, namespace: str, data_dir: str, started_ray: bool):
        self.coordinator = coordinator
        self.cluster_name = cluster_name
        self.namespace = namespace
        self.data_dir = data_dir
        self.started_ray = started_ray
        self.runtime = None  # the shared local runtime's RuntimeInfo, when attached to one
        self.attachment = None  # its runtime_attach.Attachment: stopped with that runtime
        self._topics: dict[str, _TopicEntry] = {}
        self._lock = threading.Lock()

    def topic(self, name: str, *, refresh: bool = False, timeout_s: float | None = None,
              max_age_s: float | None = None):
        """(TopicMetadata, [PartitionClient]), cached until ``refresh`` (or, with ``max_age_s``,
        until the cached one is older than that).

        With ``timeout_s``, a coordinator that does not answer (or is restarting) by then gives
        CoordinatorUnavailableError instead of being waited for (as a poll must not block).
        """
        with self._lock:
            entry = self._topics.get(name)
        if max_age_s is not None and entry is not None and time.monotonic() - entry.fetched > max_age_s:
            refresh = True
        if entry is None or refresh:
            if timeout_s is None:
                meta, handles = self.coordinator.topic(name)
            else:
                try:
                    meta, handles = self.coordinator.topic(name, retry_s=timeout_s, bounded=True)
                except KafkaTimeoutError:
                    raise CoordinatorUnavailableError(
                        f"the coordinator did not answer within {timeout_s:g} s") from None
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
            self._shutdown_coordinator(delete_data)
        except CoordinatorUnavailableError:
            log.warning("coordinator of %s is gone; nothing to close", self.cluster_name)
        finally:
            _ray.kill(self.coordinator.handle)
            with _lock:
                if _current is self:
                    _current = None

    def _shutdown_coordinator(self, delete_data: bool) -> None:
        """The coordinator's shutdown; waited for (2 s) only while Ray restarts the coordinator.

        A restarting coordinator keeps its name; one that is gone for good (killed without a
        restart) has none, and waiting for it would only spend the 2 s."""
        from rayka.actors import _ray

        try:
            self.coordinator.shutdown(delete_data, retry_s=0.0)
        except CoordinatorUnavailableError:
            try:
                restarting = _ray.get_actor(_ray.coordinator_name(self.cluster_name), self.namespace) is not None
            except Exception:  # noqa: BLE001 - Ray itself is gone (a stopped runtime): so is the coordinator
                restarting = False
            if not restarting:
                raise
            self.coordinator.shutdown(delete_data, retry_s=2.0)


#: Kafka client settings people pass by habit, and what to use in rayka instead.
_KAFKA_HINTS = {
    "bootstrap_servers": "connect(address=...) (a Ray address, or nothing for the local runtime)",
    "client_id": "nothing (rayka needs no client id)",
    "security_protocol": "Ray's token authentication (RAY_AUTH_TOKEN or ~/.ray/auth_token)",
}

_RUNTIMES = ("shared", "process")


def _check_reachable(address: str) -> None:
    """Fail at once on an address where nothing listens (Ray itself retries for minutes)."""
    import socket

    if address in ("auto", "local") or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3.0):
            return
    except ValueError:
        return  # not host:port; let Ray judge it
    except OSError as exc:
        err = CoordinatorUnavailableError(f"nothing answers at the Ray address {address} ({exc.strerror or exc}); "
                                          "check the address, or start the cluster (ray start --head)")
        err.retriable = False
        raise err from None


def _no_auto_init() -> None:
    """Turn off Ray's implicit ``ray.init()`` in this process: once the cluster rayka attached to
    is gone (its runtime stopped), a call must fail, never start a private Ray of its own that
    knows no topics (Ray reads RAY_ENABLE_AUTO_CONNECT only when it is imported)."""
    os.environ["RAY_ENABLE_AUTO_CONNECT"] = "0"
    try:
        from ray._private import auto_init_hook
    except ImportError:  # another Ray layout: nothing to turn off
        return
    auto_init_hook.enable_auto_connect = False


def connect(
    address: str | None = None,
    data_dir: str | os.PathLike | None = None,
    *,
    cluster_name: str | None = None,
    namespace: str = DEFAULT_NAMESPACE,
    num_cpus: int | None = None,
    runtime: str = "shared",
    idle_timeout_s: float | None = None,
    **unknown,
) -> Cluster:
    """Connect to a rayka cluster, starting what is missing, and make it the current one.

    - ``address``: a Ray address or ``"auto"``; default: attach to the Ray this process
      already runs, else ``$RAYKA_ADDRESS`` / ``$RAY_ADDRESS``, else the shared local
      runtime of the data dir (started if it is not running; see rayka.clients.runtime).
      Ray's token is picked up for an address (``$RAY_AUTH_TOKEN``, ``~/.ray/auth_token``).
    - ``data_dir``: where partitions keep their files; default ``$RAYKA_DATA_DIR`` or
      ``~/.rayka/data``. Fixed when the coordinator first starts; a different one
      for a running cluster is an error.
    - ``cluster_name``: several rayka clusters can share one Ray (default ``"default"``,
      or ``$RAYKA_CLUSTER``).
    - ``num_cpus``: CPUs of a local Ray this call starts (the shared runtime or the
      process's own).
    - ``runtime``: ``"shared"`` (default) starts the data dir's detached local runtime when
      none runs; ``"process"`` starts a Ray inside this process instead, ending with it.
    - ``idle_timeout_s``: when this call starts the shared runtime, stop it after no
      client was attached for this long (default: ``$RAYKA_IDLE_TIMEOUT`` such as
      ``30m``, else never).
    """
    from rayka.actors import _ray
    from rayka.actors.coordinator import start_coordinator

    if unknown:
        key = sorted(unknown)[0]
        hint = _KAFKA_HINTS.get(key)
        raise ConfigError(f"connect() got an unknown keyword {key!r}"
                          + (f"; in rayka use {hint}" if hint else "")
                          + "; known: address, data_dir, cluster_name, namespace, num_cpus, runtime, "
                            "idle_timeout_s")
    if runtime not in _RUNTIMES:
        raise ConfigError(f"runtime must be one of {_RUNTIMES}, got {runtime!r}")
    if idle_timeout_s is not None and (isinstance(idle_timeout_s, bool) or not idle_timeout_s > 0):
        raise ConfigError(f"idle_timeout_s must be a positive number of seconds, got {idle_timeout_s!r}")

    global _current
    cluster_name = cluster_name or os.environ.get("RAYKA_CLUSTER", "default")
    wanted = str(Path(data_dir).expanduser().resolve()) if data_dir is not None else None
    started = False
    local_runtime = None
    if runtime_attach.stopped() is not None:
        _detach()  # still attached to the runtime being stopped: leave it now, start anew below
    if not ray.is_initialized():
        address = address or os.environ.get("RAYKA_ADDRESS") or os.environ.get("RAY_ADDRESS")
        kwargs = dict(namespace=namespace, **quiet_ray_init_kwargs())
        if address is None and runtime == "shared":
            from rayka.clients import runtime as local

            if idle_timeout_s is None and os.environ.get("RAYKA_IDLE_TIMEOUT"):
                try:
                    idle_timeout_s = local.parse_duration(os.environ["RAYKA_IDLE_TIMEOUT"])
                except ValueError as exc:
                    raise ConfigError(f"RAYKA_IDLE_TIMEOUT: {exc}") from None
            with local.attaching(wanted or default_data_dir(), num_cpus=num_cpus,
                                 idle_timeout_s=idle_timeout_s) as local_runtime:
                local.attach_env()
                # The runtime's head never comes back once stopped: give up on it after 15 s, not
                # Ray's 60 s of a process hanging in every call.
                os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "15")
                with _quiet_stderr():
                    ray.init(address=local_runtime.address, **kwargs)
                _watch_runtime(local_runtime)
        elif address is None:
            # A Ray of this process's own: never a head that `ray start` left on this machine,
            # which Ray would otherwise attach to (and refuse num_cpus for).
            kwargs["address"] = "local"
            if num_cpus is not None:
                kwargs["num_cpus"] = num_cpus
            with _quiet_stderr():
                ray.init(**kwargs)
            started = True
        else:
            from rayka.clients.ray_auth import use_token
            from rayka.clients.runtime import is_loopback, keep_loopback

            if is_loopback(address):
                keep_loopback()
            use_token(create=False)
            _check_reachable(address)
            try:
                with _quiet_stderr():
                    ray.init(address=address, **kwargs)
            except ConnectionError as exc:
                err = CoordinatorUnavailableError(
                    f"cannot connect to the Ray cluster at {address} ({exc}); check the address, and if the "
                    "cluster uses token authentication, put its token (ray get-auth-token on the head) in "
                    "~/.ray/auth_token or $RAY_AUTH_TOKEN")
                err.retriable = False
                raise err from None
    _no_auto_init()
    coordinator = _ray.get_actor(_ray.coordinator_name(cluster_name), namespace)
    if coordinator is None:
        coordinator = start_coordinator(cluster_name, namespace, wanted or str(default_data_dir()))
    cluster = Cluster(CoordinatorClient(coordinator), cluster_name=cluster_name, namespace=namespace, data_dir="",
                      started_ray=started)
    cluster.runtime = local_runtime
    info = cluster.coordinator.info()
    cluster.data_dir = info.data_dir
    if local_runtime is None:
        cluster.runtime = _shared_runtime_by_address(info.data_dir)
    cluster.attachment = runtime_attach.current() if cluster.runtime is not None else None
    cluster.coordinator.attachment = cluster.attachment
    if wanted is not None and wanted != info.data_dir:
        raise ConfigError(
            f"rayka cluster {cluster_name!r} already runs with data_dir {info.data_dir}, not {wanted}; "
            "connect without data_dir, or use another cluster_name"
        )
    with _lock:
        _current = cluster
    return cluster


def _watch_runtime(info) -> None:
    runtime_attach.reset()
    from rayka.clients import runtime as local

    runtime_attach.RuntimeWatch(info.data_dir, info.pid, on_closed=_detach, read=local.read).start()


def _shared_runtime_by_address(data_dir: str):
    """A process attached by address (``--address``, ``RAY_ADDRESS``, its own ``ray.init``) to
    the head that is a data dir's shared local runtime learns of its stop the same way."""
    from rayka.clients import runtime as local

    recorded = local.read(data_dir)
    if recorded is None:
        return None
    if runtime_attach.watching():
        return recorded
    try:
        gcs = ray.get_runtime_context().gcs_address
    except Exception:  # noqa: BLE001 - not a Ray we can read: nothing to watch
        return None
    if gcs.rpartition(":")[2] != str(recorded.port) or not local.is_loopback(gcs):
        return None
    _watch_runtime(recorded)
    return recorded


def _detach() -> None:
    """The runtime was stopped under this process: leave its Ray and forget the connection, so the
    next connect() starts (or finds) a new runtime."""
    global _current
    with _lock:
        _current = None
        if ray.is_initialized():
            ray.shutdown()


def current() -> Cluster:
    """The current connection, connecting with the defaults if there is none."""
    with _lock:
        cluster = _current
    return cluster if cluster is not None else connect()
