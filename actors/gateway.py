"""GatewayActor: the Kafka gateway of one Ray node, a thin shell around gateway/session.py.

One per node and rayka cluster, named ``rayka:<cluster>:gateway:<node id[:12]>`` in the
rayka namespace, detached, ``num_cpus=0`` and pinned to its node (hard node affinity:
the broker it advertises is that node). Its ``__init__`` binds the listening socket and
runs ``asyncio.start_server`` on an event loop of its own thread, so a restart by Ray
(``max_restarts=-1``) serves again without anybody calling it; ``address()`` and
``stop()`` are plain calls beside that loop. Every connection is served by
:func:`rayka.gateway.session.serve_connection` with a
:class:`~rayka.clients.gateway_backend.RayBackend`; the gateways find each other by
their names (``RayBackend.brokers``).

Ports: :func:`start_gateways` gives the i-th alive node (sorted by node id at start
time) ``port + i``, so several Ray nodes on one machine (ray.cluster_utils.Cluster) do
not collide; ``port=0`` gives each an ephemeral port. A restarted actor binds the
port it was created with, or (``port=0``) the port its first start got, which the actor keeps
in Ray's internal KV until :func:`stop_gateways`.
"""

from __future__ import annotations

import asyncio
import logging
import threading

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rayka.actors import _ray
from rayka.errors import ConfigError

__all__ = ["GatewayActor", "GatewayServer", "start_gateways", "stop_gateways"]

log = logging.getLogger(__name__)

_BIND_TIMEOUT_S = 30.0
_KV_NAMESPACE = "rayka"


class GatewayServer:
    """A Kafka gateway's TCP server on an event loop of its own thread (the actor's, or the CLI's
    foreground one): ``serve_connection`` per connection, with ``backend``."""

    def __init__(self, backend, host: str, port: int, options):
        self._backend, self._host, self._port, self._options = backend, host, port, options
        self._loop = asyncio.new_event_loop()
        self._server = None
        self._bound = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="rayka-gateway", daemon=True)

    def start(self) -> tuple[str, int]:
        """Bind and serve; ``(host, port)`` bound (ConfigError when the port cannot be bound)."""
        self._thread.start()
        if not self._bound.wait(_BIND_TIMEOUT_S):
            raise ConfigError(f"the Kafka gateway did not bind {self._host}:{self._port} within {_BIND_TIMEOUT_S:g} s")
        if self._error is not None:
            raise ConfigError(f"the Kafka gateway cannot listen on {self._host}:{self._port}: {self._error}; "
                              "choose another --port (0: any free port)") from None
        return self._host, self._port

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._listen())
        except BaseException as exc:  # noqa: BLE001 - told to start()
            self._error = exc
            self._bound.set()
            return
        self._bound.set()
        self._loop.run_forever()

    async def _listen(self) -> None:
        from rayka.gateway.session import serve_connection

        backend, options = self._backend, self._options
        broker = backend.broker_id

        async def serve(reader, writer):
            try:
                await serve_connection(reader, writer, backend, broker_id=broker, options=options)
            except Exception:  # noqa: BLE001 - one connection's failure must not stop the server
                log.exception("a Kafka connection failed")
                writer.close()

        self._server = await asyncio.start_server(serve, self._host, self._port)
        self._port = self._server.sockets[0].getsockname()[1]
        backend.set_address(self._options.advertised_host or self._host, self._port)

    def address(self) -> tuple[int, str, int]:
        return self._backend.broker_id, self._options.advertised_host or self._host, self._port

    def stop(self) -> None:
        """Stop listening, close the loop's connections, end the thread."""
        if not self._thread.is_alive():
            return

        async def close():
            if self._server is not None:
                self._server.close()
                self._server.close_clients() if hasattr(self._server, "close_clients") else None
            for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
                task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=0, max_concurrency=4)
