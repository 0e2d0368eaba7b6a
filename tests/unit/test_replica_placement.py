"""Replica placement: distinct nodes, even leaders, zones first, budgets, colocation, replacements."""

import random
from collections import Counter

import pytest

from rayka.config import PartitionBudget
from rayka.coordinator.replica_placement import next_replica_id, place_replacement, place_replicas, replica_dir
from rayka.errors import ConfigError, InvalidTopicError, PartitionBudgetError

MiB = 1024 * 1024
GiB = 1024 * MiB
OPEN = PartitionBudget(max_partitions=-1)


def test_three_nodes_rf3_round_robin_leaders_like_kafka():
    memory = {"a": GiB, "b": GiB, "c": GiB}
    placed = place_replicas(OPEN, memory, {}, 6, 3, "create_topic('t', partitions=6)")
    assert placed.warning is None
    assert placed.nodes[:3] == (("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b"))
    assert Counter(p[0] for p in placed.nodes) == {"a": 2, "b": 2, "c": 2}
    assert all(len(set(p)) == 3 for p in placed.nodes)


def test_leaders_and_replicas_spread_evenly_and_the_rotation_continues():
    rng = random.Random(3)
    for _ in range(30):
        nodes = {f"n{i}": GiB for i in range(rng.randint(2, 7))}
        rf = rng.randint(1, len(nodes))
        count = rng.randint(1, 40)
        placed = place_replicas(OPEN, nodes, {}, count, rf, "x")
        replicas = Counter(n for p in placed.nodes for n in p)
        leaders = Counter(p[0] for p in placed.nodes)
        assert all(len(set(p)) == rf for p in placed.nodes)
        assert max(replicas.values()) - min(replicas.get(n, 0) for n in nodes) <= 1
        assert max(leaders.values()) - min(leaders.get(n, 0) for n in nodes) <= 1


def test_existing_load_and_leaders_are_counted():
    memory = {"a": GiB, "b": GiB, "c": GiB}
    placed = place_replicas(OPEN, memory, {"a": 5}, 1, 2, "x")
    assert placed.nodes == (("b", "c"),)
    placed = place_replicas(OPEN, memory, {"a": 1, "b": 1, "c": 1}, 1, 1, "x", existing_leaders={"a": 1, "b": 1})
    assert placed.nodes == (("c",),)


def test_zones_first():
    memory = {"a1": GiB, "a2": GiB, "b1": GiB, "b2": GiB, "c1": GiB}
    zones = {"a1": "A", "a2": "A", "b1": "B", "b2": "B", "c1": "C"}
    placed = place_replicas(OPEN, memory, {}, 10, 3, "x", zones=zones)
    for p in placed.nodes:
        assert len({zones[n] for n in p}) == 3, p
    two_zones = place_replicas(OPEN, memory, {}, 10, 2, "x", zones={n: zones[n] for n in ("a1", "a2", "b1", "b2")})
    for p in two_zones.nodes:
        assert len({n[0] for n in p}) == 2, p  # c1 has no zone: a zone of its own
    # fewer zones than replicas: the zones are all used, then distinct nodes
    rf4 = place_replicas(OPEN, {"a1": GiB, "a2": GiB, "b1": GiB, "b2": GiB}, {}, 4, 4, "x",
                         zones={"a1": "A", "a2": "A", "b1": "B", "b2": "B"})
    assert all(len(set(p)) == 4 for p in rf4.nodes)


