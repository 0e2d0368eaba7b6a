"""The one module that looks actors up and kills them (``ray.get_actor`` / ``ray.kill``).

Names: every rayka actor is named and detached in the ``rayka`` namespace, so
any process attached to the Ray cluster can find it::

    rayka:<cluster>:coordinator
    rayka:<cluster>:p:<topic_id>:<partition>

``<cluster>`` lets several independent rayka clusters (say, one per test) share
one Ray cluster; the default is ``default``. Partition actors are named by the
topic's id, not its name, so a topic deleted and created again never meets an
actor of its predecessor.
"""

from __future__ import annotations

import ray

__all__ = ["coordinator_name", "partition_name", "get_actor", "kill", "alive_node_ids", "node_zones", "gateway_prefix",
           "gateway_name", "named_actors"]


def coordinator_name(cluster: str) -> str:
    return f"rayka:{cluster}:coordinator"


def partition_name(cluster: str, topic_id: str, partition: int) -> str:
    return f"rayka:{cluster}:p:{topic_id}:{partition}"


def get_actor(name: str, namespace: str):
    """The named actor, or None if there is none."""
    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


def kill(handle, *, no_restart: bool = True) -> None:
    try:
        ray.kill(handle, no_restart=no_restart)
    except Exception:  # already dead: nothing to do
        pass


def alive_node_ids() -> list[str]:
    """Ray node ids of alive nodes that have resources, sorted for stable placement."""
    return sorted(n["NodeID"] for n in ray.nodes() if n.get("Alive"))


def node_zones() -> dict[str, str]:
    """Alive node id -> its zone, from a ``rayka-zone`` node label or a ``rayka-zone:<zone>``
    custom resource (nodes without one are left out: a zone of their own)."""
    zones = {}
    for n in ray.nodes():
        if not n.get("Alive"):
            continue
        zone = (n.get("Labels") or {}).get("rayka-zone")
        if zone is None:
            zone = next((k.split(":", 1)[1] for k in n.get("Resources", {}) if k.startswith("rayka-zone:")), None)
        if zone:
            zones[n["NodeID"]] = zone
    return zones


def gateway_prefix(cluster: str) -> str:
    """Every Kafka gateway actor of ``cluster`` is named this prefix plus its node's id (12 hex)."""
    return f"rayka:{cluster}:gateway:"


def gateway_name(cluster: str, node_id: str) -> str:
    return f"{gateway_prefix(cluster)}{node_id[:12]}"


def named_actors(prefix: str, namespace: str) -> list[str]:
    """Names of the alive named actors of ``namespace`` that start with ``prefix``, sorted."""
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == namespace and a["name"].startswith(prefix))
