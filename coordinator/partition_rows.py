"""One row per partition of a topic's replicated state, as Admin.describe_topic and
``rayka topics describe`` show it (Kafka's ``kafka-topics --describe``).

A row is built from the stored metadata alone (no actor is asked): the leader and the
ISR are what the controller last committed. ``under_replicated``: fewer in-sync
replicas than replicas; ``offline``: no leader (no eligible replica is alive), so the
partition takes no writes or reads until one returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .metadata import TopicMetadata

__all__ = ["PartitionRow", "describe_partitions"]


@dataclass(frozen=True, slots=True)
class PartitionRow:
    """The replicated state of one partition (see the module docstring); ``replica_nodes``:
    replica id -> Ray node id (None: anywhere), in replica order."""

    topic: str
    partition: int
    leader: int | None
    leader_node: str | None
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader_epoch: int
    partition_epoch: int
    under_replicated: bool
    offline: bool
    replica_nodes: tuple[tuple[int, str | None], ...] = ()

    def to_dict(self) -> dict:
        """A JSON-ready dict (lists for the tuples, replica_nodes keyed by str(replica id))."""
        row = asdict(self)
        row["replicas"], row["isr"] = list(self.replicas), list(self.isr)
        row["replica_nodes"] = {str(r): node for r, node in self.replica_nodes}
        return row


def describe_partitions(meta: TopicMetadata) -> list[PartitionRow]:
    """A row per partition of ``meta``, in partition order."""
    rows = []
    for p in range(meta.partitions):
        state = meta.state(p)
        nodes = meta.replica_nodes_of(p)
        rows.append(PartitionRow(
            topic=meta.name, partition=p, leader=state.leader, leader_node=meta.leader_node(p),
            replicas=state.replicas, isr=state.isr, leader_epoch=state.leader_epoch,
            partition_epoch=state.partition_epoch, under_replicated=state.under_replicated,
            offline=state.leader is None, replica_nodes=tuple((r, nodes.get(r)) for r in state.replicas)))
    return rows
