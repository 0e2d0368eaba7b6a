"""Kafka's client-assigned group protocol (JoinGroup/SyncGroup) in the coordinator, on a manual
clock: joins and syncs, leaders and protocols, rebalances, fencing, snapshots and commits."""

import pytest

from rayka.coordinator import client_groups
from rayka.coordinator.client_groups import KafkaGroup
from rayka.coordinator.clock import ManualClock
from rayka.coordinator.group_coordinator import GroupCoordinator
from rayka.coordinator.group_service import GroupService
from rayka.coordinator.group_state import GroupState as S
from rayka.coordinator.offset_store import OffsetStore
from rayka.errors import (ConfigError, FencedInstanceIdError, GroupMaxSizeReachedError, GroupNotEmptyError, IllegalGenerationError,
                          InconsistentGroupProtocolError, InvalidAssignmentError, RebalanceInProgressError,
                          UnknownMemberError)
from rayka.messages import JoinStatus

PROTOS = [("range", b"meta-range"), ("roundrobin", b"meta-rr")]
OK, PENDING = JoinStatus.OK, JoinStatus.PENDING


def make():
    clock = ManualClock()
    return KafkaGroup("g", clock), clock


def join(group, member=None, instance=None, protocols=PROTOS, session=1000, rebalance=5000, ptype="consumer"):
    return group.join(member, instance_id=instance, protocol_type=ptype, protocols=protocols,
                      session_timeout_ms=session, rebalance_timeout_ms=rebalance, client_id="rdkafka",
                      client_host="/127.0.0.1")


def stable(group, n, **kw):
    """``n`` members joined and synced (the leader gives member i partition i); their ids in join order."""
    ids = [join(group, **kw).member_id]
    for _ in range(n - 1):
        ids.append(join(group, **kw).member_id)
    answers = {mid: join(group, mid, **kw) for mid in ids}  # everyone rejoins: the rebalance completes
    answers = {mid: join(group, mid, **kw) if answers[mid].status is PENDING else answers[mid] for mid in ids}
    assert all(a.status is OK for a in answers.values()) and group.state is S.COMPLETING_REBALANCE
    leader = group.leader
    sync_leader(group, leader, {mid: [("t", i)] for i, mid in enumerate(ids)})
    assert group.state is S.STABLE
    return ids


def sync_leader(group, leader, parts):
    return group.sync(leader, group.generation, assignments={m: f"a-{m}".encode() for m in parts},
                      assigned=parts)


def test_one_member_joins_leads_and_syncs():
    group, _ = make()
    a = join(group)
    assert a.status is OK and a.generation == 1 and a.leader == a.member_id and a.protocol_name == "range"
    assert a.member_id.startswith("rdkafka-") and a.protocol_type == "consumer"
    assert a.members == ((a.member_id, None, b"meta-range"),)
    assert group.state is S.COMPLETING_REBALANCE
    answer = group.sync(a.member_id, 1, assignments={a.member_id: b"mine"}, assigned={a.member_id: [("t", 0)]})
    assert answer.status is OK and answer.assignment == b"mine" and group.state is S.STABLE
    assert group.heartbeat(a.member_id, 1) == "ok"


