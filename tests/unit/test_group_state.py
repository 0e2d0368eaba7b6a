"""The group state machine and protocol, driven by a manual clock (no Ray, no sleeps)."""

import dataclasses

import pytest

from rayka.testing import ManualClock
from rayka.coordinator.group_coordinator import GroupCoordinator
from rayka.coordinator.groups import is_transition_valid
from rayka.coordinator.offset_store import OffsetStore
from rayka.messages import JoinStatus
from rayka.errors import (
    GroupNotEmptyError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    UnknownMemberError,
)

from group_helpers import COOP, S, join, make, owners, settle


def test_transition_table():
    assert is_transition_valid(S.EMPTY, S.PREPARING_REBALANCE)
    assert is_transition_valid(S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE)
    assert is_transition_valid(S.COMPLETING_REBALANCE, S.STABLE)
    assert is_transition_valid(S.STABLE, S.PREPARING_REBALANCE)
    assert not is_transition_valid(S.EMPTY, S.STABLE)
    assert not is_transition_valid(S.STABLE, S.COMPLETING_REBALANCE)
    assert not any(is_transition_valid(S.DEAD, t) for t in S)


def test_first_member_gets_everything_then_a_second_join_rebalances():
    group, clock = make()
    a = join(group)
    assert a.status is JoinStatus.OK and len(a.assignment) == 6 and group.state is S.STABLE and a.generation == 1
    b = join(group)
    assert b.status is JoinStatus.PENDING and group.state is S.PREPARING_REBALANCE
    assert group.heartbeat(a.member_id, 1) == "rebalance"
    a2 = join(group, a.member_id)
    assert a2.status is JoinStatus.OK and a2.generation == 2 and group.state is S.STABLE
    b2 = join(group, b.member_id)
    assert len(a2.assignment) == len(b2.assignment) == 3
    assert not set(a2.assignment) & set(b2.assignment)


def test_member_that_stops_heartbeating_is_evicted_after_its_session_timeout():
    group, clock = make()
    answers = settle(group, {m.member_id: m for m in [join(group), join(group)]})
    a, b = list(answers)
    clock.advance(600)
    group.heartbeat(a, group.generation)
    clock.advance(600)  # b silent for 1200 ms > 1000 ms
    assert group.tick() == [b]
    assert group.state is S.PREPARING_REBALANCE
    answers = settle(group, {a: answers[a]})
    assert len(answers[a].assignment) == 6


def test_zombie_evicted_member_cannot_commit_or_heartbeat():
    group, clock = make()
    answers = settle(group, {m.member_id: m for m in [join(group), join(group)]})
    zombie, live = list(answers)
    gen = group.generation
    group.validate_commit(zombie, gen, answers[zombie].assignment)  # allowed while a member
    clock.advance(1500)
    group.heartbeat(live, gen)
    group.tick()
    with pytest.raises(UnknownMemberError):
        group.validate_commit(zombie, gen, answers[zombie].assignment)
    with pytest.raises(UnknownMemberError):
        group.heartbeat(zombie, gen)


def test_stale_generation_commit_is_refused_and_foreign_partitions_too():
    group, clock = make()
    first = join(group)
    other = join(group)
    answers = settle(group, {first.member_id: first, other.member_id: other})
    mine = answers[first.member_id].assignment
    with pytest.raises(IllegalGenerationError, match="generation"):
        group.validate_commit(first.member_id, group.generation - 1, mine)
    theirs = answers[other.member_id].assignment
    with pytest.raises(IllegalGenerationError, match="does not own"):
        group.validate_commit(first.member_id, group.generation, theirs)


def test_leave_rebalances_at_once_and_last_leave_empties_the_group():
    group, _ = make()
    answers = settle(group, {m.member_id: m for m in [join(group), join(group)]})
    a, b = list(answers)
    group.leave(b)
    assert group.state is S.PREPARING_REBALANCE
    settle(group, {a: answers[a]})
    group.leave(a)
    assert group.state is S.EMPTY and not group.members


