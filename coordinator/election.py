"""The controller's rules for a replicated partition: its state, leader elections, ISR changes.

A partition's replicated state is one :class:`PartitionState`, kept by the coordinator
in the cluster metadata (``to_dict``/``from_dict``):

- ``replicas``: replica ids in preferred order (the first is the preferred leader);
  a replica id is the index in its directory name (replica_placement.replica_dir) and is
  never reused within a partition, so a replacement never opens a dead replica's files;
- ``leader``: the replica id leading, or None when no eligible replica is alive;
- ``leader_epoch``: bumped at every leader change; every batch carries it, and requests
  naming an older one are fenced (FencedLeaderEpochError);
- ``isr``: the in-sync replicas, in replica order; the leader is always one of them, and
  with no leader the ISR keeps the last in-sync members, so one of them is elected cleanly
  when it returns;
- ``partition_epoch``: bumped at every change of the state (Kafka's partition epoch): an
  ISR change proposed on an older one is refused (InvalidUpdateVersionError).

Rules (Kafka's controller, KIP-497 AlterPartition):

- :func:`elect_leader`, for a leader that died: the first alive ISR member in replica
  order; with none and ``unclean`` (``unclean.leader.election.enable``) the first alive
  replica, whose ISR is then itself alone (records it lacks are lost: the result says
  so); else no leader. The ISR loses its dead members; both epochs are bumped.
- :func:`preferred_leader_election`: move leadership to the first replica if it is alive,
  in sync, and not leading already.
- :func:`replace_replica`, for self-healing: a new replica (on another node) takes a lost
  follower's place in the replica order, outside the ISR until its leader finds it
  caught up; the partition epoch is bumped, the leader epoch is not (the leader stays).
- :func:`alter_partition`: a leader's ISR change, checked against the state: its leader
  epoch (FencedLeaderEpochError), that it is the leader (NotLeaderError), its partition
  epoch (InvalidUpdateVersionError; a retry of a change already made is answered with the
  current state), and the ISR itself (replicas of the partition, no repeats, holding the
  leader; ValueError, a bug of the leader).

Pure functions of frozen values; the coordinator persists the state they return before
answering anyone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import FencedLeaderEpochError, InvalidUpdateVersionError, NotLeaderError

__all__ = [
    "PartitionState",
    "AlterPartitionRequest",
    "ElectionResult",
    "elect_leader",
    "preferred_leader_election",
    "alter_partition",
    "replace_replica",
]


@dataclass(frozen=True, slots=True)
class PartitionState:
    """Leader, ISR and epochs of one partition (see the module docstring)."""

    replicas: tuple[int, ...]
    leader: int | None
    leader_epoch: int
    isr: tuple[int, ...]
    partition_epoch: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "replicas", tuple(self.replicas))
        object.__setattr__(self, "isr", tuple(self.isr))
        problem = _state_problem(self)
        if problem:
            raise ValueError(f"invalid partition state {self}: {problem}")

    @classmethod
    def initial(cls, replicas: Sequence[int]) -> "PartitionState":
        """A new partition: every replica in sync (all empty), the first one leading, epoch 0."""
        return cls(replicas=tuple(replicas), leader=replicas[0] if replicas else None, leader_epoch=0,
                   isr=tuple(replicas), partition_epoch=0)

    @property
    def under_replicated(self) -> bool:
        """Fewer in-sync replicas than replicas (describe_topic shows it)."""
        return len(self.isr) < len(self.replicas)

    def to_dict(self) -> dict:
        return {"replicas": list(self.replicas), "leader": self.leader, "leader_epoch": self.leader_epoch,
                "isr": list(self.isr), "partition_epoch": self.partition_epoch}

    @classmethod
    def from_dict(cls, data: dict) -> "PartitionState":
        """The state :meth:`to_dict` wrote; ValueError naming what is wrong otherwise."""
        try:
            leader = data["leader"]
            return cls(replicas=tuple(_ints(data["replicas"], "replicas")),
                       leader=None if leader is None else _int(leader, "leader"),
                       leader_epoch=_int(data["leader_epoch"], "leader_epoch"),
                       isr=tuple(_ints(data["isr"], "isr")),
                       partition_epoch=_int(data["partition_epoch"], "partition_epoch"))
        except KeyError as exc:
            raise ValueError(f"partition state {data!r} has no {exc.args[0]!r}") from None
        except TypeError as exc:
            raise ValueError(f"partition state {data!r} is malformed: {exc}") from None

    def replace(self, **changes) -> "PartitionState":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class AlterPartitionRequest:
    """A leader's proposed ISR (Kafka's AlterPartition), with the epochs it is based on."""

    leader: int
    leader_epoch: int
    partition_epoch: int
    isr: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "isr", tuple(self.isr))


@dataclass(frozen=True, slots=True)
class ElectionResult:
    """The state after an election. ``changed``: a new state to persist and announce;
    ``unclean``: the new leader was out of sync (records only the old ISR had are lost);
    ``reason``: why nothing changed, for the caller to show."""

    state: PartitionState
    changed: bool
    unclean: bool = False
    reason: str = ""


def elect_leader(state: PartitionState, alive: Iterable[int], unclean: bool = False) -> ElectionResult:
    """A leader for ``state`` among the ``alive`` replica ids (see the module docstring). With the
    leader alive nothing changes, so the controller may call this on every liveness check."""
    alive = set(alive)
    if state.leader is not None and state.leader in alive:
        return ElectionResult(state, False, reason=f"replica {state.leader} is alive and leads")
    leader = next((r for r in state.replicas if r in alive and r in state.isr), None)
    was_unclean = False
    if leader is not None:
        isr = tuple(r for r in state.replicas if r in state.isr and r in alive)
    elif unclean and any(r in alive for r in state.replicas):
        leader = next(r for r in state.replicas if r in alive)
        isr, was_unclean = (leader,), True
    else:
        if state.leader is None:
            return ElectionResult(state, False, reason=_no_leader_reason(state, alive, unclean))
        # No one to elect: the dead leader is fenced (a new epoch) and the ISR stays as it was.
        isr = state.isr
    new = state.replace(leader=leader, leader_epoch=state.leader_epoch + 1, isr=isr,
                        partition_epoch=state.partition_epoch + 1)
    reason = "" if leader is not None else _no_leader_reason(state, alive, unclean)
    return ElectionResult(new, True, unclean=was_unclean, reason=reason)


def preferred_leader_election(state: PartitionState, alive: Iterable[int]) -> ElectionResult:
    """Leadership back to the preferred (first) replica, if it is alive and in sync."""
    preferred = state.replicas[0]
    if state.leader == preferred:
        return ElectionResult(state, False, reason=f"the preferred replica {preferred} leads already")
    if preferred not in set(alive):
        return ElectionResult(state, False, reason=f"the preferred replica {preferred} is not alive")
    if preferred not in state.isr:
        return ElectionResult(state, False, reason=f"the preferred replica {preferred} is not in sync "
                                                   f"(ISR {list(state.isr)})")
    new = state.replace(leader=preferred, leader_epoch=state.leader_epoch + 1,
                        partition_epoch=state.partition_epoch + 1)
    return ElectionResult(new, True)


def alter_partition(state: PartitionState, request: AlterPartitionRequest) -> PartitionState:
    """The state after the leader's ISR change ``request``, or the error that refuses it."""
    if request.leader_epoch != state.leader_epoch:
        raise FencedLeaderEpochError(
            f"ISR change from leader epoch {request.leader_epoch} refused: the partition is at leader epoch "
            f"{state.leader_epoch} (leader {state.leader}); replica {request.leader} no longer leads it")
    if request.leader != state.leader:
        raise NotLeaderError(
            f"ISR change from replica {request.leader} refused: replica {state.leader} leads the partition "
            f"at leader epoch {state.leader_epoch}")
    problem = _isr_problem(state.replicas, request.isr, state.leader)
    if problem:
        raise ValueError(f"ISR change {list(request.isr)} refused: {problem}")
    isr = tuple(r for r in state.replicas if r in request.isr)
    if request.partition_epoch != state.partition_epoch:
        if request.partition_epoch < state.partition_epoch and isr == state.isr:
            # A retry whose first answer was lost: the change is made already.
            return state
        raise InvalidUpdateVersionError(
            f"ISR change {list(isr)} refused: it was based on partition epoch {request.partition_epoch} but "
            f"the partition is at {state.partition_epoch} (ISR {list(state.isr)}); adopt the current state")
    if isr == state.isr:
        return state
    return state.replace(isr=isr, partition_epoch=state.partition_epoch + 1)


