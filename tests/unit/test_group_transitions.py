"""Every group state change goes through the table: each move in it is made by the protocol, a
move not in it is refused, and a group restored from its snapshot is the group snapshotted."""

import json

import pytest

from rayka.messages import JoinStatus

from rayka.coordinator.clock import ManualClock
from rayka.coordinator.group_snapshot import GroupSnapshot
from rayka.coordinator.group_state import TRANSITIONS
from rayka.coordinator.groups import Group

from group_helpers import COOP, S, join, make, settle

TABLE = {(source, target) for source, targets in TRANSITIONS.items() for target in targets}
# Moves only Kafka's client-assigned groups make (AwaitingSync lasts until the leader's SyncGroup);
# test_client_assigned_groups.py checks that KafkaGroup makes them.
KAFKA_ONLY = {(S.COMPLETING_REBALANCE, S.PREPARING_REBALANCE), (S.COMPLETING_REBALANCE, S.EMPTY)}


@pytest.fixture
def moves(monkeypatch):
    """Every (source, target) move any group makes during the test."""
    seen = set()
    real = Group._transition_to

    def record(self, target):
        source = self.state
        real(self, target)
        if self.state is not source:
            seen.add((source, self.state))

    monkeypatch.setattr(Group, "_transition_to", record)
    return seen


def test_every_move_in_the_table_is_made_by_the_protocol(moves):
    group, _ = make()
    a = join(group).member_id  # Empty -> Preparing -> Completing -> Stable
    group.leave(a)  # Stable -> Empty
    group.delete()  # Empty -> Dead

    group, clock = make()
    a = join(group).member_id
    join(group)  # Stable -> Preparing
    clock.advance(2000)
    group.tick()  # both silent past their session: Preparing -> Empty
    assert group.state is S.EMPTY

    group, _ = make()
    settle(group, {m.member_id: m for m in [join(group)]})
    group.delete()  # Stable -> Dead (the coordinator only deletes empty groups; Group allows it)
    group, _ = make()
    join(group)
    join(group)
    assert group.state is S.PREPARING_REBALANCE
    group.delete()  # Preparing -> Dead
    assert moves == TABLE - KAFKA_ONLY


def test_every_table_move_has_a_reason_and_dead_is_final():
    assert all(why for targets in TRANSITIONS.values() for why in targets.values())
    assert TRANSITIONS[S.DEAD] == {}
    assert set(TRANSITIONS) == set(S)


@pytest.mark.parametrize("source,target", sorted(
    ((s, t) for s in S for t in S if s is not t and (s, t) not in TABLE), key=lambda st: (st[0].value, st[1].value)))
def test_a_move_not_in_the_table_is_refused_as_a_bug(source, target):
    group, _ = make()
    group._state = source  # put there by hand: the protocol never reaches some of these states this way
    with pytest.raises(AssertionError, match=f"illegal transition {source.value} -> {target.value}"):
        group._transition_to(target)
    assert group.state is source


def test_state_is_read_only_and_a_deleted_group_is_never_revived():
    group, _ = make()
    with pytest.raises(AttributeError):
        group.state = S.STABLE
    group.delete()
    with pytest.raises(AssertionError, match="deleted group"):
        join(group)
    assert group.state is S.DEAD and not group.members


def _restored(group, clock, partitions):
    stored = json.loads(json.dumps(group.to_snapshot().to_dict()))  # through the store's JSON
    return Group.from_snapshot(group.group_id, clock, GroupSnapshot.from_dict(stored), partitions=partitions)


def _members(group):
    return {mid: (m.instance_id, m.topics, m.session_timeout_ms, m.rebalance_timeout_ms, m.assignment,
                  m.assigned_generation, m.delivered_assignment, m.delivered_generation, m.revoking,
                  m.last_heartbeat_ms)
            for mid, m in group.members.items()}


def test_a_restored_group_equals_the_group_snapshotted():
    group, clock = make(parts=6)
    answers = {}
    for instance in ("pod-a", None, None):
        answer = join(group, instance=instance, assignor=COOP)
        answers[answer.member_id] = answer
    settle(group, answers, COOP)
    assert group.state is S.STABLE and group.generation >= 1
    again = _restored(group, clock, {"t": 6})
    assert again.state is S.STABLE
    assert again.to_snapshot() == group.to_snapshot()
    assert again.describe() == group.describe()
    assert _members(again) == _members(group)
    assert (again.leader, again.protocol, again.generation) == (group.leader, group.protocol, group.generation)


def test_a_group_snapshotted_mid_rebalance_is_restored_rebalancing():
    group, clock = make()
    settle(group, {m.member_id: m for m in [join(group)]})
    join(group)  # a second member: the group is rebalancing
    again = _restored(group, clock, {"t": 6})
    assert again.state is S.PREPARING_REBALANCE and set(again.members) == set(group.members)
    assert again.generation == group.generation


def test_a_snapshot_in_the_stored_format_loads_and_is_written_back_the_same():
    stored = {"v": 1, "gen": 7, "state": "Stable", "protocol": "cooperative-sticky",
              "members": [{"id": "consumer-3f2a", "inst": None, "topics": ["clicks"], "st": 10000, "rt": 300000,
                           "a": [["clicks", 0], ["clicks", 1]], "ag": 7, "d": [["clicks", 0], ["clicks", 1]],
                           "dg": 7, "r": []}]}
    group = Group.from_snapshot("g", ManualClock(), GroupSnapshot.from_dict(stored), generation=3,
                                partitions={"clicks": 2})
    assert group.state is S.STABLE and group.generation == 7 and group.leader == "consumer-3f2a"
    assert group.heartbeat("consumer-3f2a", 7) == "ok"
    assert group.to_snapshot().to_dict() == stored
    assert GroupSnapshot.from_dict({**stored, "v": 2}) is None  # a format this code does not read


def test_an_assignment_that_fails_leaves_the_group_rebalancing_to_try_again(monkeypatch):
    from rayka.coordinator import groups as groups_module

    real = groups_module.get_assignor
    failures = []

    class Broken:
        def __init__(self, name):
            self.inner = real(name)

        def assign(self, subs, parts):
            if not failures:
                failures.append(1)
                raise RuntimeError("assignor bug")
            return self.inner.assign(subs, parts)

    monkeypatch.setattr(groups_module, "get_assignor", Broken)
    group, _ = make()
    with pytest.raises(RuntimeError, match="assignor bug"):
        join(group)
    assert group.state is S.PREPARING_REBALANCE and group.generation == 0
    (member,) = group.members
    answer = join(group, member)
    assert answer.status is JoinStatus.OK and group.state is S.STABLE and group.generation == 1