def test_static_member_restart_within_session_keeps_partitions_without_rebalance():
    group, clock = make()
    answers = settle(group, {m.member_id: m for m in [join(group, instance="pod-a"), join(group, instance="pod-b")]})
    old_id = next(m for m in answers if m.startswith("pod-a"))
    gen = group.generation
    mine = answers[old_id].assignment
    clock.advance(500)  # restarted within the 1000 ms session timeout
    back = join(group, None, instance="pod-a")
    assert back.status is JoinStatus.OK and back.assignment == mine and back.generation == gen
    assert group.state is S.STABLE and group.generation == gen
    with pytest.raises(UnknownMemberError):  # the old incarnation is fenced
        group.validate_commit(old_id, gen, mine)


def test_rebalance_timeout_drops_members_that_never_rejoin():
    group, clock = make()
    answers = settle(group, {m.member_id: m for m in [join(group), join(group)]})
    a, b = list(answers)
    c = join(group).member_id
    join(group, a, owned=answers[a].assignment)
    for _ in range(11):  # 5.5 s: all three heartbeat (alive), but b never rejoins (stuck processing)
        clock.advance(500)
        for m in (a, b, c):
            assert group.heartbeat(m, group.generation) == "rebalance"
        group.tick()
    assert b not in group.members and group.state is S.STABLE
    assert set(group.members) == {a, c}


def test_cooperative_join_never_gives_a_partition_to_two_owners():
    group, _ = make(parts=12)
    answers = {}
    for _ in range(3):
        r = join(group, assignor="cooperative-sticky")
        answers[r.member_id] = r
    answers = settle(group, answers, "cooperative-sticky")
    before = owners(group)
    new = join(group, assignor="cooperative-sticky")
    answers[new.member_id] = new
    # Every answer along the way keeps partitions unique across members.
    for _ in range(10):
        for mid in list(group.members):
            answers[mid] = join(group, mid, owned=tuple(answers[mid].assignment), assignor="cooperative-sticky")
            held = [tp for m in answers.values() for tp in m.assignment]
            assert len(held) == len(set(held))
        if group.state is S.STABLE and all(not a.rebalance for a in answers.values()):
            break
    after = owners(group)
    moved = [tp for tp in after if before.get(tp) != after[tp]]
    assert len(moved) == 3 and all(after[tp] == new.member_id for tp in moved)


def test_new_partitions_trigger_a_rebalance():
    group, _ = make(parts=2)
    answers = settle(group, {m.member_id: m for m in [join(group)]})
    group.on_metadata_change({"t": 4})
    assert group.state is S.PREPARING_REBALANCE
    answers = settle(group, answers)
    assert len(next(iter(answers.values())).assignment) == 4


def test_generations_survive_a_coordinator_restart(tmp_path):
    clock = ManualClock()
    store = OffsetStore(tmp_path / "o.jsonl")
    gc = GroupCoordinator(store, clock, lambda: {"t": 2})
    a = gc.join("g", None, None, ["t"], 1000, 5000, (), "range")
    gc.commit("g", a.member_id, a.generation, [("t", 0, 10)])
    again = GroupCoordinator(OffsetStore(tmp_path / "o.jsonl"), clock, lambda: {"t": 2})
    b = again.join("g", None, None, ["t"], 1000, 5000, (), "range")
    assert b.generation > a.generation
    assert again.fetch("g", [("t", 0), ("t", 1)]) == [10, None]
    with pytest.raises(UnknownMemberError):  # the pre-restart member is unknown now
        again.commit("g", a.member_id, a.generation, [("t", 0, 11)])


