"""Which replica a consumer reads a partition from (Kafka's KIP-392, ``client.rack``).

A consumer's ``client_rack`` names where it is:

- ``None``: nowhere in particular; it reads from the leader (as without replication).
- :data:`LOCAL` (``"local"``): its own Ray node; it reads from an in-sync replica on that
  node when there is one.
- any other string: a zone (the ``rayka-zone`` label or resource of the nodes); it reads
  from an in-sync replica on a node of that zone.

The leader is chosen whenever it is near too (it has the newest high watermark), and
whenever no in-sync replica is near, or the partition's state is not known well enough
(no leader, a replica whose node is not recorded). Among several near in-sync followers
one on the consumer's own node comes first, then one picked by the consumer's node id,
so consumers of a zone spread over its replicas. Pure: the caller gathers the state, the
replicas' nodes and the nodes' zones.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

from .election import PartitionState

__all__ = ["LOCAL", "preferred_read_replica"]

#: The ``client_rack`` meaning "this consumer's own Ray node" (rayka.client_config checks the
#: option; a unit test keeps its CLIENT_RACK_LOCAL the same).
LOCAL = "local"

def preferred_read_replica(state: PartitionState, replica_nodes: Mapping[int, str | None], client_rack: str | None,
                           *, node_id: str | None, zones: Mapping[str, str] | None = None) -> int | None:
    """The replica id a consumer on Ray node ``node_id`` with ``client_rack`` reads ``state``'s
    partition from: an in-sync replica near it (see the module docstring), else the leader
    (None when the partition has no leader). ``replica_nodes``: replica id -> its node;
    ``zones``: node id -> zone (nodes without one left out)."""
    leader = state.leader
    if client_rack is None or leader is None:
        return leader
    zones = zones or {}

    def near(replica: int) -> bool:
        node = replica_nodes.get(replica)
        if node is None:
            return False
        return node == node_id if client_rack == LOCAL else zones.get(node) == client_rack

    in_sync = [r for r in state.replicas if r in state.isr]
    if leader in in_sync and near(leader):
        return leader
    candidates = [r for r in in_sync if r != leader and near(r)]
    if not candidates:
        return leader
    mine = [r for r in candidates if replica_nodes.get(r) == node_id]
    if mine:
        return mine[0]
    return candidates[zlib.crc32((node_id or "").encode()) % len(candidates)]
