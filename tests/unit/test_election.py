"""The controller's rules: leader election (clean and unclean), preferred leaders, AlterPartition."""

import json
import random

import pytest

from rayka.coordinator.election import (
    AlterPartitionRequest,
    PartitionState,
    alter_partition,
    elect_leader,
    preferred_leader_election,
)
from rayka.errors import FencedLeaderEpochError, InvalidUpdateVersionError, NotLeaderError


def state(replicas=(0, 1, 2), leader=0, leader_epoch=3, isr=(0, 1, 2), partition_epoch=7):
    return PartitionState(replicas=replicas, leader=leader, leader_epoch=leader_epoch, isr=isr,
                          partition_epoch=partition_epoch)


def test_initial_state_and_round_trip_through_json():
    s = PartitionState.initial([2, 0, 1])
    assert (s.leader, s.leader_epoch, s.isr, s.partition_epoch) == (2, 0, (2, 0, 1), 0)
    assert not s.under_replicated
    data = json.loads(json.dumps(s.to_dict()))
    assert PartitionState.from_dict(data) == s
    leaderless = state(leader=None, isr=(1,))
    assert PartitionState.from_dict(json.loads(json.dumps(leaderless.to_dict()))) == leaderless


@pytest.mark.parametrize("data, words", [
    ({"replicas": [0], "leader": 0, "leader_epoch": 0, "isr": [0]}, "partition_epoch"),
    ({"replicas": "01", "leader": 0, "leader_epoch": 0, "isr": [0], "partition_epoch": 0}, "must be a list"),
    ({"replicas": [0], "leader": "0", "leader_epoch": 0, "isr": [0], "partition_epoch": 0}, "integer"),
    ({"replicas": [0, 1], "leader": 1, "leader_epoch": 0, "isr": [0], "partition_epoch": 0}, "leader 1 is not in"),
    ({"replicas": [0, 0], "leader": 0, "leader_epoch": 0, "isr": [0], "partition_epoch": 0}, "twice"),
    ({"replicas": [0], "leader": 0, "leader_epoch": 0, "isr": [], "partition_epoch": 0}, "at least one"),
    ({"replicas": [0], "leader": 0, "leader_epoch": 0, "isr": [0, 5], "partition_epoch": 0}, "not replicas"),
    ({"replicas": [0], "leader": 4, "leader_epoch": 0, "isr": [0], "partition_epoch": 0}, "not one of"),
    ({"replicas": [0], "leader": 0, "leader_epoch": -1, "isr": [0], "partition_epoch": 0}, "negative"),
])
def test_from_dict_refuses_malformed_state(data, words):
    with pytest.raises(ValueError) as info:
        PartitionState.from_dict(data)
    assert words in str(info.value)


def test_live_leader_is_not_replaced():
    s = state()
    result = elect_leader(s, alive={0, 1, 2})
    assert not result.changed and result.state is s and "leads" in result.reason


def test_dead_leader_replaced_by_first_alive_isr_member_in_replica_order():
    s = state(replicas=(0, 2, 1), isr=(0, 2, 1))
    result = elect_leader(s, alive={1, 2})
    assert result.changed and not result.unclean
    assert result.state == s.replace(leader=2, leader_epoch=4, isr=(2, 1), partition_epoch=8)


def test_out_of_sync_replica_is_never_elected_by_default():
    s = state(isr=(0, 1))
    result = elect_leader(s, alive={2})
    assert result.changed and result.state.leader is None
    assert result.state.isr == (0, 1) and result.state.leader_epoch == 4  # the dead leader is fenced
    assert "unclean.leader.election.enable" in result.reason
    again = elect_leader(result.state, alive={2})
    assert not again.changed and again.state is result.state
    back = elect_leader(result.state, alive={1, 2})  # an in-sync member returns: elected cleanly
    assert back.state.leader == 1 and back.state.isr == (1,) and back.state.leader_epoch == 5


def test_unclean_election_takes_the_first_alive_replica_alone():
    s = state(isr=(0, 1))
    result = elect_leader(s, alive={2}, unclean=True)
    assert result.changed and result.unclean
    assert (result.state.leader, result.state.isr, result.state.leader_epoch) == (2, (2,), 4)


def test_no_replica_alive():
    result = elect_leader(state(), alive=set(), unclean=True)
    assert result.state.leader is None and "no replica" in result.reason


def test_preferred_leader_election():
    s = state(leader=1, isr=(0, 1, 2))
    moved = preferred_leader_election(s, alive={0, 1, 2})
    assert moved.changed and moved.state.leader == 0 and moved.state.leader_epoch == 4
    assert not preferred_leader_election(moved.state, alive={0, 1, 2}).changed
    assert "not alive" in preferred_leader_election(s, alive={1, 2}).reason
    lagging = state(leader=1, isr=(1, 2))
    assert "not in sync" in preferred_leader_election(lagging, alive={0, 1, 2}).reason