def test_reset_and_delete_need_an_inactive_group(tmp_path):
    clock = ManualClock()
    gc = GroupCoordinator(OffsetStore(None), clock, lambda: {"t": 1})
    a = gc.join("g", None, None, ["t"], 1000, 5000, (), "range")
    with pytest.raises(GroupNotEmptyError):
        gc.reset("g", {("t", 0): 0})
    with pytest.raises(GroupNotEmptyError):
        gc.delete("g")
    gc.leave("g", a.member_id)
    gc.reset("g", {("t", 0): 3})
    assert gc.fetch("g", [("t", 0)]) == [3]
    gc.delete("g")
    assert gc.list() == []


def test_reset_targets_for_every_kind_of_target():
    from rayka.coordinator.group_coordinator import reset_targets
    from rayka.errors import ConfigError

    bounds = [(0, 10), (5, 20)]
    assert reset_targets("earliest", "t", bounds) == {("t", 0): 0, ("t", 1): 5}
    assert reset_targets("latest", "t", bounds) == {("t", 0): 10, ("t", 1): 20}
    assert reset_targets(7, "t", bounds) == {("t", 0): 7, ("t", 1): 7}
    assert reset_targets(99, "t", bounds) == {("t", 0): 10, ("t", 1): 20}  # clamped into range
    assert reset_targets({"timestamp_ms": 5}, "t", bounds, [(3, 6), None]) == {("t", 0): 3, ("t", 1): 20}
    with pytest.raises(ConfigError, match="earliest"):
        reset_targets("yesterday", "t", bounds)


def test_lag_rows_join_owners_and_commits():
    from rayka.coordinator.group_coordinator import lag_rows

    info = {"members": [{"member_id": "m1", "assignment": [("t", 0), ("t", 2)]}],
            "committed": {("t", 0): 4, ("t", 1): 2}}
    rows = lag_rows(info, {("t", 0): (0, 10), ("t", 1): (0, 2), ("t", 2): (30, 50)})
    assert rows == [
        {"topic": "t", "partition": 0, "committed": 4, "log_start_offset": 0, "end_offset": 10, "member": "m1"},
        {"topic": "t", "partition": 1, "committed": 2, "log_start_offset": 0, "end_offset": 2, "member": None},
        {"topic": "t", "partition": 2, "committed": None, "log_start_offset": 30, "end_offset": 50, "member": "m1"}]


def test_lag_without_a_commit_counts_from_the_log_start_not_from_zero():
    from rayka.clients.types import GroupDescription, GroupPartitionDescription as P

    assert P("t", 0, None, 50, "m1", log_start_offset=30).lag == 20  # records before 30 are gone
    assert P("t", 0, 0, 50, "m1", log_start_offset=30).lag == 50  # a committed 0 is an offset, not "none"
    assert P("t", 0, 45, 50, None, log_start_offset=30).lag == 5
    assert P("t", 0, None, None, None).lag is None  # partition gone: unknown
    desc = GroupDescription("g", "Stable", "range", 1, [], [P("t", 0, None, 50, "m", 30), P("t", 1, 7, 9, "m", 0)])
    assert desc.total_lag == 22


def test_a_join_with_another_assignor_is_refused_naming_both():
    group, _ = make()
    a = join(group, assignor="range")
    with pytest.raises(InconsistentGroupProtocolError, match="'range'.*'roundrobin'"):
        join(group, assignor="roundrobin")
    assert list(group.members) == [a.member_id] and group.state is S.STABLE  # nothing changed
    with pytest.raises(InconsistentGroupProtocolError):  # a static member too
        join(group, instance="pod-x", assignor=COOP)
    again = join(group, a.member_id, assignor="roundrobin")  # the only member may switch
    assert again.status is JoinStatus.OK and group.protocol == "roundrobin"
    group.leave(a.member_id)
    assert join(group, assignor=COOP).status is JoinStatus.OK and group.protocol == COOP  # empty: anything goes


def _collect(gc, last, instance):
    """Join again with what ``last`` assigned; a pending answer keeps the last assignment."""
    answer = gc.join("g", last.member_id, instance, ["t"], 1000, 5000, last.assignment, COOP)
    return answer if answer.status is JoinStatus.OK else dataclasses.replace(last, rebalance=True)


