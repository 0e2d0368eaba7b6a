"""The cluster-wide partition budget: how many partition actors the alive nodes' memory holds.

Each partition is a Ray actor process (measured in benchmarks/partition_cost.py), so
partitions are bounded by memory, not by files as in Kafka. The coordinator asks this
module before it creates partitions; the facts of the cluster (each alive node's Ray
``memory`` resource, the partitions that exist) are gathered at the actor edge and
passed in, so the rule is tested without Ray.

The limit: for each alive node, ``floor(memory * memory_fraction / partition_memory_bytes)``
partitions, summed over the nodes; or ``max_partitions`` when it is set (-1: no
limit). A partition lives whole on one node, so each node's own limit holds too:
placement.py never puts a partition on a node that is full.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..config import PartitionBudget
from ..errors import PartitionBudgetError

__all__ = ["partition_limit", "node_limit", "check_partition_budget"]

MiB = 1024 * 1024


def partition_limit(budget: PartitionBudget, node_memory_bytes: Sequence[float]) -> int | None:
    """How many partitions the cluster may hold in all; None means no limit."""
    if budget.max_partitions is not None:
        return None if budget.max_partitions == -1 else budget.max_partitions
    return sum(node_limit(budget, mem) for mem in node_memory_bytes)


def node_limit(budget: PartitionBudget, memory_bytes: float) -> int | None:
    """How many partitions one node of ``memory_bytes`` may hold (placement.py); None: no
    limit of its own (``max.partitions`` set: the limit is a cluster total, or off)."""
    if budget.max_partitions is not None:
        return None
    return int(max(0.0, memory_bytes) * budget.memory_fraction // budget.partition_memory_bytes)


def check_partition_budget(budget: PartitionBudget, node_memory_bytes: Sequence[float], existing: int,
                           requested: int, action: str) -> None:
    """Raise PartitionBudgetError if ``existing + requested`` partitions exceed the limit.

    ``action`` names the call being refused (``"create_topic('t', partitions=8)"``), so the
    error says which call was wrong and how to make room or raise the limit.
    """
    limit = partition_limit(budget, node_memory_bytes)
    if limit is None or existing + requested <= limit:
        return
    per = budget.partition_memory_bytes
    if budget.max_partitions is not None:
        basis = f"the limit is max.partitions={budget.max_partitions}"
    else:
        total = sum(node_memory_bytes)
        basis = (f"the limit is {limit} partitions: {len(node_memory_bytes)} alive Ray node(s) with "
                 f"{total / 2**30:.1f} GiB of Ray memory x partition.memory.fraction={budget.memory_fraction:g} "
                 f"/ partition.memory.bytes={per // MiB} MiB")
    room = max(limit - existing, 0)
    raise PartitionBudgetError(
        f"{action} refused, nothing was created: it needs {requested} new partition(s) and "
        f"{existing} exist, but each partition is an actor process counted at {per // MiB} MiB and "
        f"{basis}; room is left for {room} more. Delete unused topics, add Ray nodes, use fewer "
        "partitions, or change the budget with Admin().set_partition_budget({'max.partitions': N}) "
        "(or 'partition.memory.fraction' / 'partition.memory.bytes'; -1 turns the check off)",
        per_partition_bytes=per, existing=existing, requested=requested, limit=limit,
    )