def test_three_members_followers_wait_for_the_leader_and_each_gets_its_bytes():
    group, _ = make()
    a = join(group).member_id
    group.sync(a, 1, assignments={a: b"x"}, assigned={a: [("t", 0)]})
    b, c = join(group), join(group)
    assert b.status is c.status is PENDING and group.state is S.PREPARING_REBALANCE
    assert group.heartbeat(a, 1) == "rebalance"
    assert join(group, b.member_id).status is PENDING  # polling: still waiting for a
    ja = join(group, a)  # the last one in: generation 2
    assert ja.status is OK and ja.generation == 2 and ja.leader == a and len(ja.members) == 3
    jb, jc = join(group, b.member_id), join(group, c.member_id)
    assert jb.status is OK and jb.leader == a and jb.members == () and jb.generation == 2
    assert group.sync(b.member_id, 2).status is PENDING
    assert group.heartbeat(b.member_id, 2) == "ok"  # AwaitingSync: heartbeats go on
    sync_leader(group, a, {a: [("t", 0)], b.member_id: [("t", 1), ("t", 2)]})  # c left out: b""
    assert group.sync(b.member_id, 2).assignment == f"a-{b.member_id}".encode()
    assert group.sync(c.member_id, 2).assignment == b""
    assert group.state is S.STABLE
    assert {m["member_id"]: m["assignment"] for m in group.describe()["members"]} == {
        a: [("t", 0)], b.member_id: [("t", 1), ("t", 2)], c.member_id: []}


def test_a_follower_rejoining_a_stable_group_gets_its_generation_but_the_leader_rebalances():
    group, _ = make()
    a, b = stable(group, 2)
    again = join(group, b)
    assert again.status is OK and again.generation == 2 and group.state is S.STABLE
    assert join(group, a).status is PENDING and group.state is S.PREPARING_REBALANCE
    assert join(group, b).status is OK and group.generation == 3


def test_the_protocol_is_the_one_most_members_prefer_among_those_all_support():
    group, _ = make()
    prefs = [[("sticky", b"s"), ("range", b"r"), ("roundrobin", b"rr")],
             [("roundrobin", b"rr2"), ("range", b"r2")],
             [("roundrobin", b"rr3"), ("sticky", b"s3"), ("range", b"r3")]]
    ids = [join(group, protocols=p).member_id for p in prefs]
    leader = join(group, ids[0], protocols=prefs[0])  # the last to rejoin: the rebalance completes
    # range and roundrobin are common; the first member votes range, the other two roundrobin.
    assert leader.status is OK and leader.protocol_name == "roundrobin" and leader.leader == ids[0]
    assert leader.members == ((ids[0], None, b"rr"), (ids[1], None, b"rr2"), (ids[2], None, b"rr3"))


def test_no_common_protocol_or_another_protocol_type_is_refused():
    group, _ = make()
    a = join(group, protocols=[("range", b"")])
    with pytest.raises(InconsistentGroupProtocolError, match="partition.assignment.strategy"):
        join(group, protocols=[("roundrobin", b"")])
    with pytest.raises(InconsistentGroupProtocolError):
        join(group, protocols=[("range", b"")], ptype="connect")
    assert list(group.members) == [a.member_id]  # nothing changed
    alone = join(group, a.member_id, protocols=[("sticky", b"")])  # alone, it may switch
    assert alone.status is OK and alone.protocol_name == "sticky" and alone.generation == 2


def test_a_leader_that_leaves_is_replaced_by_the_first_member_to_rejoin():
    group, _ = make()
    a, b, c = stable(group, 3)
    group.leave(a)
    assert group.state is S.PREPARING_REBALANCE
    assert join(group, c).status is PENDING
    jb = join(group, b)
    assert jb.status is OK and jb.leader == c and group.generation == 3


def test_session_timeout_evicts_and_rebalances():
    group, clock = make()
    a, b = stable(group, 2)
    clock.advance(600)
    group.heartbeat(a, 2)
    clock.advance(600)
    assert group.tick() == [b]
    assert group.state is S.PREPARING_REBALANCE
    with pytest.raises(UnknownMemberError):
        group.heartbeat(b, 2)
    assert join(group, a).status is OK and group.generation == 3


def test_rebalance_timeout_drops_a_member_that_heartbeats_but_does_not_rejoin():
    group, clock = make()
    a, b = stable(group, 2, session=10_000, rebalance=3000)
    c = join(group, session=10_000, rebalance=3000).member_id
    assert join(group, a, session=10_000, rebalance=3000).status is PENDING
    clock.advance(2000)
    assert group.heartbeat(b, 2) == "rebalance"
    group.tick()
    assert group.state is S.PREPARING_REBALANCE
    clock.advance(1500)  # past the rebalance timeout: b never rejoined
    assert group.tick() == [b]
    assert group.state is S.COMPLETING_REBALANCE and set(group.members) == {a, c} and group.generation == 3
    assert join(group, c, session=10_000, rebalance=3000).status is OK


