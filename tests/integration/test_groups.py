"""Consumer groups on Ray: sharing, commits, fencing, liveness vs progress, rebalances, admin."""

import time
import uuid

import pytest
import ray

import rayka
from rayka import TopicPartition
from rayka.errors import GroupNotEmptyError, IllegalGenerationError, NoOffsetForPartitionError, UnknownMemberError

from helpers import wait_for


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
    ray.kill(cluster.coordinator, no_restart=False)
    assert wait_for(lambda: admin.describe_group("keep").total_lag == 0, what="coordinator restart")
    for h in cluster.topic("durable", refresh=True)[1]:
        ray.kill(h, no_restart=True)
    ray.kill(cluster.coordinator, no_restart=True)
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
    z._group._stop.set()  # the process is paused: no heartbeats, no polls
    wait_for(lambda: admin.describe_group("gz").members == [], what="eviction after the session timeout")
    live = rayka.Consumer("zombie", group_id="gz", auto_offset_reset="earliest", enable_auto_commit=False)
    drain([live], 200)
    with pytest.raises((UnknownMemberError, IllegalGenerationError)):
        z.commit()
    live.commit()
    assert admin.describe_group("gz").total_lag == 0
    live.close()


def test_slow_processing_leaves_after_max_poll_interval_and_rejoins(cluster, admin):
    admin.create_topic("slow", partitions=4)
    produce("slow", 400)
    slow = rayka.Consumer("slow", group_id="gs", auto_offset_reset="earliest", max_poll_interval_ms=1500,
                          session_timeout_ms=10_000)
    other = rayka.Consumer("slow", group_id="gs", auto_offset_reset="earliest")
    drain([slow, other], 400)
    assert slow.assignment()
    # `slow` stops polling (long processing) but its heartbeats go on: it is not evicted for
    # liveness, it leaves for lack of progress, and `other` takes over everything.
    poll_until([other], lambda: len(other.assignment()) == 4, "the other member to take every partition")
    members = admin.describe_group("gs").members
    assert len(members) == 1
    produce("slow", 100)
    poll_until([slow, other], lambda: len(slow.assignment()) > 0 and len(other.assignment()) < 4,
               "the slow member to rejoin")
    assert len(admin.describe_group("gs").members) == 2
    slow.close()
    other.close()


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
