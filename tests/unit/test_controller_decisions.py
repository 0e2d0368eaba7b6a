"""The controller's per-tick decisions (coordinator/controller.py): elect, recreate, replace,
and nothing to do; time moved by a ManualClock."""

import pytest

from rayka.clock import ManualClock
from rayka.coordinator.controller import Elect, Recreate, Replace, ReplicaHealth, ReplicaReport, decide
from rayka.coordinator.election import PartitionState
from rayka.coordinator.metadata import ClusterMetadata, MetadataStore

NODES = ["a", "b", "c"]


def _topic(config=None, rf=3):
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("t", 1, replication_factor=rf, config=config, replica_nodes=[NODES[:rf]])
    return meta


def _tick(health, meta, answered=None, dead=(), gone=()):
    """One tick: every replica answers unless listed as silent (answered=False), dead or on a gone node."""
    nodes = meta.get("t").replica_nodes_of(0)
    answered = answered or {}
    health.update(ReplicaReport("t", 0, r, answered=answered.get(r, True) and r not in dead and nodes[r] not in gone,
                                dead=r in dead, node_alive=nodes[r] not in gone)
                  for r in meta.get("t").state(0).replicas)
    return [n for n in NODES + ["d"] if n not in gone]


def _never(exclude):
    raise AssertionError("placement must not be asked")


@pytest.fixture
def clock():
    return ManualClock()


def test_all_healthy_means_nothing_to_do(clock):
    meta, health = _topic(), ReplicaHealth(clock)
    for _ in range(3):
        alive = _tick(health, meta)
        assert decide(meta.get("t"), health, alive, clock(), _never) == []
        clock.advance(1000)
    assert len(health) == 3


def test_a_leader_missing_two_pings_is_replaced_by_the_next_in_sync_replica(clock):
    meta, health = _topic(), ReplicaHealth(clock)
    alive = _tick(health, meta, answered={0: False})
    assert decide(meta.get("t"), health, alive, clock(), _never) == []  # one miss is tolerated
    alive = _tick(health, meta, answered={0: False})
    [elect] = decide(meta.get("t"), health, alive, clock(), _never)
    assert elect == Elect("t", 0, PartitionState((0, 1, 2), 1, 1, (1, 2), 1), unclean_loss=False)
    assert elect.expected_partition_epoch == 0
    assert health.view("t", 0, 0).missed == 2 and health.view("t", 0, 0).failing_since_ms is not None


def test_a_leader_on_a_gone_node_is_replaced_at_once(clock):
    meta, health = _topic(), ReplicaHealth(clock)
    alive = _tick(health, meta, gone={"a"})
    [elect] = decide(meta.get("t"), health, alive, clock(), _never)
    assert elect.new_state.leader == 1 and elect.new_state.isr == (1, 2)


def test_a_killed_leader_is_elected_away_and_recreated_in_place(clock):
    meta, health = _topic(), ReplicaHealth(clock)
    alive = _tick(health, meta, dead={0})
    actions = decide(meta.get("t"), health, alive, clock(), _never)
    assert [type(a) for a in actions] == [Elect, Recreate]
    assert actions[0].new_state.leader == 1 and actions[1] == Recreate("t", 0, 0, "a")


def test_a_killed_follower_is_recreated_and_no_election_happens(clock):
    meta, health = _topic(), ReplicaHealth(clock)
    alive = _tick(health, meta, dead={2})
    assert decide(meta.get("t"), health, alive, clock(), _never) == [Recreate("t", 0, 2, "c")]


def test_no_in_sync_replica_alive_fences_the_leader_and_elects_no_one_unless_unclean(clock):
    meta = _topic()
    state = PartitionState((0, 1, 2), 0, 3, (0,), 7)  # followers out of sync
    meta.set_partition_state("t", 0, state)
    health = ReplicaHealth(clock)
    alive = _tick(health, meta, gone={"a"})
    [elect] = decide(meta.get("t"), health, alive, clock(), _never)
    assert elect.new_state.leader is None and elect.new_state.leader_epoch == 4 and not elect.unclean_loss
    meta.set_partition_state("t", 0, elect.new_state)
    assert decide(meta.get("t"), health, alive, clock(), _never) == []  # nothing more until 0 is back

    unclean = _topic({"unclean.leader.election.enable": True})
    unclean.set_partition_state("t", 0, state)
    health = ReplicaHealth(clock)
    alive = _tick(health, unclean, gone={"a"})
    [elect] = decide(unclean.get("t"), health, alive, clock(), _never)
    assert elect.new_state.leader == 1 and elect.new_state.isr == (1,) and elect.unclean_loss


def test_a_leaderless_partition_elects_its_in_sync_replica_when_it_answers_again(clock):
    meta = _topic()
    meta.set_partition_state("t", 0, PartitionState((0, 1, 2), None, 4, (0,), 8))
    health = ReplicaHealth(clock)
    alive = _tick(health, meta, answered={0: False})
    assert decide(meta.get("t"), health, alive, clock(), _never) == []
    alive = _tick(health, meta)
    [elect] = decide(meta.get("t"), health, alive, clock(), _never)
    assert elect.new_state.leader == 0 and elect.new_state.leader_epoch == 5