def test_a_leader_that_does_not_sync_in_time_is_removed_and_the_others_rebalance():
    group, clock = make()
    a, b = stable(group, 2, session=60_000, rebalance=3000)
    join(group, a, session=60_000, rebalance=3000)
    join(group, b, session=60_000, rebalance=3000)
    assert group.state is S.COMPLETING_REBALANCE and group.leader == a
    assert group.sync(b, 3).status is PENDING
    clock.advance(3001)
    assert group.tick() == [a]
    assert group.state is S.PREPARING_REBALANCE  # CompletingRebalance -> PreparingRebalance
    with pytest.raises(RebalanceInProgressError):
        group.sync(b, 3)


def test_a_join_during_awaiting_sync_restarts_the_rebalance_and_the_last_leaving_empties_it():
    group, _ = make()
    a = join(group).member_id
    assert group.state is S.COMPLETING_REBALANCE
    b = join(group).member_id
    assert group.state is S.PREPARING_REBALANCE
    join(group, a)
    assert group.state is S.COMPLETING_REBALANCE
    group.leave(a)
    group.leave(b)
    assert group.state is S.EMPTY and not group.members


def test_illegal_generation_and_unknown_member():
    group, _ = make()
    a, b = stable(group, 2)
    for call in (lambda: group.heartbeat(a, 1), lambda: group.sync(a, 1), lambda: group.validate_commit(a, 1)):
        with pytest.raises(IllegalGenerationError, match="generation 1"):
            call()
    for call in (lambda: group.heartbeat("nobody", 2), lambda: group.sync("nobody", 2),
                 lambda: join(group, "nobody"), lambda: group.leave("nobody"),
                 lambda: group.validate_commit("nobody", 2)):
        with pytest.raises(UnknownMemberError):
            call()
    join(group)
    with pytest.raises(RebalanceInProgressError):
        group.sync(a, 2)


def test_a_static_member_back_takes_its_place_without_rebalance_and_the_old_one_is_fenced():
    group, _ = make()
    a = join(group, instance="i-a").member_id
    b = join(group, instance="i-b").member_id
    join(group, a, instance="i-a")
    join(group, b, instance="i-b")
    sync_leader(group, group.leader, {a: [("t", 0)], b: [("t", 1)]})
    leader, generation = group.leader, group.generation
    back = join(group, None, instance="i-a")
    assert back.status is OK and back.member_id != a and back.generation == generation
    assert back.leader == leader and back.members == ()  # the old leader id: nobody reassigns
    assert group.state is S.STABLE and group.rebalances == 2
    assert group.sync(back.member_id, generation, instance_id="i-a").assignment == f"a-{a}".encode()
    for call in (lambda: group.heartbeat(a, generation), lambda: group.sync(a, generation),
                 lambda: group.validate_commit(a, generation), lambda: join(group, a, instance="i-a"),
                 lambda: group.heartbeat(b, generation, instance_id="i-a")):
        with pytest.raises(FencedInstanceIdError, match="i-a"):
            call()
    assert group.heartbeat(back.member_id, generation, instance_id="i-a") == "ok"
    with pytest.raises(FencedInstanceIdError):
        group.leave(b, instance_id="i-a")
    group.leave(None, instance_id="i-a")  # KIP-345: by instance id
    assert set(group.members) == {b} and group.state is S.PREPARING_REBALANCE