def replace_replica(state: PartitionState, lost: int, new: int) -> PartitionState:
    """The state with replica ``new`` in ``lost``'s place (see the module docstring). Refused
    with ValueError for the leader (elect another first), for the last in-sync replica of a
    leaderless partition (its data would be given up), and for ids not fitting."""
    if lost not in state.replicas:
        raise ValueError(f"replica {lost} is not a replica of the partition ({list(state.replicas)})")
    if new in state.replicas:
        raise ValueError(f"replica id {new} is in use already ({list(state.replicas)}); ids are never reused")
    if lost == state.leader:
        raise ValueError(f"replica {lost} leads the partition: elect another leader before replacing it")
    isr = tuple(r for r in state.isr if r != lost)
    if not isr:
        raise ValueError(f"replica {lost} is the last in-sync replica of a partition with no leader: replacing "
                         "it gives up its records; wait for it, or elect an out-of-sync replica (unclean)")
    replicas = tuple(new if r == lost else r for r in state.replicas)
    return state.replace(replicas=replicas, isr=isr, partition_epoch=state.partition_epoch + 1)


def _isr_problem(replicas: Sequence[int], isr: Sequence[int], leader: int | None) -> str | None:
    if not isr:
        return "an ISR needs at least one member"
    if len(set(isr)) != len(isr):
        return f"it names a replica twice: {list(isr)}"
    strangers = [r for r in isr if r not in replicas]
    if strangers:
        return f"replicas {strangers} are not replicas of the partition ({list(replicas)})"
    if leader is not None and leader not in isr:
        return f"the leader {leader} is not in it"
    return None


def _state_problem(state: PartitionState) -> str | None:
    if not state.replicas:
        return "no replicas"
    if len(set(state.replicas)) != len(state.replicas):
        return "a replica is named twice"
    if any(not isinstance(r, int) or isinstance(r, bool) or r < 0 for r in state.replicas):
        return "replica ids must be integers >= 0"
    if state.leader is not None and state.leader not in state.replicas:
        return "the leader is not one of the replicas"
    if state.leader_epoch < 0 or state.partition_epoch < 0:
        return "negative epoch"
    return _isr_problem(state.replicas, state.isr, state.leader)


def _no_leader_reason(state: PartitionState, alive: set, unclean: bool) -> str:
    if not any(r in alive for r in state.replicas):
        return f"no replica of {list(state.replicas)} is alive"
    return (f"no in-sync replica (ISR {list(state.isr)}) is alive; out-of-sync replicas are alive but "
            "unclean.leader.election.enable is false" if not unclean else "no replica is alive")


def _int(value, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"partition state field {name} must be an integer, got {value!r}")
    return value


def _ints(values, name: str) -> list[int]:
    if not isinstance(values, list):
        raise ValueError(f"partition state field {name} must be a list, got {values!r}")
    return [_int(v, name) for v in values]
