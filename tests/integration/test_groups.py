"""Consumer groups on Ray: sharing, commits, fencing, liveness vs progress, rebalances, admin,
coordinator restarts, and each assignor."""

import logging
import time
import uuid

import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.errors import (
    CommitFailedError,
    GroupNotEmptyError,
    InconsistentGroupProtocolError,
    NoOffsetForPartitionError,
)

from rayka.testing import pause_heartbeats, resume_heartbeats, told_to_rejoin, wait_for


def produce(topic, n, key=True):
    with rayka.Producer() as p:
        for i in range(n):
            p.send(topic, value=b"%d" % i, key=b"k%d" % (i % 97) if key else None)


def poll_until(consumers, cond, what, timeout_s=30):
    """Keep every consumer polling (that is when groups make progress) until ``cond()``."""
    def step():
        for c in consumers:
            c.poll(timeout_ms=50)
        return cond()
    return wait_for(step, timeout_s=timeout_s, interval_s=0.0, what=what)


def drain(consumers, want, timeout_s=60, commit=False):
    """Poll every consumer in turn until ``want`` records were seen (bounded)."""
    seen = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < want and time.monotonic() < deadline:
        for c in consumers:
            got = c.poll(timeout_ms=100, max_records=2000)
            seen += got
            if commit and got:
                c.commit()
    return seen


def restart_coordinator(cluster):
    """Kill the coordinator (Ray restarts it) and return at once, with a function that waits
    until the new incarnation answers: ray.kill does not wait, so a call right after it may
    still reach the old one."""
    before = cluster.coordinator.instance_id()
    ray.kill(cluster.coordinator.handle, no_restart=False)

    def wait():
        wait_for(lambda: cluster.coordinator.instance_id() != before, timeout_s=60, what="the coordinator to restart")
    return wait


def test_members_share_partitions_without_overlap_and_lag_ends_at_zero(cluster, admin):
    admin.create_topic("shared", partitions=6)
    produce("shared", 3000)
    a = rayka.Consumer("shared", group_id="g1", auto_offset_reset="earliest", enable_auto_commit=False)
    b = rayka.Consumer("shared", group_id="g1", auto_offset_reset="earliest", enable_auto_commit=False)
    seen = drain([a, b], 3000, commit=True)
    poll_until([a, b], lambda: a.assignment() and b.assignment() and len(a.assignment() | b.assignment()) == 6,
               "both members to own partitions")
    assert not (a.assignment() & b.assignment())
    assert sorted(int(r.value) for r in {(r.partition, r.offset): r for r in seen}.values()) == list(range(3000))
    a.commit()
    b.commit()
    desc = admin.describe_group("g1")
    assert desc.state == "Stable" and len(desc.members) == 2 and desc.total_lag == 0
    assert {p.member for p in desc.partitions} == {m.member_id for m in desc.members}
    a.close()
    b.close()
    assert wait_for(lambda: admin.describe_group("g1").state == "Empty", what="group to empty")


def test_committed_offsets_survive_coordinator_restart_and_new_session(cluster, admin):
    admin.create_topic("durable", partitions=2)
    produce("durable", 1000)
    c = rayka.Consumer("durable", group_id="keep", auto_offset_reset="earliest", enable_auto_commit=False)
    drain([c], 1000)
    c.commit()
    committed = {tp: c.committed(tp) for tp in c.assignment()}
    assert sum(committed.values()) == 1000
    c.close()
    restart_coordinator(cluster)()
    assert admin.describe_group("keep").total_lag == 0  # answered by the restarted coordinator
    for h in cluster.topic("durable", refresh=True)[1]:
        ray.kill(h.handle, no_restart=True)
    ray.kill(cluster.coordinator.handle, no_restart=True)
    again = rayka.connect(data_dir=cluster.data_dir, cluster_name=f"t-{uuid.uuid4().hex[:10]}")
    try:
        c2 = rayka.Consumer("durable", group_id="keep", auto_offset_reset="earliest", cluster=again)
        assert c2.poll(timeout_ms=1500) == []  # everything committed: nothing to re-read
        assert {tp: c2.committed(tp) for tp in committed} == committed
        c2.close()
    finally:
        again.shutdown(delete_data=True)