def test_a_static_member_back_during_a_rebalance_is_counted_under_its_new_id():
    group, _ = make()
    a = join(group, instance="i-a").member_id
    group.sync(a, 1)
    b = join(group).member_id
    assert group.state is S.PREPARING_REBALANCE
    back = join(group, None, instance="i-a")
    assert back.status is OK and back.leader == back.member_id and {m for m, _, _ in back.members} == {
        back.member_id, b}


def test_kafka_and_rayka_members_cannot_share_a_group_until_it_is_empty():
    coord = GroupCoordinator(OffsetStore(None), ManualClock(), lambda: {"t": 2})
    native = coord.join("n", None, None, ["t"], 1000, 5000, (), "range")
    with pytest.raises(InconsistentGroupProtocolError, match="rayka's own"):
        coord.kafka_join("n", None, None, "consumer", PROTOS, 1000, 5000)
    kafka = coord.kafka_join("k", None, None, "consumer", PROTOS, 1000, 5000)
    with pytest.raises(InconsistentGroupProtocolError, match="Kafka clients'"):
        coord.join("k", None, None, ["t"], 1000, 5000, (), "range")
    with pytest.raises(UnknownMemberError):
        coord.kafka_sync("n", native.member_id, 1, None, {}, {})
    coord.kafka_leave("k", kafka.member_id, None)
    again = coord.join("k", None, None, ["t"], 1000, 5000, (), "range")  # empty: it becomes rayka's
    assert again.ok and again.generation == 2  # the generation goes on
    coord.leave("n", native.member_id)
    assert coord.kafka_join("n", None, None, "consumer", PROTOS, 1000, 5000).generation == 2


def test_snapshot_round_trip_through_a_coordinator_restart(tmp_path):
    clock = ManualClock()
    path = tmp_path / "offsets.jsonl"
    coord = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 2})
    a = coord.kafka_join("g", None, "i-a", "consumer", PROTOS, 1000, 5000, "c1", "/h1").member_id
    coord.kafka_sync("g", a, 1, "i-a", {a: b"\x00\x01bytes"}, {a: [("t", 0), ("t", 1)]})
    coord.kafka_commit("g", a, 1, "i-a", [("t", 0, 7, None), ("t", 1, 3, "m")])
    before = coord.describe("g")
    again = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 2}, restore_members=True)
    group = again.groups["g"]
    assert isinstance(group, KafkaGroup) and group.state is S.STABLE and again.describe("g") == before
    assert before["protocol_type"] == "consumer" and before["protocol"] == "range"
    assert before["members"][0]["assignment_bytes"] == b"\x00\x01bytes"
    assert group.members[a].protocols == tuple(PROTOS) and group.members[a].client_host == "/h1"
    assert again.kafka_heartbeat("g", a, 1, "i-a") == "ok"
    assert again.kafka_sync("g", a, 1, "i-a", {}, {}).assignment == b"\x00\x01bytes"
    assert again.fetch_all("g") == ((("t", 0), 7, ""), (("t", 1), 3, "m"))
    # A group caught in AwaitingSync comes back rebalancing; a new session forgets the members.
    b = again.kafka_join("g", None, None, "consumer", PROTOS, 1000, 5000).member_id
    again.kafka_join("g", a, "i-a", "consumer", PROTOS, 1000, 5000)
    assert again.groups["g"].state is S.COMPLETING_REBALANCE
    third = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 2}, restore_members=True)
    assert third.groups["g"].state is S.PREPARING_REBALANCE and set(third.groups["g"].members) == {a, b}
    assert third.kafka_heartbeat("g", b, 2, None) == "rebalance"
    # A replaced static member stays fenced across a restart.
    c = third.kafka_join("g", None, "i-a", "consumer", PROTOS, 1000, 5000).member_id
    fourth = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 2}, restore_members=True)
    with pytest.raises(FencedInstanceIdError):
        fourth.kafka_heartbeat("g", a, 2, None)
    assert c in fourth.groups["g"].members
    fresh = GroupCoordinator(OffsetStore(path), clock, lambda: {"t": 2})
    assert fresh.describe("g")["members"] == [] and fresh.fetch("g", [("t", 0)]) == [7]


