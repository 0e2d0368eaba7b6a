"""``rayka gateway``: serve the Kafka wire protocol in the foreground, in this process."""

from __future__ import annotations

import threading

import click

from rayka.cli.base import _connect, cli, connection_options

__all__ = ["gateway"]


@cli.command("gateway")
@connection_options
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9092, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--auto-create-topics", is_flag=True, help="Create a topic a client asks Metadata for.")
@click.option("--advertised-host", default=None, help="Host Kafka clients are told to connect to (default: --host).")
@click.pass_context
def gateway(ctx, host, port, auto_create_topics, advertised_host):
    """Serve the Kafka protocol on HOST:PORT until Ctrl-C or SIGTERM (bootstrap.servers=HOST:PORT).

    This one gateway serves every partition (it advertises itself as the leader of every
    partition whose node runs no gateway); ``rayka runtime start --kafka-port`` or
    ``rayka.gateway.start()`` run one per Ray node instead.
    """
    from rayka.actors.gateway import GatewayServer
    from rayka.clients.gateway_backend import RayBackend
    from rayka.gateway.session import GatewayOptions

    from rayka.gateway import records

    cluster = _connect(ctx)
    records.warm_up()  # compile the record loops before any client waits on them
    options = GatewayOptions(auto_create_topics=auto_create_topics, advertised_host=advertised_host or host)
    backend = RayBackend.from_cluster(cluster, host=options.advertised_host, port=port)
    server = GatewayServer(backend, host, port, options)
    bound_host, bound_port = server.start()
    click.echo(f"Kafka gateway of rayka cluster {cluster.cluster_name!r} listening on {bound_host}:{bound_port} "
               f"(broker id {backend.broker_id}); Ctrl-C stops it")
    try:
        threading.Event().wait()  # the server runs on its own thread; a signal ends this wait
    finally:
        server.stop()
