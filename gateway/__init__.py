"""rayka.gateway: the Kafka wire protocol, mapped onto rayka (pure code, no Ray).

Kafka clients (librdkafka, the Java client, kafka-python, aiokafka, kcat) talk to a
gateway as to a broker. This package turns their requests into calls on a
:class:`~rayka.gateway.backend.Backend` (the coordinator and the partitions, batched)
and rayka's answers back into Kafka responses; RecordBatch v2 is decoded into rayka's
Arrow batches and encoded back. The TCP server that runs it is a thin Ray actor in
``rayka.actors.gateway``.
"""

from __future__ import annotations

__all__ = ["start", "stop"]


def start(port: int = 9092, host: str = "127.0.0.1", *, cluster=None, auto_create_topics: bool = False,
          advertised_host: str | None = None) -> list[tuple[int, str, int]]:
    """Start a Kafka gateway on every alive Ray node of ``cluster`` (default: the current
    connection, ``rayka.connect()``): a named, detached actor per node, bound to ``host``
    (127.0.0.1 unless told otherwise). The i-th node (sorted by Ray node id) listens on
    ``port + i``; ``port=0`` gives each a free port. Nodes that already run one keep it.
    Answers ``(broker_id, host, port)`` of every gateway, sorted by broker id."""
    from rayka.actors.gateway import start_gateways
    from rayka.clients.connection import current
    from rayka.gateway.session import GatewayOptions

    cluster = cluster if cluster is not None else current()
    options = GatewayOptions(auto_create_topics=bool(auto_create_topics),
                             advertised_host=advertised_host or host)
    return start_gateways(cluster.cluster_name, cluster.namespace, host, port, options)


def stop(*, cluster=None) -> int:
    """Stop every Kafka gateway actor of ``cluster`` (default: the current connection); how many."""
    from rayka.actors.gateway import stop_gateways
    from rayka.clients.connection import current

    cluster = cluster if cluster is not None else current()
    return stop_gateways(cluster.cluster_name, cluster.namespace)