def test_a_restarted_coordinator_keeps_the_members_and_their_generation(tmp_path):
    clock = ManualClock()
    path = tmp_path / "o.jsonl"
    gc = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 4})
    a = gc.join("g", None, "pod-a", ["t"], 1000, 5000, (), COOP)
    b = gc.join("g", None, None, ["t"], 1000, 5000, (), COOP)
    for _ in range(10):  # settle a and b (a pending answer keeps the last assignment)
        a = _collect(gc, a, "pod-a")
        b = _collect(gc, b, None)
        if gc.groups["g"].state is S.STABLE and not a.rebalance and not b.rebalance:
            break
    assert len(a.assignment) == len(b.assignment) == 2
    gen = gc.groups["g"].generation
    clock.advance(800)
    again = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 4}, restore_members=True)
    group = again.groups["g"]
    assert group.state is S.STABLE and group.generation == gen and group.protocol == COOP
    for m in (a, b):  # same ids, same generation: heartbeats and commits go on, no rebalance
        assert again.heartbeat("g", m.member_id, gen) == "ok"
        again.commit("g", m.member_id, gen, [(t, p, 1) for t, p in m.assignment])
    clock.advance(800)  # the session restarted with the restore: nobody is evicted yet ...
    again.tick()
    assert len(group.members) == 2
    clock.advance(1500)  # ... but members that died with the old coordinator are, a session later
    again.tick()
    assert not group.members


def test_a_new_session_does_not_bring_back_members_of_the_last_one(tmp_path):
    clock = ManualClock()
    path = tmp_path / "o.jsonl"
    a = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 4}).join("g", None, None, ["t"], 1000, 5000, (), COOP)
    fresh = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 4})  # a new session: nobody ...
    with pytest.raises(UnknownMemberError):
        fresh.heartbeat("g", a.member_id, a.generation)
    restarted = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 4}, restore_members=True)
    with pytest.raises(UnknownMemberError):  # ... not even after that session's coordinator restarts
        restarted.heartbeat("g", a.member_id, a.generation)
    assert restarted.groups["g"].generation == a.generation and not restarted.groups["g"].members


def test_a_group_restored_mid_rebalance_rebalances_again(tmp_path):
    clock = ManualClock()
    path = tmp_path / "o.jsonl"
    gc = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 4})
    a = gc.join("g", None, None, ["t"], 1000, 5000, (), COOP)
    b = gc.join("g", None, None, ["t"], 1000, 5000, (), COOP)  # pending: the group is rebalancing
    again = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 4}, restore_members=True)
    group = again.groups["g"]
    assert group.state is S.PREPARING_REBALANCE and set(group.members) == {a.member_id, b.member_id}
    assert again.heartbeat("g", a.member_id, a.generation) == "rebalance"


def test_a_join_that_sees_new_partitions_first_still_rebalances_the_group():
    """add_partitions, then a member's join lands before the coordinator hears of the change:
    the join must not absorb the new count silently (topics_changed would then see nothing)."""
    clock = ManualClock()
    parts = {"t": 4}
    gc = GroupCoordinator(OffsetStore(None), clock, lambda: dict(parts))
    a = gc.join("g", None, "pod-a", ["t"], 1000, 5000, (), COOP)
    b = gc.join("g", None, None, ["t"], 1000, 5000, (), COOP)
    for _ in range(10):
        a, b = _collect(gc, a, "pod-a"), _collect(gc, b, None)
        if gc.groups["g"].state is S.STABLE and not a.rebalance and not b.rebalance:
            break
    assert gc.groups["g"].state is S.STABLE
    parts["t"] = 8
    gc.join("g", a.member_id, "pod-a", ["t"], 1000, 5000, a.assignment, COOP)
    gc.topics_changed()
    assert gc.groups["g"].state is S.PREPARING_REBALANCE
