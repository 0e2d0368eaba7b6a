"""Checks of a topic's replica layout before the metadata stores it: the replication factor,
``min.insync.replicas`` against it, and the per-partition replica -> node maps
(``TopicMetadata.replica_nodes``: ``{str(replica id): node id or None}``, replica 0 leading).
"""

from __future__ import annotations

from ..config import TopicConfig
from ..errors import ConfigError
from .election import PartitionState

__all__ = ["MAX_REPLICATION_FACTOR", "check_replication_factor", "check_min_insync", "replica_layout", "check_layout"]

MAX_REPLICATION_FACTOR = 16  # replicas per partition, each an actor of its own


def check_replication_factor(rf: object) -> None:
    """ConfigError unless ``rf`` is an integer in 1..MAX_REPLICATION_FACTOR."""
    if not isinstance(rf, int) or isinstance(rf, bool) or not 1 <= rf <= MAX_REPLICATION_FACTOR:
        raise ConfigError(f"replication_factor must be an integer in 1..{MAX_REPLICATION_FACTOR} (replicas of "
                          f"each partition, each on its own Ray node), got {rf!r}")


def check_min_insync(config: TopicConfig, rf: int, what: str) -> None:
    """ConfigError if ``min.insync.replicas`` exceeds the replication factor ``rf``."""
    if config.min_insync_replicas > rf:
        raise ConfigError(
            f"{what}: min.insync.replicas={config.min_insync_replicas} is more than replication_factor={rf}, so "
            f"a send with acks=\"all\" could never succeed; use min.insync.replicas <= {rf}")


def replica_layout(count: int, rf: int, nodes: list | None, replica_nodes: list | None) -> list[dict]:
    """``replica_nodes`` (or replica 0 on ``nodes[p]``) as the stored per-partition maps; a list
    of the wrong shape is a bug of the caller (ValueError)."""
    if nodes is not None and len(nodes) != count:
        raise ValueError(f"nodes has {len(nodes)} entries for {count} partition(s)")
    if replica_nodes is None:
        return [{str(r): (nodes[p] if nodes is not None and r == 0 else None) for r in range(rf)}
                for p in range(count)]
    if len(replica_nodes) != count or any(len(per) != rf for per in replica_nodes):
        raise ValueError(f"replica_nodes must list {count} partition(s) of {rf} node(s) each, got {replica_nodes!r}")
    if nodes is not None and any(n != per[0] for n, per in zip(nodes, replica_nodes)):
        raise ValueError(f"nodes {nodes!r} disagree with the leaders (replica 0) of replica_nodes {replica_nodes!r}")
    return [{str(r): node for r, node in enumerate(per)} for per in replica_nodes]


def check_layout(name: str, partitions: int, states: list, replica_nodes: list) -> None:
    """ValueError unless every partition has a valid state and a node entry for each of its replicas
    (asserted after reading the metadata, so a damaged file fails on load, not at some later call)."""
    if len(states) != partitions or len(replica_nodes) != partitions:
        raise ValueError(f"topic {name!r} has {partitions} partitions but {len(states)} states "
                         f"and {len(replica_nodes)} replica node maps")
    for p, data in enumerate(states):
        if set(replica_nodes[p]) != {str(r) for r in PartitionState.from_dict(data).replicas}:
            raise ValueError(f"topic {name!r} partition {p}: replica nodes {replica_nodes[p]} do not match "
                             f"the replicas of {data}")