class GatewayActor:
    """One node's Kafka gateway for rayka cluster ``cluster`` (see the module docs)."""

    def __init__(self, cluster: str, namespace: str, host: str, port: int, options):
        from rayka.clients.gateway_backend import RayBackend
        from rayka.clients.stubs import CoordinatorClient

        handle = _ray.get_actor(_ray.coordinator_name(cluster), namespace)
        if handle is None:
            raise ConfigError(f"rayka cluster {cluster!r} has no coordinator in namespace {namespace!r}; "
                              "connect to it (rayka.connect) before starting its gateway")
        from rayka.gateway import records

        records.warm_up()  # compile (or load from numba's cache) the record loops before any client
        node_id = ray.get_runtime_context().get_node_id()
        backend = RayBackend(CoordinatorClient(handle), cluster_name=cluster, namespace=namespace, node_id=node_id,
                             host=options.advertised_host or host, port=port)
        name = ray.get_runtime_context().get_actor_name() or ""
        remembered = _remembered_port(name) if port == 0 else 0
        if remembered:  # a restart by Ray binds the port its first start got: clients still know it
            try:
                self._server = GatewayServer(backend, host, remembered, options)
                self._server.start()
            except ConfigError as exc:  # taken meanwhile: serve on a new port rather than not at all
                log.warning("Kafka gateway: port %d of its first start is taken (%s): binding a free one",
                            remembered, exc)
                remembered = 0
        if not remembered:
            self._server = GatewayServer(backend, host, port, options)
            self._server.start()
        if name:
            _remember_port(name, self._server.address()[2])
        log.info("Kafka gateway of %s listening on %s:%d", cluster, *self._server.address()[1:])

    def address(self) -> tuple[int, str, int]:
        """``(broker_id, host, port)`` this gateway advertises."""
        return self._server.address()

    def stop(self) -> None:
        self._server.stop()


def _port_key(name: str) -> bytes:
    return f"{name}:port".encode()


def _remembered_port(name: str) -> int:
    """The port the gateway actor ``name`` bound first (0 if none): kept in Ray's internal KV."""
    from ray.experimental.internal_kv import _internal_kv_get

    got = _internal_kv_get(_port_key(name), namespace=_KV_NAMESPACE) if name else None
    return int(got) if got else 0


def _remember_port(name: str, port: int) -> None:
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(_port_key(name), str(port).encode(), overwrite=True, namespace=_KV_NAMESPACE)


def _forget_port(name: str) -> None:
    from ray.experimental.internal_kv import _internal_kv_del

    _internal_kv_del(_port_key(name), namespace=_KV_NAMESPACE)


def start_gateways(cluster: str, namespace: str, host: str, port: int, options) -> list[tuple[int, str, int]]:
    """A gateway on every alive node that has none (see the module docs for the ports);
    ``(broker_id, host, port)`` of every gateway of ``cluster``, sorted by broker id."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise ConfigError(f"port must be 0..65535, got {port!r}")
    handles, created = [], []
    for i, node in enumerate(_ray.alive_node_ids()):
        name = _ray.gateway_name(cluster, node)
        handle = _ray.get_actor(name, namespace)
        if handle is None:
            handle = GatewayActor.options(
                name=name, namespace=namespace, lifetime="detached", get_if_exists=True,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
            ).remote(cluster, namespace, host, port + i if port else 0, options)
            created.append(handle)
        handles.append(handle)
    out = []
    try:
        for h in handles:
            out.append(tuple(ray.get(h.address.remote(), timeout=60)))
    except ray.exceptions.RayActorError as exc:
        for h in created:  # the gateways that were running before this call keep serving
            _ray.kill(h)
        cause = str(exc).splitlines()
        detail = next((line for line in cause if "ConfigError" in line), cause[0] if cause else "")
        raise ConfigError(f"a Kafka gateway could not start: {detail}") from None
    return sorted(out)


def stop_gateways(cluster: str, namespace: str) -> int:
    """Stop and kill every gateway actor of ``cluster``; how many there were."""
    names = _ray.named_actors(_ray.gateway_prefix(cluster), namespace)
    handles = [h for h in (_ray.get_actor(n, namespace) for n in names) if h is not None]
    refs = [h.stop.remote() for h in handles]
    try:
        ray.get(refs, timeout=10)
    except Exception:  # noqa: BLE001 - dead or stuck: it is killed all the same
        pass
    for h in handles:
        _ray.kill(h)
    for name in names:  # a gateway started later on port 0 gets a fresh port
        _forget_port(name)
    return len(names)
