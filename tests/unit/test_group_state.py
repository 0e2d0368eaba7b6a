"""The group state machine and protocol, driven by a manual clock (no Ray, no sleeps)."""

import pytest

from rayka.coordinator.clock import ManualClock
from rayka.coordinator.group_coordinator import GroupCoordinator
from rayka.coordinator.groups import Group, GroupState, is_transition_valid
from rayka.coordinator.offset_store import OffsetStore
from rayka.errors import GroupNotEmptyError, IllegalGenerationError, UnknownMemberError

S = GroupState


def test_transition_table():
    assert is_transition_valid(S.EMPTY, S.PREPARING_REBALANCE)
    assert is_transition_valid(S.PREPARING_REBALANCE, S.COMPLETING_REBALANCE)
    assert is_transition_valid(S.COMPLETING_REBALANCE, S.STABLE)
    assert is_transition_valid(S.STABLE, S.PREPARING_REBALANCE)
    assert not is_transition_valid(S.EMPTY, S.STABLE)
    assert not is_transition_valid(S.STABLE, S.COMPLETING_REBALANCE)
    assert not any(is_transition_valid(S.DEAD, t) for t in S)


def make(assignor="range", parts=6):
    clock = ManualClock()
    group = Group("g", clock)
    group.partitions = {"t": parts}
    return group, clock


def join(group, member=None, instance=None, owned=(), assignor="range", session=1000, topics=("t",)):
    return group.join(member, instance_id=instance, topics=topics, session_timeout_ms=session,
                      rebalance_timeout_ms=5000, owned=owned, assignor=assignor)


def settle(group, answers, assignor="range"):
    """Let every member join until all have answers of the same generation (bounded)."""
    for _ in range(10):
        done = True
        for mid in list(group.members):
            a = join(group, mid, owned=tuple(answers[mid]["assignment"]) if mid in answers else (), assignor=assignor)
            answers[mid] = a
            done &= a["status"] == "ok" and not a.get("rebalance")
        if done and group.state is S.STABLE:
            return answers
    raise AssertionError("group did not settle")


def owners(group):
    return {tp: mid for mid, m in group.members.items() for tp in m.assignment}


def test_first_member_gets_everything_then_a_second_join_rebalances():
    group, clock = make()
    a = join(group)
    assert a["status"] == "ok" and len(a["assignment"]) == 6 and group.state is S.STABLE and a["generation"] == 1
    b = join(group)
    assert b["status"] == "pending" and group.state is S.PREPARING_REBALANCE
    assert group.heartbeat(a["member_id"], 1) == "rebalance"
    a2 = join(group, a["member_id"])
    assert a2["status"] == "ok" and a2["generation"] == 2 and group.state is S.STABLE
    b2 = join(group, b["member_id"])
    assert len(a2["assignment"]) == len(b2["assignment"]) == 3
    assert not set(a2["assignment"]) & set(b2["assignment"])


def test_member_that_stops_heartbeating_is_evicted_after_its_session_timeout():
    group, clock = make()
    answers = settle(group, {m["member_id"]: m for m in [join(group), join(group)]})
    a, b = list(answers)
    clock.advance(600)
    group.heartbeat(a, group.generation)
    clock.advance(600)  # b silent for 1200 ms > 1000 ms
    assert group.tick() == [b]
    assert group.state is S.PREPARING_REBALANCE
    answers = settle(group, {a: answers[a]})
    assert len(answers[a]["assignment"]) == 6


def test_zombie_evicted_member_cannot_commit_or_heartbeat():
    group, clock = make()
    answers = settle(group, {m["member_id"]: m for m in [join(group), join(group)]})
    zombie, live = list(answers)
    gen = group.generation
    group.validate_commit(zombie, gen, answers[zombie]["assignment"])  # allowed while a member
    clock.advance(1500)
    group.heartbeat(live, gen)
    group.tick()
    with pytest.raises(UnknownMemberError):
        group.validate_commit(zombie, gen, answers[zombie]["assignment"])
    with pytest.raises(UnknownMemberError):
        group.heartbeat(zombie, gen)


def test_stale_generation_commit_is_refused_and_foreign_partitions_too():
    group, clock = make()
    first = join(group)
    other = join(group)
    answers = settle(group, {first["member_id"]: first, other["member_id"]: other})
    mine = answers[first["member_id"]]["assignment"]
    with pytest.raises(IllegalGenerationError, match="generation"):
        group.validate_commit(first["member_id"], group.generation - 1, mine)
    theirs = answers[other["member_id"]]["assignment"]
    with pytest.raises(IllegalGenerationError, match="does not own"):
        group.validate_commit(first["member_id"], group.generation, theirs)


def test_leave_rebalances_at_once_and_last_leave_empties_the_group():
    group, _ = make()
    answers = settle(group, {m["member_id"]: m for m in [join(group), join(group)]})
    a, b = list(answers)
    group.leave(b)
    assert group.state is S.PREPARING_REBALANCE
    settle(group, {a: answers[a]})
    group.leave(a)
    assert group.state is S.EMPTY and not group.members