def test_zombie_paused_past_its_session_cannot_commit(cluster, admin):
    admin.create_topic("zombie", partitions=2)
    produce("zombie", 200)
    z = rayka.Consumer("zombie", group_id="gz", auto_offset_reset="earliest", enable_auto_commit=False,
                       session_timeout_ms=1000)
    drain([z], 200)
    pause_heartbeats(z)  # the process is paused: no heartbeats, no polls
    wait_for(lambda: admin.describe_group("gz").members == [], what="eviction after the session timeout")
    live = rayka.Consumer("zombie", group_id="gz", auto_offset_reset="earliest", enable_auto_commit=False)
    drain([live], 200)
    with pytest.raises(CommitFailedError, match="no longer owns"):
        z.commit()
    live.commit()
    assert admin.describe_group("gz").total_lag == 0
    live.close()


def test_slow_processing_leaves_after_max_poll_interval_and_rejoins(cluster, admin, caplog):
    admin.create_topic("slow", partitions=4)
    opts = dict(group_id="gs", auto_offset_reset="earliest", heartbeat_interval_ms=200)
    slow = rayka.Consumer("slow", max_poll_interval_ms=1500, session_timeout_ms=10_000, **opts)
    other = rayka.Consumer("slow", **opts)
    poll_until([slow, other], lambda: len(slow.assignment()) == 2 and len(other.assignment()) == 2, "two members")
    produce("slow", 400)
    assert len(drain([slow, other], 400, commit=True)) == 400
    assert admin.describe_group("gs").total_lag == 0
    # `slow` stops polling (long processing) but its heartbeats go on: it is not evicted for
    # liveness, it leaves for lack of progress, and `other` takes over everything.
    with caplog.at_level(logging.WARNING, logger="rayka.clients.group"):
        poll_until([other], lambda: len(other.assignment()) == 4, "the other member to take every partition")
        assert "max_poll_interval_ms" in caplog.text
    assert len(admin.describe_group("gs").members) == 1
    ends = admin.list_offsets("slow")
    produce("slow", 100)
    expected = {(p, o) for p, (_, end) in ends.items() for o in range(end, admin.list_offsets("slow")[p][1])}

    def owned_by_other_now():
        desc = admin.describe_group("gs")
        return {tp.partition for m in desc.members if m.member_id == other.member_id for tp in m.assignment}

    # Right after the leave: nothing of the partitions it no longer owns, not even fetched ones.
    assert slow.poll(timeout_ms=300) == [] and slow.assignment() == set()
    seen = []
    deadline = time.monotonic() + 30
    while len(seen) < len(expected) and time.monotonic() < deadline:
        for c in (slow, other):
            got = c.poll(timeout_ms=100)
            assert {TopicPartition("slow", r.partition) for r in got} <= c.assignment()
            if c is slow:  # never a record of a partition the other member owns in this generation
                assert not {r.partition for r in got} & owned_by_other_now()
            seen += got
    assert sorted((r.partition, r.offset) for r in seen) == sorted(expected)  # each exactly once
    poll_until([slow, other], lambda: len(slow.assignment()) == 2 and len(other.assignment()) == 2,
               "the slow member to be back with its share")
    assert len(admin.describe_group("gs").members) == 2
    slow.close()
    other.close()


