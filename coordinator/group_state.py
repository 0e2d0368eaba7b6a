"""A consumer group's states and the table of the moves between them.

Every state change of a :class:`rayka.coordinator.groups.Group` goes through its
one transition method, which refuses (as an internal error: it would be a bug) any
move that is not in :data:`TRANSITIONS`. A group is born Empty, or, restored from
a snapshot after a coordinator restart, in the settled generation the snapshot
recorded (``Group.from_snapshot``): being born in a state is not a move.

Moves (the why of each is in the table)::

    Empty --> PreparingRebalance --> CompletingRebalance --> Stable
                ^       |                  |                   |
                |       +--> Empty         +--> (client-assigned only) PreparingRebalance, Empty
                +----------------------------------------------+  (and Stable --> Empty)
    Empty, PreparingRebalance, Stable --> Dead; Dead is final.

In rayka's own (server-side) groups, CompletingRebalance only lasts while the
assignment is computed (the coordinator computes it itself, in one call), so
nothing leaves it but to Stable. In a Kafka client-assigned group
(``client_groups``) it is Kafka's AwaitingSync: it lasts until the leader's
SyncGroup, and a member that joins, leaves or is evicted meanwhile starts the
rebalance again (or empties the group).
"""

from __future__ import annotations

import enum

__all__ = ["GroupState", "GroupStateMachine", "TRANSITIONS", "is_transition_valid"]


class GroupState(enum.Enum):
    """Kafka's group states (the values are Kafka's names, shown by describe_group)."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_S = GroupState
# source -> {target: why}; the only moves a group makes.
TRANSITIONS: dict[GroupState, dict[GroupState, str]] = {
    _S.EMPTY: {
        _S.PREPARING_REBALANCE: "a first member joins",
        _S.DEAD: "the group is deleted",
    },
    _S.PREPARING_REBALANCE: {
        _S.COMPLETING_REBALANCE: "every member joined, or the rebalance timeout passed",
        _S.EMPTY: "the last member left or was evicted before the rebalance completed",
        _S.DEAD: "the group is deleted",
    },
    _S.COMPLETING_REBALANCE: {
        _S.STABLE: "the new generation's assignment is made (a Kafka group: the leader's SyncGroup)",
        _S.PREPARING_REBALANCE: "a Kafka group only: a member joins, leaves or is evicted, or the leader "
                                "did not sync within the rebalance timeout, before the leader's SyncGroup",
        _S.EMPTY: "a Kafka group only: the last member left or was evicted before the leader's SyncGroup",
    },
    _S.STABLE: {
        _S.PREPARING_REBALANCE: "a member joins, leaves, is evicted or changes its subscription, partitions "
                                "are added, or a cooperative hand-over follows",
        _S.EMPTY: "the last member left or was evicted",
        _S.DEAD: "the group is deleted",
    },
    _S.DEAD: {},  # final: the coordinator forgets a deleted group; its id gets a new Group
}


def is_transition_valid(source: GroupState, target: GroupState) -> bool:
    """Whether a group may move from ``source`` to ``target`` (a move in :data:`TRANSITIONS`)."""
    return target in TRANSITIONS[source]


class GroupStateMachine:
    """A group's state, for rayka's own groups and Kafka's client-assigned ones alike: read as
    ``state``, changed only by ``_transition_to``, which refuses a move not in TRANSITIONS.
    The subclass sets ``group_id`` and the starting ``_state``."""

    group_id: str
    _state: GroupState

    @property
    def state(self) -> GroupState:
        """The group's state; it changes only through ``_transition_to``."""
        return self._state

    def _transition_to(self, target: GroupState) -> None:
        """Move to ``target`` (staying is no move); a move not in the table is a bug, refused."""
        if self._state is target:
            return
        if not is_transition_valid(self._state, target):
            raise AssertionError(f"group {self.group_id}: illegal transition {self._state.value} -> "
                                 f"{target.value} (not in group_state.TRANSITIONS)")
        self._state = target
