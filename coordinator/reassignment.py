"""Moving a partition's replicas to other nodes (Kafka's partition reassignment), one safe step at a time.

A reassignment gives a partition a target: the nodes its replicas should live on. The
controller takes one step per check, each a new partition state persisted before the
replicas are told, and never one that gives up a copy before its replacement is in sync:

1. **add**: a new replica (a new id, never reused) on every target node that holds none;
   it starts outside the ISR and copies the log from the leader;
2. **move the leader**: once every target replica is in the ISR, a leader on a node
   outside the target hands over to the first in-sync replica on a target node (leader
   epoch bumped, so the old leader is fenced);
3. **remove**: the replicas on nodes outside the target leave the replica set and the
   ISR; the caller then deletes their actors and files;
4. **done**: the replicas are exactly on the target nodes.

Pure: :func:`next_step` reads a state and its replicas' nodes and returns the step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from .election import PartitionState
from .replica_placement import next_replica_id

__all__ = ["ReassignStep", "next_step", "check_target"]


@dataclass(frozen=True, slots=True)
class ReassignStep:
    """``kind`` is "add", "leader", "remove", "wait" (new replicas still copying) or "done";
    ``state`` the new state to persist (the current one for "wait" and "done"); ``added`` the new replicas' nodes; ``removed`` the replicas
    that left (delete their actors and files once the state is stored)."""

    kind: str
    state: PartitionState
    added: tuple[tuple[int, str], ...] = ()
    removed: tuple[int, ...] = ()


def check_target(nodes: object, alive: Iterable[str], what: str) -> tuple[str, ...]:
    """The target nodes of a reassignment, checked: a non-empty list of distinct alive node ids."""
    alive = set(alive)
    if not isinstance(nodes, (list, tuple)) or not nodes or not all(isinstance(n, str) for n in nodes):
        raise ConfigError(f"{what}: the target must be a non-empty list of Ray node ids, got {nodes!r}")
    if len(set(nodes)) != len(nodes):
        raise ConfigError(f"{what}: the target names a node twice ({list(nodes)}); each replica needs its own node")
    if len(nodes) > 16:
        raise ConfigError(f"{what}: at most 16 replicas per partition, got {len(nodes)}")
    gone = [n for n in nodes if n not in alive]
    if gone:
        raise ConfigError(f"{what}: node(s) {gone} are not alive Ray nodes; alive: {sorted(alive)}")
    return tuple(nodes)


def next_step(state: PartitionState, replica_nodes: Mapping[int, str | None], target: Sequence[str],
              next_id: int) -> ReassignStep:
    """The next step towards replicas on exactly the ``target`` nodes (see the module docstring);
    ``next_id`` is the partition's first never-used replica id (TopicMetadata.next_replica_id)."""
    target = list(target)
    held = {replica_nodes.get(r) for r in state.replicas}
    adding = [n for n in target if n not in held]
    if adding:
        new_id = max(next_id, next_replica_id(state.replicas))
        added = tuple((new_id + i, node) for i, node in enumerate(adding))
        replicas = state.replicas + tuple(r for r, _ in added)
        return ReassignStep("add", state.replace(replicas=replicas, partition_epoch=state.partition_epoch + 1),
                            added=added)
    on_target = [r for r in state.replicas if replica_nodes.get(r) in set(target)]
    if not all(r in state.isr for r in on_target):
        return ReassignStep("wait", state)  # the new replicas are still copying
    if state.leader is None or replica_nodes.get(state.leader) not in set(target):
        leader = next(r for r in state.replicas if r in state.isr and replica_nodes.get(r) in set(target))
        return ReassignStep("leader", state.replace(leader=leader, leader_epoch=state.leader_epoch + 1,
                                                    partition_epoch=state.partition_epoch + 1))
    leaving = tuple(r for r in state.replicas if r not in on_target)
    if leaving:
        # Keep the target's order of preference: the first target node's replica is the preferred leader.
        order = {node: i for i, node in enumerate(target)}
        replicas = tuple(sorted(on_target, key=lambda r: order[replica_nodes.get(r)]))
        isr = tuple(r for r in replicas if r in state.isr)
        return ReassignStep("remove", state.replace(replicas=replicas, isr=isr,
                                                    partition_epoch=state.partition_epoch + 1), removed=leaving)
    return ReassignStep("done", state)
