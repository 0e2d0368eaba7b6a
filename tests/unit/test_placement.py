"""Placement of new partitions: least-loaded alive node first, each node within its own budget (no Ray)."""

import pytest

from rayka.config import PartitionBudget
from rayka.coordinator.budget import partition_limit
from rayka.coordinator.placement import partitions_per_node, place_partitions
from rayka.errors import PartitionBudgetError

MiB = 1024 * 1024
GiB = 1024 * MiB


def test_many_one_partition_topics_spread_evenly_over_the_nodes():
    budget = PartitionBudget()
    memory = {"node-a": 8 * GiB, "node-b": 8 * GiB, "node-c": 8 * GiB}
    metadata_nodes = []  # TopicMetadata.nodes of every topic, as the coordinator keeps them
    for t in range(partition_limit(budget, list(memory.values()))):
        existing = partitions_per_node(metadata_nodes, memory)
        metadata_nodes += place_partitions(budget, memory, existing, 1, f"create_topic('t{t}', partitions=1)")
    counts = partitions_per_node(metadata_nodes, memory)
    per_node = partition_limit(budget, [8 * GiB])
    assert counts == {"node-a": per_node, "node-b": per_node, "node-c": per_node}
    with pytest.raises(PartitionBudgetError, match="create_topic\\('one-more'"):
        place_partitions(budget, memory, counts, 1, "create_topic('one-more', partitions=1)")


def test_least_loaded_first_counting_partitions_of_every_topic():
    budget = PartitionBudget(max_partitions=-1)
    memory = {"a": 1 * GiB, "b": 1 * GiB, "c": 1 * GiB}
    existing = partitions_per_node(["a", "a", "a", "b", None, "dead-node"], memory)
    assert existing == {"a": 3, "b": 1, "c": 0}
    assert place_partitions(budget, memory, existing, 4, "x") == ["c", "b", "c", "b"]


def test_a_node_at_or_over_its_own_limit_is_not_chosen_and_no_room_refuses_the_whole_call():
    budget = PartitionBudget(partition_memory_bytes=100 * MiB, memory_fraction=0.5)
    memory = {"a-small": 400 * MiB, "b-big": 1000 * MiB}  # own limits: 2 and 5
    # a-small is the least loaded but full: every new partition goes to b-big
    assert place_partitions(budget, memory, {"a-small": 2, "b-big": 3}, 2, "x") == ["b-big"] * 2
    placed = place_partitions(budget, memory, {"a-small": 0, "b-big": 0}, 7, "x")
    assert placed.count("b-big") == 5 and placed.count("a-small") == 2
    # a-small's memory shrank under its 4 partitions: it takes none, b-big keeps its own room
    shrunk = {"a-small": 200 * MiB, "b-big": 1000 * MiB}  # own limits: 1 and 5
    assert place_partitions(budget, shrunk, {"a-small": 4, "b-big": 0}, 5, "x") == ["b-big"] * 5
    with pytest.raises(PartitionBudgetError) as err:
        place_partitions(budget, shrunk, {"a-small": 4, "b-big": 3}, 3, "create_topic('t', partitions=3)")
    text = str(err.value)
    for part in ("create_topic('t', partitions=3)", "nothing was created", "7 exist", "room for 2 more",
                 "4 of 1", "3 of 5", "GiB of Ray memory", "100 MiB", "max.partitions"):
        assert part in text, part
    assert (err.value.existing, err.value.requested, err.value.limit) == (7, 3, 6)


def test_partitions_on_no_alive_node_use_up_room_where_they_will_run():
    budget = PartitionBudget(partition_memory_bytes=100 * MiB, memory_fraction=1.0)
    one = {"a": 300 * MiB}  # embedded restart: the old partitions name the previous node id
    with pytest.raises(PartitionBudgetError, match="3 exist"):
        place_partitions(budget, one, {"a": 0}, 1, "x", elsewhere=3)
    assert place_partitions(budget, one, {"a": 0}, 1, "x", elsewhere=2) == ["a"]
    two = {"a": 300 * MiB, "b": 300 * MiB}
    assert place_partitions(budget, two, {"a": 3, "b": 0}, 1, "x", elsewhere=2) == ["b"]
    with pytest.raises(PartitionBudgetError):
        place_partitions(budget, two, {"a": 3, "b": 0}, 1, "x", elsewhere=3)


def test_no_alive_node_refuses():
    with pytest.raises(PartitionBudgetError, match="no alive node"):
        place_partitions(PartitionBudget(), {}, {}, 1, "x")


def test_max_partitions_is_a_cluster_total_with_no_per_node_limit():
    memory = {"a": 1 * MiB, "b": 1 * MiB}  # no room by memory
    assert place_partitions(PartitionBudget(max_partitions=4), memory, {"a": 1, "b": 0}, 3, "x") == ["b", "a", "b"]
    with pytest.raises(PartitionBudgetError, match="max.partitions=4"):
        place_partitions(PartitionBudget(max_partitions=4), memory, {"a": 1, "b": 0}, 4, "x")
