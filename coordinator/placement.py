"""Where new partitions go: the least-loaded alive node with room in its own budget.

A partition is one actor process on one node, so the budget (budget.py) holds per
node: node ``n`` holds at most ``floor(memory_n * memory_fraction /
partition_memory_bytes)`` partitions. :func:`place_partitions` picks a node for each
new partition, one at a time: among the alive nodes under their own limit, the one
with the fewest partitions (those of every topic already placed there, plus the ones
placed by this call), ties broken by node id so placement is reproducible. A node
at or over its own limit (say after its memory shrank) takes nothing, but leaves the
others their room. Existing partitions on no alive node (no node recorded, or a node
gone: Ray runs them again wherever it can) are counted first on the nodes that would
take them. Either every new partition gets a node or PartitionBudgetError refuses
the whole call. With ``max.partitions`` set the limit is a cluster total (checked by
budget.check_partition_budget) and nodes have no limit of their own; -1: no limit.

The facts (each alive node's Ray ``memory``, the node of each existing partition)
are gathered at the actor edge, so the rule is tested without Ray.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..config import PartitionBudget
from ..errors import PartitionBudgetError
from .budget import MiB, check_partition_budget, node_limit

__all__ = ["partitions_per_node", "place_partitions", "room_by_node"]


def partitions_per_node(placements: Iterable[str | None], alive: Iterable[str]) -> dict[str, int]:
    """How many of the existing partitions (the node id of each: TopicMetadata.nodes of every
    topic) sit on each alive node. A partition with no node, or on a dead node, is counted on
    none: Ray places it anew when it restarts."""
    counts = {node: 0 for node in alive}
    for node in placements:
        if node in counts:
            counts[node] += 1
    return counts


def place_partitions(budget: PartitionBudget, node_memory_bytes: Mapping[str, float],
                     existing: Mapping[str, int], count: int, action: str, elsewhere: int = 0) -> list[str]:
    """A node id for each of ``count`` new partitions (see the module docstring).

    ``node_memory_bytes``: alive node id -> its Ray memory; ``existing``: node id -> partitions
    already on it (partitions_per_node); ``elsewhere``: existing partitions on no alive node.
    Raises PartitionBudgetError, naming ``action``, the figures and what to do, when there is
    no room (nothing is placed then).
    """
    load = {node: existing.get(node, 0) for node in sorted(node_memory_bytes)}
    total = sum(load.values()) + elsewhere
    if budget.max_partitions is not None:  # a cluster total (or -1: off); nodes have no limit of their own
        check_partition_budget(budget, list(node_memory_bytes.values()), total, count, action)
        limits = {node: None for node in load}
    else:
        limits = {node: node_limit(budget, mem) for node, mem in node_memory_bytes.items()}
    if not load:
        raise _no_room(budget, node_memory_bytes, load, limits, count, total, action)
    # Partitions on no alive node run again wherever Ray restarts them: counted first, on the
    # nodes that would take them, so that they use up room as they will.
    for _ in range(elsewhere):
        _take(load, limits, allow_full=True)
    before = dict(load)
    placed = []
    for _ in range(count):
        node = _take(load, limits, allow_full=False)
        if node is None:
            raise _no_room(budget, node_memory_bytes, before, limits, count, total, action)
        placed.append(node)
    return placed


def _take(load: dict, limits: dict, allow_full: bool) -> str | None:
    room = [n for n in load if limits[n] is None or load[n] < limits[n]] or (list(load) if allow_full else [])
    if not room:
        return None
    node = min(room, key=lambda n: (load[n], n))
    load[node] += 1
    return node


def room_by_node(node_memory_bytes, load, limits) -> tuple[int, dict[str, int], str]:
    """For a refusal's message: the nodes' total limit, each limited node's free room, and one
    line per node (its load, its limit, its Ray memory)."""
    limit = sum(v for v in limits.values() if v is not None)
    free = {n: max(0, limits[n] - load[n]) for n in load if limits[n] is not None}
    nodes = "; ".join(f"node {n[:12]}: {load[n]} of {limits[n]} ({node_memory_bytes[n] / 2**30:.1f} GiB of Ray memory)"
                      for n in load) or "no alive node"
    return limit, free, nodes


def _no_room(budget, node_memory_bytes, load, limits, count, total, action) -> PartitionBudgetError:
    per = budget.partition_memory_bytes
    limit, free_by_node, nodes = room_by_node(node_memory_bytes, load, limits)
    free = sum(free_by_node.values())
    return PartitionBudgetError(
        f"{action} refused, nothing was created: it needs {count} new partition(s) and {total} exist, "
        f"but a partition lives whole on one node and the nodes have room for {free} more (partitions "
        f"of each node's limit: {nodes}); each partition is an actor process counted at {per // MiB} MiB, "
        f"a node holds its Ray memory x partition.memory.fraction={budget.memory_fraction:g} of them. "
        "Delete unused topics, add Ray nodes, use fewer partitions, or change the budget with "
        "Admin().set_partition_budget({'max.partitions': N}) (or 'partition.memory.fraction' / "
        "'partition.memory.bytes'; -1 turns the check off)",
        per_partition_bytes=per, existing=total, requested=count, limit=limit,
    )