def test_a_follower_whose_node_stays_gone_is_replaced_after_the_timeout(clock):
    meta, health = _topic({"replica.lost.timeout.ms": 5000}), ReplicaHealth(clock)
    asked = []

    def place(exclude):
        asked.append(exclude)
        return "d"

    alive = _tick(health, meta, gone={"c"})
    assert decide(meta.get("t"), health, alive, clock(), place) == []
    clock.advance(5000)
    alive = _tick(health, meta, gone={"c"})
    assert decide(meta.get("t"), health, alive, clock(), place) == []  # not longer than the timeout yet
    clock.advance(1)
    alive = _tick(health, meta, gone={"c"})
    [replace] = decide(meta.get("t"), health, alive, clock(), place)
    assert replace == Replace("t", 0, 2, 3, PartitionState((0, 1, 3), 0, 0, (0, 1), 1), "d")
    assert asked == [frozenset({"a", "b"})] and replace.expected_partition_epoch == 0
    meta.set_partition_state("t", 0, replace.new_state, replica_nodes={3: "d"})
    alive = _tick(health, meta, gone={"c"})
    assert decide(meta.get("t"), health, alive, clock(), place) == [] and len(health) == 3


def test_no_room_for_a_replacement_does_nothing_and_asks_again_next_tick(clock):
    meta, health = _topic({"replica.lost.timeout.ms": 0}), ReplicaHealth(clock)
    asked = []
    alive = _tick(health, meta, gone={"b"})
    clock.advance(1)
    alive = _tick(health, meta, gone={"b"})
    assert decide(meta.get("t"), health, alive, clock(), lambda ex: asked.append(ex)) == []
    assert decide(meta.get("t"), health, alive, clock(), lambda ex: asked.append(ex)) == []
    assert len(asked) == 2


def test_a_lost_leader_is_elected_away_first_and_replaced_a_tick_later(clock):
    meta, health = _topic({"replica.lost.timeout.ms": 0}), ReplicaHealth(clock)
    alive = _tick(health, meta, gone={"a"})
    clock.advance(10)
    alive = _tick(health, meta, gone={"a"})
    [elect] = decide(meta.get("t"), health, alive, clock(), lambda ex: "d")
    assert isinstance(elect, Elect)
    meta.set_partition_state("t", 0, elect.new_state, expected_partition_epoch=elect.expected_partition_epoch)
    [replace] = decide(meta.get("t"), health, alive, clock(), lambda ex: "d")
    assert replace.lost_replica == 0 and replace.new_state.replicas == (3, 1, 2)
    assert replace.new_state.leader == 1


def test_the_last_in_sync_replica_of_a_leaderless_partition_is_never_replaced(clock):
    meta = _topic({"replica.lost.timeout.ms": 0})
    meta.set_partition_state("t", 0, PartitionState((0, 1, 2), None, 2, (0,), 3))
    health = ReplicaHealth(clock)
    alive = _tick(health, meta, gone={"a"})
    clock.advance(10)
    alive = _tick(health, meta, gone={"a"})
    assert decide(meta.get("t"), health, alive, clock(), _never) == []


def test_a_replica_left_out_of_a_tick_is_forgotten(clock):
    meta, health = _topic(), ReplicaHealth(clock)
    _tick(health, meta, answered={2: False})
    health.update([ReplicaReport("t", 0, 0, True), ReplicaReport("t", 0, 1, True)])
    assert health.view("t", 0, 2) is None and len(health) == 2


def test_decide_is_deterministic_over_partitions(clock):
    meta = ClusterMetadata(MetadataStore(None))
    meta.create_topic("t", 3, replication_factor=2, replica_nodes=[["a", "b"], ["b", "a"], ["a", "b"]])
    health = ReplicaHealth(clock)
    health.update(ReplicaReport("t", p, r, answered=True, dead=(p, r) == (1, 1)) for p in range(3) for r in (0, 1))
    health.update(ReplicaReport("t", p, r, answered=True, node_alive=n != "a")
                  for p in range(3) for r, n in meta.get("t").replica_nodes_of(p).items())
    first = decide(meta.get("t"), health, ["b"], clock(), _never)
    assert first == decide(meta.get("t"), health, ["b"], clock(), _never)
    assert [(type(a).__name__, a.partition) for a in first] == [("Elect", 0), ("Elect", 2)]


def test_an_in_sync_replica_whose_log_ends_below_the_hw_is_not_elected(clock):
    # Replica 1 cut committed records to copy a damaged range again; its committed ISR still
    # names it, but electing it would lose those records: replica 2 leads instead.
    meta, health = _topic(), ReplicaHealth(clock)
    reports = [ReplicaReport("t", 0, 0, answered=False, dead=True),
               ReplicaReport("t", 0, 1, answered=True, behind_hw=True),
               ReplicaReport("t", 0, 2, answered=True)]
    health.update(reports)
    assert not health.view("t", 0, 1).electable and health.view("t", 0, 1).alive
    elect = next(a for a in decide(meta.get("t"), health, NODES, clock(), _never) if isinstance(a, Elect))
    assert elect.new_state.leader == 2 and 1 not in elect.new_state.isr
    health.update([ReplicaReport("t", 0, 0, answered=False, dead=True),
                   ReplicaReport("t", 0, 1, answered=True, behind_hw=True),
                   ReplicaReport("t", 0, 2, answered=False, dead=True)])
    elect = next((a for a in decide(meta.get("t"), health, NODES, clock(), _never) if isinstance(a, Elect)), None)
    assert elect is None or elect.new_state.leader is None  # nobody holding every record: nobody leads