def test_commits_are_fenced_by_member_instance_and_generation():
    coord = GroupCoordinator(OffsetStore(None), ManualClock(), lambda: {"t": 2})
    coord.kafka_commit("g", "", -1, None, [("t", 0, 1, None)])  # an assign() client, no members yet
    a = coord.kafka_join("g", None, "i-a", "consumer", PROTOS, 1000, 5000).member_id
    with pytest.raises(RebalanceInProgressError):  # AwaitingSync
        coord.kafka_commit("g", a, 1, "i-a", [("t", 0, 2, None)])
    coord.kafka_sync("g", a, 1, "i-a", {a: b""}, {a: [("t", 0)]})
    coord.kafka_commit("g", a, 1, "i-a", [("t", 0, 5, None)])
    for member, gen, inst, err in ((a, 0, "i-a", IllegalGenerationError), ("zz", 1, None, UnknownMemberError),
                                   ("", -1, None, UnknownMemberError), (a, 1, "i-b", FencedInstanceIdError)):
        with pytest.raises(err):
            coord.kafka_commit("g", member, gen, inst, [("t", 0, 99, None)])
    b = coord.kafka_join("g", None, "i-a", "consumer", PROTOS, 1000, 5000).member_id  # replaces a
    with pytest.raises(FencedInstanceIdError):
        coord.kafka_commit("g", a, 1, None, [("t", 0, 99, None)])
    coord.kafka_commit("g", b, 1, "i-a", [("t", 0, 6, "meta")])
    for bad in ([("t", 0, -4, None)], [("t", "0", 4, None)], [("t", 0)], "t-0=4", [("t", 0, 4, 5)]):
        with pytest.raises(ConfigError):
            coord.kafka_commit("g", b, 1, "i-a", bad)
    assert coord.fetch("g", [("t", 0)], with_metadata=True) == [(6, "meta")]


def test_describe_list_lag_and_reset_through_the_service():
    class Partitions:
        def bounds(self, tps):
            return {tp: (0, 10) for tp in tps}

        def topic_bounds(self, topic):
            return [(0, 10), (0, 10)]

        def topic_times(self, topic, timestamp_ms):
            return [None, None]

    svc = GroupService(GroupCoordinator(OffsetStore(None), ManualClock(), lambda: {"t": 2}), Partitions())
    a = svc.kafka_join_group("g", None, None, "consumer", PROTOS, 1000, 5000, "cid", "/h").member_id
    svc.kafka_sync_group("g", a, 1, None, {a: b"asg"}, {a: [("t", 1), ("t", 0)]})
    svc.kafka_commit_offsets("g", a, 1, None, [("t", 0, 4, None)])
    info = svc.describe_group("g")
    assert (info.state, info.protocol_type, info.protocol, info.leader) == ("Stable", "consumer", "range", a)
    m = info.members[0]
    assert (m.assignment, m.topics, m.client_id, m.client_host, m.metadata, m.assignment_bytes) == (
        (("t", 0), ("t", 1)), ("t",), "cid", "/h", b"meta-range", b"asg")
    assert [(p.partition, p.committed, p.end_offset, p.member) for p in info.partitions] == [(0, 4, 10, a), (1, None, 10, a)]
    assert [(g.group_id, g.protocol_type, g.state) for g in svc.list_groups()] == [("g", "consumer", "Stable")]
    with pytest.raises(GroupNotEmptyError):
        svc.reset_offsets("g", "latest")
    assert svc.kafka_heartbeat("g", a, 1, None) == "ok"
    svc.kafka_leave_group("g", a, None)
    assert svc.reset_offsets("g", "earliest", ["t"]).as_dict() == {("t", 0): 0, ("t", 1): 0}
    assert svc.fetch_all_offsets("g") == ((("t", 0), 0, ""), (("t", 1), 0, ""))
    assert svc.describe_group("g").state == "Empty"


