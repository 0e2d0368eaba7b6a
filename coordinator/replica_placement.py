"""Where the replicas of new partitions go, where a lost replica's replacement goes, and
the directory of each replica.

Each partition of a topic with ``replication_factor=N`` gets N replicas on N distinct
alive nodes; replica index 0 is the preferred leader. :func:`place_replicas` picks, for
each new partition in turn and each of its replicas in turn, among the alive nodes
with room in their own budget (budget.node_limit: every replica is one partition
actor) and not holding a replica of this partition yet:

1. when nodes carry a zone (a ``rayka-zone`` resource or label, gathered at the actor
   edge), a node of a zone this partition has no replica in yet, so the replicas of
   a partition spread over zones first (a node without a zone is a zone of its own);
2. for the leader, the node leading the fewest partitions (existing leaders plus the
   ones placed by this call), then the least loaded; for a follower, the least loaded;
3. ties go round-robin: the nodes are ordered once by (load, node id), and the k-th
   choice starts one node further along that order per partition and replica, as
   Kafka's rack-unaware assignment does. Placement is reproducible.

With fewer alive nodes than N the call is refused with ConfigError, unless the topic
sets ``replica.placement=colocate``: then replicas share nodes (distinct ones as far as
they go) and a warning text says what that loses, for the caller to show. Without room
(every node at its limit) PartitionBudgetError refuses the whole call, as placement.py
does for one replica; with ``max.partitions`` set, the cluster total is checked for N
actors per partition (budget.check_partition_budget).

:func:`place_replacement` picks a node for a replica replacing a lost one: not a node
holding that partition, in a zone it lacks if any, the least loaded; None when no
node fits yet (self-healing tries again when nodes join).

Directories (:func:`replica_dir`): replica 0 keeps the single-replica path
``<data_dir>/topics/<topic>/<partition>``, so logs written before replication open as
the preferred replica; replica k > 0 lives beside it in ``<partition>.r<k>``. Two
replicas of a partition never share a directory, even when every node of a local
``ray.cluster_utils.Cluster`` sees one file system, and no replica's directory lies
inside another's (deleting one log never deletes another). Replica ids are never
reused within a partition (:func:`next_replica_id`), so a replacement never opens the
files a dead replica left behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..config import PartitionBudget
from ..errors import ConfigError, InvalidReplicationFactorError, PartitionBudgetError
from .budget import MiB, check_partition_budget, node_limit
from .metadata import partition_dir
from .placement import room_by_node

__all__ = ["ReplicaPlacement", "place_replicas", "place_replacement", "replica_dir", "next_replica_id",
           "COLOCATE"]

#: The ``replica.placement`` value that lets replicas of a partition share a node.
COLOCATE = "colocate"


@dataclass(frozen=True, slots=True)
class ReplicaPlacement:
    """The node of each replica of each new partition (``nodes[i][k]``: replica k of the i-th
    new partition; replica 0 leads), and a warning to show when replicas share nodes."""

    nodes: tuple[tuple[str, ...], ...]
    warning: str | None = None


def place_replicas(budget: PartitionBudget, node_memory_bytes: Mapping[str, float], existing: Mapping[str, int],
                   count: int, replication_factor: int, action: str, *, zones: Mapping[str, str] | None = None,
                   colocate: bool = False, existing_leaders: Mapping[str, int] | None = None,
                   first_partition: int = 0, elsewhere: int = 0) -> ReplicaPlacement:
    """Nodes for the ``replication_factor`` replicas of each of ``count`` new partitions (see the
    module docstring). ``node_memory_bytes``: alive node id -> its Ray memory; ``existing``: node
    id -> replicas already on it (placement.partitions_per_node over every replica's node);
    ``existing_leaders``: node id -> partitions it leads; ``first_partition``: the number of the
    first new partition (add_partitions continues the rotation); ``elsewhere``: replicas on no
    alive node. Nothing is placed if any replica cannot be."""
    if replication_factor < 1:
        raise InvalidReplicationFactorError(f"replication_factor must be >= 1, got {replication_factor}")
    alive = sorted(node_memory_bytes)
    if len(alive) < replication_factor and not colocate:
        raise InvalidReplicationFactorError(
            f"{action} refused, nothing was created: replication_factor={replication_factor} puts each replica "
            f"of a partition on its own Ray node, and {len(alive)} node(s) are alive. Add Ray nodes, lower "
            "replication_factor, or set the topic config replica.placement=colocate to let replicas share "
            "nodes (a node's loss then takes every replica on it)")
    load = {n: existing.get(n, 0) for n in alive}
    leaders = {n: (existing_leaders or {}).get(n, 0) for n in alive}
    total = sum(load.values()) + elsewhere
    requested = count * replication_factor
    if budget.max_partitions is not None:  # a cluster total (or -1: off); nodes have no limit of their own
        check_partition_budget(budget, [node_memory_bytes[n] for n in alive], total, requested, action)
        limits = {n: None for n in alive}
    else:
        limits = {n: node_limit(budget, node_memory_bytes[n]) for n in alive}
    for _ in range(elsewhere):  # they run again wherever Ray restarts them: counted first
        if alive:
            load[min(alive, key=lambda n: (load[n], n))] += 1
    before = dict(load)
    order = sorted(alive, key=lambda n: (load[n], n))
    position = {n: i for i, n in enumerate(order)}
    placed = []
    for i in range(count):
        p = first_partition + i
        chosen: list[str] = []
        for slot in range(replication_factor):
            room = [n for n in order if limits[n] is None or load[n] < limits[n]]
            candidates = [n for n in room if n not in chosen] or (room if colocate else [])
            if not candidates:
                raise _no_room(budget, node_memory_bytes, before, limits, count, replication_factor, total, action)
            candidates = _prefer_new_zones(candidates, chosen, zones)
            turn = (lambda n, k=p + slot: (position[n] - k) % len(order))
            if slot == 0:
                node = min(candidates, key=lambda n: (leaders[n], load[n], turn(n)))
                leaders[node] += 1
            else:
                node = min(candidates, key=lambda n: (load[n], turn(n)))
            load[node] += 1
            chosen.append(node)
        placed.append(tuple(chosen))
    distinct = min(replication_factor, len(alive))
    warning = None
    if distinct < replication_factor and count:
        warning = (f"replica.placement=colocate: the {replication_factor} replicas of each partition of {action} "
                   f"share {len(alive)} alive node(s), so a node's loss takes every replica on it: the data "
                   f"survives the loss of {distinct - 1} node(s), not {replication_factor - 1}. Add Ray nodes and "
                   "reassign the partitions to spread them")
    return ReplicaPlacement(tuple(placed), warning)


def place_replacement(budget: PartitionBudget, node_memory_bytes: Mapping[str, float], existing: Mapping[str, int],
                      holding: Iterable[str], *, zones: Mapping[str, str] | None = None,
                      colocate: bool = False) -> str | None:
    """A node for a replica that replaces a lost one: alive, with room, not one of ``holding``
    (the nodes of the partition's other replicas) unless ``colocate``, in a zone they lack if
    any, the least loaded (then by node id). None if no node fits."""
    holding = list(holding)
    if budget.max_partitions is not None:
        limit = None if budget.max_partitions == -1 else budget.max_partitions
        if limit is not None and sum(existing.get(n, 0) for n in node_memory_bytes) + 1 > limit:
            return None
        limits = {n: None for n in node_memory_bytes}
    else:
        limits = {n: node_limit(budget, mem) for n, mem in node_memory_bytes.items()}
    room = [n for n in sorted(node_memory_bytes) if limits[n] is None or existing.get(n, 0) < limits[n]]
    candidates = [n for n in room if n not in holding] or (room if colocate else [])
    if not candidates:
        return None
    candidates = _prefer_new_zones(candidates, holding, zones)
    return min(candidates, key=lambda n: (existing.get(n, 0), n))


def replica_dir(data_dir: str | Path, topic: str, partition: int, replica: int) -> Path:
    """The log directory of replica ``replica`` of a partition (see the module docstring)."""
    base = partition_dir(data_dir, topic, partition)
    if not isinstance(replica, int) or isinstance(replica, bool) or replica < 0:
        raise ValueError(f"a replica id is an integer >= 0, got {replica!r}")
    return base if replica == 0 else base.with_name(f"{base.name}.r{replica}")


def next_replica_id(used: Iterable[int]) -> int:
    """The id for a new replica of a partition: one past every id it ever used (pass the
    replicas before the lost one is removed, or the highest id kept in the metadata)."""
    return max(used, default=-1) + 1


def _prefer_new_zones(candidates: list[str], chosen: Iterable[str], zones: Mapping[str, str] | None) -> list[str]:
    if not zones:
        return candidates
    used = {_zone(n, zones) for n in chosen}
    fresh = [n for n in candidates if _zone(n, zones) not in used]
    return fresh or candidates


def _zone(node: str, zones: Mapping[str, str]) -> tuple[str, str]:
    zone = zones.get(node)
    return ("zone", zone) if zone else ("node", node)  # a node without a zone is a zone of its own


def _no_room(budget, node_memory_bytes, load, limits, count, rf, total, action) -> PartitionBudgetError:
    per = budget.partition_memory_bytes
    limit, free, nodes = room_by_node(node_memory_bytes, load, limits)
    return PartitionBudgetError(
        f"{action} refused, nothing was created: it needs {count} new partition(s) x {rf} replica(s), each "
        f"replica on its own node, and {total} replica(s) exist, but the nodes have room for {sum(free.values())} "
        f"more on {sum(1 for v in free.values() if v)} node(s) (replicas of each node's limit: {nodes}); each "
        f"replica is an actor process counted at {per // MiB} MiB, a node holds its Ray memory x "
        f"partition.memory.fraction={budget.memory_fraction:g} of them. Delete unused topics, add Ray nodes, "
        "use fewer partitions or replicas, or change the budget with Admin().set_partition_budget("
        "{'max.partitions': N}) (or 'partition.memory.fraction' / 'partition.memory.bytes'; -1 turns the check off)",
        per_partition_bytes=per, existing=total, requested=count * rf, limit=limit,
    )