def test_a_commit_overlapping_a_cooperative_rebalance_goes_through(cluster, admin):
    admin.create_topic("overlap", partitions=6)
    opts = dict(group_id="go", auto_offset_reset="earliest", enable_auto_commit=False, heartbeat_interval_ms=100)
    a, b = rayka.Consumer("overlap", **opts), rayka.Consumer("overlap", **opts)
    poll_until([a, b], lambda: len(a.assignment()) == 3 and len(b.assignment()) == 3, "two members")
    produce("overlap", 600)
    assert len(drain([a, b], 600)) == 600  # a and b have positions everywhere, nothing committed yet
    c = rayka.Consumer("overlap", **opts)
    c.poll(timeout_ms=50)  # c's join starts a rebalance: one partition of a and one of b move to c
    wait_for(lambda: told_to_rejoin(a) and told_to_rejoin(b), what="a and b told to rejoin")
    a.poll(timeout_ms=50)  # a joins: pending, the coordinator waits for b
    b.poll(timeout_ms=50)  # b's join completes the next generation, which a has not collected
    assert admin.describe_group("go").generation > a.generation
    mine = {tp: a.position(tp) for tp in a.assignment()}
    a.commit()  # a still holds and reads all three: commits never wait for a rebalance
    assert {tp: a.committed(tp) for tp in mine} == mine
    for x in (a, b, c):
        x.close()


def test_commit_during_a_rebalance_returns_promptly(cluster, admin):
    admin.create_topic("busy", partitions=4)
    produce("busy", 400)
    a = rayka.Consumer("busy", group_id="gb", auto_offset_reset="earliest", enable_auto_commit=False)
    drain([a], 400)
    b = rayka.Consumer("busy", group_id="gb", auto_offset_reset="earliest")
    b.poll(timeout_ms=200)  # b's join puts the group in PreparingRebalance
    assert admin.describe_group("gb").state == "PreparingRebalance"
    t0 = time.monotonic()
    a.commit()  # a still owns its partitions in this generation: the commit goes through
    assert time.monotonic() - t0 < 2.0
    assert admin.describe_group("gb").total_lag == 0
    a.close()
    b.close()


def test_auto_commit_and_offset_reset_none(cluster, admin):
    admin.create_topic("auto", partitions=1)
    produce("auto", 100, key=False)
    with pytest.raises(NoOffsetForPartitionError):
        rayka.Consumer("auto", group_id="ga", auto_offset_reset="none").poll(timeout_ms=2000)
    c = rayka.Consumer("auto", group_id="ga2", auto_offset_reset="earliest", auto_commit_interval_ms=100)
    drain([c], 100)
    poll_until([c], lambda: c.committed(TopicPartition("auto", 0)) == 100, "auto-commit")
    c.close()


def test_pattern_subscription_and_added_partitions_trigger_rebalances(cluster, admin):
    admin.create_topic("ev-1", partitions=1)
    c = rayka.Consumer(group_id="gp", auto_offset_reset="earliest")
    c.subscribe(pattern=r"ev-.*")
    poll_until([c], lambda: c.assignment() == {TopicPartition("ev-1", 0)}, "first assignment")
    admin.create_topic("ev-2", partitions=2)
    admin.create_topic("other", partitions=1)
    poll_until([c], lambda: len(c.assignment()) == 3, "pattern rebalance")
    assert {tp.topic for tp in c.assignment()} == {"ev-1", "ev-2"}
    admin.add_partitions("ev-1", total=3)
    poll_until([c], lambda: len(c.assignment()) == 5, "partitions added")
    c.close()


def test_listener_hears_revocations_and_assignments(cluster, admin):
    admin.create_topic("listen", partitions=4)
    events = []

    class Listener(rayka.ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            events.append(("revoked", len(revoked)))

        def on_partitions_assigned(self, assigned):
            events.append(("assigned", len(assigned)))

    a = rayka.Consumer(group_id="gl", auto_offset_reset="earliest")
    a.subscribe(["listen"], listener=Listener())
    poll_until([a], lambda: len(a.assignment()) == 4, "first assignment")
    b = rayka.Consumer("listen", group_id="gl")
    poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, "cooperative hand-over")
    assert events[0] == ("assigned", 4) and ("revoked", 2) in events
    a.close()
    b.close()


def test_static_member_restarting_in_time_gets_its_partitions_without_rebalance(cluster, admin):
    admin.create_topic("static", partitions=4)
    opts = dict(group_id="gst", auto_offset_reset="earliest", session_timeout_ms=10_000)
    a = rayka.Consumer("static", group_instance_id="pod-a", **opts)
    b = rayka.Consumer("static", group_instance_id="pod-b", **opts)
    poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, "two static members")
    mine, gen = a.assignment(), admin.describe_group("gst").generation
    a.close()  # a static member does not leave the group
    back = rayka.Consumer("static", group_instance_id="pod-a", **opts)
    poll_until([back], lambda: back.assignment(), "static rejoin")
    assert back.assignment() == mine
    assert admin.describe_group("gst").generation == gen
    back.close()
    b.close()