def test_a_leader_giving_one_partition_to_two_members_is_refused_and_nothing_is_stored():
    group, _ = make()
    a = join(group).member_id
    b = join(group).member_id
    join(group, a)
    join(group, b)
    with pytest.raises(InvalidAssignmentError, match="t-0"):
        sync_leader(group, group.leader, {a: [("t", 0)], b: [("t", 0), ("t", 1)]})
    assert group.state is S.COMPLETING_REBALANCE and all(m.assigned == () for m in group.members.values())
    with pytest.raises(InvalidAssignmentError):
        group.sync(group.leader, group.generation, assignments={a: "text"})


@pytest.mark.parametrize("kw", [dict(protocols=[]), dict(protocols=[("range", "text")]),
                                dict(protocols=[("", b"")]), dict(protocols=[("r", b""), ("r", b"")]),
                                dict(protocols=None), dict(session=0), dict(rebalance="5s"),
                                dict(instance=""), dict(ptype=None)])
def test_bad_join_arguments_get_a_config_error_and_change_nothing(kw):
    group, _ = make()
    with pytest.raises(ConfigError):
        join(group, **kw)
    assert not group.members and group.state is S.EMPTY


def test_kafka_groups_make_the_awaiting_sync_moves_through_the_table(monkeypatch):
    seen = set()
    real = KafkaGroup._transition_to

    def record(self, target):
        source = self.state
        real(self, target)
        seen.add((source, self.state))
    monkeypatch.setattr(KafkaGroup, "_transition_to", record)
    test_a_join_during_awaiting_sync_restarts_the_rebalance_and_the_last_leaving_empties_it()
    group, clock = make()
    join(group)
    clock.advance(1001)
    group.tick()  # evicted while AwaitingSync
    assert group.state is S.EMPTY
    assert {(S.COMPLETING_REBALANCE, S.PREPARING_REBALANCE), (S.COMPLETING_REBALANCE, S.EMPTY)} <= seen


def test_the_initial_rebalance_delay_gathers_a_starting_fleet_into_one_generation():
    clock = ManualClock()
    coord = GroupCoordinator(OffsetStore(None), clock, lambda: {"t": 2}, kafka_initial_delay_ms=3000)
    a = coord.kafka_join("g", None, None, "consumer", PROTOS, 10_000, 5000)
    b = coord.kafka_join("g", None, None, "consumer", PROTOS, 10_000, 5000)
    assert a.status is b.status is PENDING
    clock.advance(2999)
    assert coord.kafka_join("g", a.member_id, None, "consumer", PROTOS, 10_000, 5000).status is PENDING
    clock.advance(1)
    coord.tick()  # the delay is over and everyone has joined: generation 1 with both
    ja = coord.kafka_join("g", a.member_id, None, "consumer", PROTOS, 10_000, 5000)
    assert ja.status is OK and ja.generation == 1 and len(ja.members) == 2


def test_stray_kafka_calls_for_an_unknown_group_make_no_group():
    coord = GroupCoordinator(OffsetStore(None), ManualClock(), lambda: {"t": 2})
    for call in (lambda: coord.kafka_heartbeat("nope", "m", 1, None), lambda: coord.kafka_leave("nope", "m", None),
                 lambda: coord.kafka_sync("nope", "m", 1, None, {}, {})):
        with pytest.raises(UnknownMemberError):
            call()
    assert coord.list() == []


def test_a_group_at_its_member_limit_refuses_new_members_but_not_static_ones_coming_back(monkeypatch):
    monkeypatch.setattr(client_groups, "MAX_MEMBERS", 2)
    group, _ = make()
    join(group, instance="i-a")
    join(group)
    with pytest.raises(GroupMaxSizeReachedError):
        join(group)
    assert join(group, None, instance="i-a").member_id in group.members and len(group.members) == 2
