"""STAND-IN, to be replaced by the protocol engineer's gateway/session.py.

Only here so that the gateway actor and the CLI import: it has the agreed names and
signatures (:class:`GatewayOptions`, :func:`serve_connection`) and answers nothing: it
closes each connection at once. It holds no protocol logic.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GatewayOptions", "serve_connection"]


@dataclass(frozen=True)
class GatewayOptions:
    """How a gateway serves (stand-in with the agreed fields and defaults)."""

    auto_create_topics: bool = False
    default_partitions: int = 1
    max_request_bytes: int = 100 * 1024 * 1024
    advertised_host: str = "127.0.0.1"


async def serve_connection(reader, writer, backend, *, broker_id: int, options: GatewayOptions) -> None:
    """Stand-in: close the connection (the real one serves Kafka requests until it ends)."""
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:  # the peer went first: nothing to close
        pass