def test_static_and_dynamic_members_ride_through_a_coordinator_restart(cluster, admin):
    admin.create_topic("ride", partitions=4)
    opts = dict(group_id="gr", auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=3000)
    static = rayka.Consumer("ride", group_instance_id="pod-s", **opts)
    dynamic = rayka.Consumer("ride", **opts)
    both = [static, dynamic]
    poll_until(both, lambda: len(static.assignment()) == 2 and len(dynamic.assignment()) == 2, "two members")
    produce("ride", 400)
    assert len(drain(both, 400)) == 400
    members = {m.member_id for m in admin.describe_group("gr").members}
    restarted = restart_coordinator(cluster)
    for c in both:  # a sync commit while the coordinator restarts waits for it, then lands
        c.commit()
    restarted()
    assert admin.describe_group("gr").total_lag == 0
    produce("ride", 400)
    seen = drain(both, 400, commit=True)  # any error out of poll() or commit() fails the test
    assert len(seen) == 400 and len({(r.partition, r.offset) for r in seen}) == 400
    desc = admin.describe_group("gr")
    assert desc.total_lag == 0 and desc.state == "Stable"
    assert {m.member_id for m in desc.members} == members  # the same members: no rebalance needed
    for c in both:
        c.close()


def test_a_static_member_evicted_while_paused_rejoins_and_consumes(cluster, admin):
    admin.create_topic("pause", partitions=2)
    s = rayka.Consumer("pause", group_id="gp", group_instance_id="pod-p", auto_offset_reset="earliest",
                       enable_auto_commit=False, session_timeout_ms=1000, heartbeat_interval_ms=100)
    poll_until([s], lambda: len(s.assignment()) == 2, "first assignment")
    pause_heartbeats(s)  # the process is paused (GC, SIGSTOP): no heartbeats, no polls
    wait_for(lambda: admin.describe_group("gp").members == [], what="eviction after the session timeout")
    resume_heartbeats(s)  # ... and resumes
    poll_until([s], lambda: [m.member_id for m in admin.describe_group("gp").members] == [s.member_id],
               "the static member to be back, with a new member id")
    produce("pause", 100, key=False)
    assert sorted(int(r.value) for r in drain([s], 100)) == list(range(100))
    s.commit()
    assert admin.describe_group("gp").total_lag == 0
    s.close()


def test_commit_async_reports_to_its_callback(cluster, admin):
    admin.create_topic("async", partitions=2)
    admin.create_topic("elsewhere", partitions=1)
    produce("async", 200)
    c = rayka.Consumer("async", group_id="gas", auto_offset_reset="earliest", enable_auto_commit=False)
    drain([c], 200)
    done = []
    c.commit_async(callback=lambda offsets, error: done.append((offsets, error)))
    offsets, error = wait_for(lambda: done and done[0], what="the commit callback")
    assert error is None and sum(offsets.values()) == 200
    assert {tp: c.committed(tp) for tp in offsets} == offsets
    c.commit_async({TopicPartition("elsewhere", 0): 1}, callback=lambda o, e: done.append((o, e)))
    _, error = wait_for(lambda: len(done) == 2 and done[1], what="the refused commit's callback")
    assert isinstance(error, CommitFailedError)  # not this member's partition
    c.close()