def test_alter_partition_shrink_and_expand_bump_the_partition_epoch():
    s = state()
    shrunk = alter_partition(s, AlterPartitionRequest(leader=0, leader_epoch=3, partition_epoch=7, isr=(0, 2)))
    assert shrunk.isr == (0, 2) and shrunk.partition_epoch == 8 and shrunk.leader_epoch == 3
    grown = alter_partition(shrunk, AlterPartitionRequest(0, 3, 8, (2, 1, 0)))
    assert grown.isr == (0, 1, 2) and grown.partition_epoch == 9  # kept in replica order


def test_alter_partition_refuses_a_deposed_leader():
    s = state(leader=1, leader_epoch=4)
    with pytest.raises(FencedLeaderEpochError) as info:
        alter_partition(s, AlterPartitionRequest(0, 3, 7, (0,)))
    assert info.value.retriable and "leader epoch 4" in str(info.value)
    with pytest.raises(NotLeaderError):
        alter_partition(s, AlterPartitionRequest(0, 4, 7, (0, 1)))


def test_alter_partition_refuses_a_stale_partition_epoch():
    s = state()
    with pytest.raises(InvalidUpdateVersionError) as info:
        alter_partition(s, AlterPartitionRequest(0, 3, 6, (0, 1)))
    assert "partition epoch 6" in str(info.value) and not info.value.retriable
    with pytest.raises(InvalidUpdateVersionError):
        alter_partition(s, AlterPartitionRequest(0, 3, 8, (0, 1)))


def test_retry_of_a_change_already_made_gets_the_current_state():
    s = state()
    request = AlterPartitionRequest(0, 3, 7, (0, 1))
    done = alter_partition(s, request)
    assert alter_partition(done, request) is done
    assert alter_partition(done, AlterPartitionRequest(0, 3, 8, (0, 1))) is done  # no change, no bump


@pytest.mark.parametrize("isr, words", [
    ((), "at least one"),
    ((1, 2), "leader 0 is not in"),
    ((0, 5), "not replicas"),
    ((0, 0), "twice"),
])
def test_alter_partition_refuses_a_malformed_isr(isr, words):
    with pytest.raises(ValueError) as info:
        alter_partition(state(), AlterPartitionRequest(0, 3, 7, isr))
    assert words in str(info.value)


def test_random_elections_keep_the_invariants():
    rng = random.Random(11)
    s = PartitionState.initial([0, 1, 2, 3])
    epochs = [s.leader_epoch]
    for _ in range(500):
        alive = {r for r in s.replicas if rng.random() < 0.7}
        op = rng.random()
        if op < 0.5:
            result = elect_leader(s, alive, unclean=rng.random() < 0.2)
            if result.changed and not result.unclean and result.state.leader is not None:
                assert result.state.leader in s.isr
            s = result.state
        elif op < 0.7:
            s = preferred_leader_election(s, alive).state
        elif s.leader is not None:
            isr = {s.leader} | {r for r in s.replicas if rng.random() < 0.5}
            s = alter_partition(s, AlterPartitionRequest(s.leader, s.leader_epoch, s.partition_epoch, tuple(isr)))
        assert s.leader is None or s.leader in s.isr
        assert set(s.isr) <= set(s.replicas) and s.isr
        assert s.leader_epoch >= epochs[-1]
        epochs.append(s.leader_epoch)
        assert PartitionState.from_dict(s.to_dict()) == s


def test_replace_a_lost_follower():
    from rayka.coordinator.election import replace_replica
    s = state(replicas=(0, 1, 2), isr=(0, 1, 2))
    healed = replace_replica(s, lost=1, new=3)
    assert healed.replicas == (0, 3, 2) and healed.isr == (0, 2)
    assert healed.partition_epoch == 8 and healed.leader_epoch == 3 and healed.under_replicated
    grown = alter_partition(healed, AlterPartitionRequest(0, 3, 8, (0, 2, 3)))
    assert grown.isr == (0, 3, 2) and not grown.under_replicated
    for lost, new, words in ((0, 3, "elect another leader"), (5, 3, "not a replica"), (1, 2, "in use")):
        with pytest.raises(ValueError, match=words):
            replace_replica(s, lost=lost, new=new)
    leaderless = state(leader=None, isr=(1,))
    with pytest.raises(ValueError, match="last in-sync"):
        replace_replica(leaderless, lost=1, new=3)
    assert replace_replica(leaderless, lost=2, new=3).isr == (1,)
