"""Partition reassignment, one safe step at a time (coordinator/reassignment.py): new replicas
first, the leader moved only once they are in sync, old replicas removed last."""

import pytest

from rayka.coordinator.election import PartitionState
from rayka.coordinator.reassignment import check_target, next_step
from rayka.errors import ConfigError


def test_moving_a_partition_from_nodes_abc_to_bcd_takes_add_wait_leader_remove_done():
    state = PartitionState.initial([0, 1, 2])
    nodes = {0: "a", 1: "b", 2: "c"}
    step = next_step(state, nodes, ["b", "c", "d"], next_id=3)
    assert step.kind == "add" and step.added == ((3, "d"),)
    assert step.state.replicas == (0, 1, 2, 3) and 3 not in step.state.isr
    state, nodes = step.state, {**nodes, 3: "d"}
    assert next_step(state, nodes, ["b", "c", "d"], next_id=4).kind == "wait"  # replica 3 still copying
    state = state.replace(isr=(0, 1, 2, 3), partition_epoch=state.partition_epoch + 1)
    step = next_step(state, nodes, ["b", "c", "d"], next_id=4)
    assert step.kind == "leader" and step.state.leader == 1
    assert step.state.leader_epoch == state.leader_epoch + 1
    state = step.state
    step = next_step(state, nodes, ["b", "c", "d"], next_id=4)
    assert step.kind == "remove" and step.removed == (0,)
    assert step.state.replicas == (1, 2, 3) and step.state.isr == (1, 2, 3) and step.state.leader == 1
    state = step.state
    nodes = {r: nodes[r] for r in state.replicas}
    assert next_step(state, nodes, ["b", "c", "d"], next_id=4).kind == "done"


def test_a_new_replica_never_reuses_an_id():
    state = PartitionState.initial([0, 1])
    step = next_step(state, {0: "a", 1: "b"}, ["a", "b", "c"], next_id=7)
    assert step.added == ((7, "c"),)


def test_the_target_order_sets_the_preferred_leader_after_removal():
    state = PartitionState(replicas=(0, 1, 2, 3), leader=1, leader_epoch=1, isr=(0, 1, 2, 3), partition_epoch=3)
    step = next_step(state, {0: "a", 1: "b", 2: "c", 3: "d"}, ["d", "b", "c"], next_id=4)
    assert step.kind == "remove" and step.state.replicas == (3, 1, 2)


@pytest.mark.parametrize("target, problem", [([], "non-empty"), (["a", "a"], "twice"), (["a", "zz"], "not alive")])
def test_a_bad_target_is_refused_naming_the_problem(target, problem):
    with pytest.raises(ConfigError, match=problem):
        check_target(target, {"a", "b"}, "reassign")