def test_range_revokes_everything_first_and_gives_contiguous_ranges(cluster, admin):
    admin.create_topic("ranged", partitions=4)
    revoked = []

    class Listener(rayka.ConsumerRebalanceListener):
        def on_partitions_revoked(self, tps):
            revoked.append(len(tps))

    opts = dict(group_id="grg", auto_offset_reset="earliest", partition_assignment_strategy="range")
    a = rayka.Consumer(**opts)
    a.subscribe(["ranged"], listener=Listener())
    poll_until([a], lambda: len(a.assignment()) == 4, "first assignment")
    b = rayka.Consumer("ranged", **opts)
    poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, "eager rebalance")
    assert revoked == [4]  # eager: everything was given back before joining
    assert sorted([sorted(tp.partition for tp in x.assignment()) for x in (a, b)]) == [[0, 1], [2, 3]]
    a.close()
    b.close()


def test_roundrobin_deals_in_turn_and_a_member_with_another_assignor_is_refused(cluster, admin):
    admin.create_topic("rr", partitions=4)
    opts = dict(group_id="grr", auto_offset_reset="earliest", partition_assignment_strategy="roundrobin")
    a, b = rayka.Consumer("rr", **opts), rayka.Consumer("rr", **opts)
    poll_until([a, b], lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, "two members")
    assert sorted([sorted(tp.partition for tp in x.assignment()) for x in (a, b)]) == [[0, 2], [1, 3]]
    odd = rayka.Consumer("rr", group_id="grr", partition_assignment_strategy="range")
    with pytest.raises(InconsistentGroupProtocolError, match="'roundrobin'.*'range'"):
        odd.poll(timeout_ms=500)
    desc = admin.describe_group("grr")
    assert desc.protocol == "roundrobin" and len(desc.members) == 2 and desc.state == "Stable"
    for c in (odd, a, b):
        c.close()


def test_admin_reset_and_delete_group(cluster, admin):
    admin.create_topic("ops", partitions=2)
    produce("ops", 100, key=False)
    c = rayka.Consumer("ops", group_id="gops", auto_offset_reset="earliest", enable_auto_commit=False)
    drain([c], 100)
    c.commit()
    with pytest.raises(GroupNotEmptyError):
        admin.reset_offsets("gops", to="earliest")
    c.close()
    assert set(admin.reset_offsets("gops", to="earliest").values()) == {0}
    assert admin.describe_group("gops").total_lag == 100
    new = admin.reset_offsets("gops", to=10)
    assert all(v == 10 or v == admin.list_offsets("ops")[tp.partition][1] for tp, v in new.items())
    assert set(admin.reset_offsets("gops", to="latest").values()) == set(e for _, e in admin.list_offsets("ops").values())
    assert [g["group_id"] for g in admin.list_groups()] == ["gops"]
    admin.delete_group("gops")
    assert admin.list_groups() == []


def test_consumers_run_inside_ray_tasks_and_actors(cluster, admin):
    # Defined here so Ray ships them by value (workers cannot import this test module).
    def read(consumer, want):
        import time as _time

        seen, deadline = [], _time.monotonic() + 60
        while len(seen) < want and _time.monotonic() < deadline:
            seen += consumer.poll(timeout_ms=200)
        return seen

    @ray.remote(num_cpus=0)
    def consume_in_task(cluster_name, topic, group, want):
        rayka.connect(cluster_name=cluster_name)
        c = rayka.Consumer(topic, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)
        seen = read(c, want)
        c.commit()
        c.close()
        return sorted(int(r.value) for r in seen)

    @ray.remote(num_cpus=0)
    class ConsumerActor:
        def __init__(self, cluster_name, topic, group):
            rayka.connect(cluster_name=cluster_name)
            self.c = rayka.Consumer(topic, group_id=group, auto_offset_reset="earliest")

        def take(self, want):
            return len(read(self.c, want))

        def close(self):
            self.c.close()

    admin.create_topic("remote", partitions=2)
    produce("remote", 500, key=False)
    values = ray.get(consume_in_task.remote(cluster.cluster_name, "remote", "gt", 500), timeout=120)
    assert values == list(range(500))
    assert admin.describe_group("gt").total_lag == 0
    actor = ConsumerActor.remote(cluster.cluster_name, "remote", "gact")
    assert ray.get(actor.take.remote(500), timeout=120) == 500
    ray.get(actor.close.remote())
    assert admin.describe_group("gact").total_lag == 0
    ray.kill(actor)