def test_static_member_restart_within_session_keeps_partitions_without_rebalance():
    group, clock = make()
    answers = settle(group, {m["member_id"]: m for m in [join(group, instance="pod-a"), join(group, instance="pod-b")]})
    old_id = next(m for m in answers if m.startswith("pod-a"))
    gen = group.generation
    mine = answers[old_id]["assignment"]
    clock.advance(500)  # restarted within the 1000 ms session timeout
    back = join(group, None, instance="pod-a")
    assert back["status"] == "ok" and back["assignment"] == mine and back["generation"] == gen
    assert group.state is S.STABLE and group.generation == gen
    with pytest.raises(UnknownMemberError):  # the old incarnation is fenced
        group.validate_commit(old_id, gen, mine)


def test_rebalance_timeout_drops_members_that_never_rejoin():
    group, clock = make()
    answers = settle(group, {m["member_id"]: m for m in [join(group), join(group)]})
    a, b = list(answers)
    c = join(group)["member_id"]
    join(group, a, owned=answers[a]["assignment"])
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
        answers[r["member_id"]] = r
    answers = settle(group, answers, "cooperative-sticky")
    before = owners(group)
    new = join(group, assignor="cooperative-sticky")
    answers[new["member_id"]] = new
    # Every answer along the way keeps partitions unique across members.
    for _ in range(10):
        for mid in list(group.members):
            answers[mid] = join(group, mid, owned=tuple(answers[mid]["assignment"]), assignor="cooperative-sticky")
            held = [tp for m in answers.values() for tp in m["assignment"]]
            assert len(held) == len(set(held))
        if group.state is S.STABLE and all(not a.get("rebalance") for a in answers.values()):
            break
    after = owners(group)
    moved = [tp for tp in after if before.get(tp) != after[tp]]
    assert len(moved) == 3 and all(after[tp] == new["member_id"] for tp in moved)


def test_new_partitions_trigger_a_rebalance():
    group, _ = make(parts=2)
    answers = settle(group, {m["member_id"]: m for m in [join(group)]})
    group.on_metadata_change({"t": 4})
    assert group.state is S.PREPARING_REBALANCE
    answers = settle(group, answers)
    assert len(next(iter(answers.values()))["assignment"]) == 4


def test_generations_survive_a_coordinator_restart(tmp_path):
    clock = ManualClock()
    store = OffsetStore(tmp_path / "o.jsonl")
    gc = GroupCoordinator(store, clock, lambda: {"t": 2})
    a = gc.join("g", None, None, ["t"], 1000, 5000, (), "range")
    gc.commit("g", a["member_id"], a["generation"], [("t", 0, 10)])
    again = GroupCoordinator(OffsetStore(tmp_path / "o.jsonl"), clock, lambda: {"t": 2})
    b = again.join("g", None, None, ["t"], 1000, 5000, (), "range")
    assert b["generation"] > a["generation"]
    assert again.fetch("g", [("t", 0), ("t", 1)]) == [10, None]
    with pytest.raises(UnknownMemberError):  # the pre-restart member is unknown now
        again.commit("g", a["member_id"], a["generation"], [("t", 0, 11)])


def test_reset_and_delete_need_an_inactive_group(tmp_path):
    clock = ManualClock()
    gc = GroupCoordinator(OffsetStore(None), clock, lambda: {"t": 1})
    a = gc.join("g", None, None, ["t"], 1000, 5000, (), "range")
    with pytest.raises(GroupNotEmptyError):
        gc.reset("g", {("t", 0): 0})
    with pytest.raises(GroupNotEmptyError):
        gc.delete("g")
    gc.leave("g", a["member_id"])
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

    info = {"members": [{"member_id": "m1", "assignment": [("t", 0)]}], "committed": {("t", 0): 4, ("t", 1): 2}}
    rows = lag_rows(info, {("t", 0): 10, ("t", 1): 2})
    assert rows == [{"topic": "t", "partition": 0, "committed": 4, "end_offset": 10, "member": "m1"},
                    {"topic": "t", "partition": 1, "committed": 2, "end_offset": 2, "member": None}]


def test_member_catching_up_on_a_new_generation_may_commit_what_it_keeps():
    group, _ = make(parts=4)
    coop = "cooperative-sticky"
    a = join(group, assignor=coop)["member_id"]
    assert len(group.members[a].assignment) == 4
    b = join(group, assignor=coop)["member_id"]
    first = join(group, a, owned=group.members[a].assignment, assignor=coop)  # completes gen 2
    kept = first["assignment"]
    assert len(kept) == 2 and first["rebalance"]  # 2 withheld for b, follow-up pending
    join(group, b, owned=(), assignor=coop)  # b collects gen 2 (nothing yet)
    join(group, a, owned=tuple(kept), assignor=coop)  # a joins the follow-up ...
    done = join(group, b, owned=(), assignor=coop)  # ... and b's join completes gen 3
    assert done["status"] == "ok" and len(done["assignment"]) == 2 and group.generation == first["generation"] + 1
    # a has not collected gen 3 yet: it may still commit, with gen 2, what it keeps ...
    group.validate_commit(a, first["generation"], kept)
    # ... but never what now belongs to b, and never with an older generation.
    with pytest.raises(IllegalGenerationError):
        group.validate_commit(a, first["generation"], done["assignment"])
    with pytest.raises(IllegalGenerationError):
        group.validate_commit(a, first["generation"] - 1, kept)