def test_fewer_nodes_than_replicas_refused_unless_colocate():
    memory = {"a": GiB, "b": GiB}
    with pytest.raises(ConfigError) as info:
        place_replicas(OPEN, memory, {}, 2, 3, "create_topic('t', partitions=2)")
    message = str(info.value)
    assert "create_topic('t', partitions=2)" in message and "replication_factor=3" in message
    assert "2 node(s) are alive" in message and "replica.placement=colocate" in message
    placed = place_replicas(OPEN, memory, {}, 2, 3, "create_topic('t')", colocate=True)
    assert all(len(p) == 3 and set(p) == {"a", "b"} for p in placed.nodes)
    assert "replica.placement=colocate" in placed.warning and "survives the loss of 1 node(s), not 2" in placed.warning
    assert place_replicas(OPEN, {"a": GiB, "b": GiB, "c": GiB}, {}, 2, 3, "x", colocate=True).warning is None
    with pytest.raises(ConfigError):
        place_replicas(OPEN, memory, {}, 1, 0, "x")


def test_per_node_budget_refuses_the_whole_call():
    budget = PartitionBudget(partition_memory_bytes=100 * MiB, memory_fraction=0.5)
    memory = {"a": 400 * MiB, "b": 400 * MiB, "c": 1000 * MiB}  # limits 2, 2, 5
    placed = place_replicas(budget, memory, {"a": 2}, 2, 2, "x")
    assert all("a" not in p and len(set(p)) == 2 for p in placed.nodes)
    with pytest.raises(PartitionBudgetError) as info:
        place_replicas(budget, memory, {"a": 2, "b": 2}, 1, 2, "create_topic('t', partitions=1)")
    err = info.value
    assert "create_topic('t', partitions=1)" in str(err) and "x 2 replica(s)" in str(err)
    assert err.requested == 2 and err.existing == 4
    # colocate lets the replicas share the one node with room
    assert place_replicas(budget, memory, {"a": 2, "b": 2}, 1, 2, "x", colocate=True).nodes == (("c", "c"),)


def test_cluster_total_counts_every_replica():
    budget = PartitionBudget(max_partitions=10)
    memory = {"a": GiB, "b": GiB, "c": GiB}
    place_replicas(budget, memory, {"a": 1}, 3, 3, "x")
    with pytest.raises(PartitionBudgetError) as info:
        place_replicas(budget, memory, {"a": 2}, 3, 3, "x")
    assert info.value.requested == 9


def test_replacement_goes_to_a_node_not_holding_the_partition():
    memory = {"a": GiB, "b": GiB, "c": GiB, "d": GiB}
    assert place_replacement(OPEN, memory, {"a": 1, "b": 1, "c": 0, "d": 3}, ["a", "b"]) == "c"
    assert place_replacement(OPEN, memory, {}, ["a", "b", "c", "d"]) is None
    assert place_replacement(OPEN, memory, {"a": 2}, ["a", "b", "c", "d"], colocate=True) == "b"
    zones = {"a": "A", "b": "B", "c": "A", "d": "C"}
    assert place_replacement(OPEN, memory, {"d": 9}, ["a", "b"], zones=zones) == "d"
    budget = PartitionBudget(partition_memory_bytes=100 * MiB, memory_fraction=0.5)
    small = {"a": 400 * MiB, "b": 400 * MiB}
    assert place_replacement(budget, small, {"b": 2}, ["a"]) is None
    assert place_replacement(PartitionBudget(max_partitions=3), memory, {"a": 3}, ["a"]) is None


def test_replica_directories_never_nest_or_collide(tmp_path):
    dirs = [replica_dir(tmp_path, "orders", p, r) for p in range(3) for r in range(4)]
    assert len(set(dirs)) == len(dirs)
    assert replica_dir(tmp_path, "orders", 1, 0) == (tmp_path / "topics" / "orders" / "1").resolve()
    assert replica_dir(tmp_path, "orders", 1, 2).name == "1.r2"
    for a in dirs:
        assert all(a not in b.parents for b in dirs)
    with pytest.raises(InvalidTopicError):
        replica_dir(tmp_path, "../x", 0, 1)
    with pytest.raises(ValueError):
        replica_dir(tmp_path, "orders", 0, -1)


def test_next_replica_id_never_reuses():
    assert next_replica_id([]) == 0
    assert next_replica_id([0, 1, 2]) == 3
    assert next_replica_id([0, 3]) == 4
