"""Which partitions the controller leaves alone in a tick (coordinator/controller.py
StartupGrace): replicas still starting, and partitions where no call was answered."""

from rayka.clock import ManualClock
from rayka.coordinator.controller import STARTUP_GRACE_MS, ReplicaReport, StartupGrace


def _reports(answered=(), dead=(), gone=(), partition=0):
    return [ReplicaReport("t", partition, r, answered=r in answered, dead=r in dead, node_alive=r not in gone)
            for r in range(3)]


def test_a_replica_that_never_answered_holds_its_partition_back_for_the_grace_only():
    clock = ManualClock()
    grace = StartupGrace(clock)
    assert grace.hold_back(_reports(answered=(0, 1))) == {("t", 0)}  # replica 2 still starting
    clock.advance(STARTUP_GRACE_MS - 1)
    assert grace.hold_back(_reports(answered=(0, 1))) == {("t", 0)}
    clock.advance(1)
    assert grace.hold_back(_reports(answered=(0, 1))) == set()  # it had its time: now it is failing


def test_once_answered_a_replica_gets_no_grace_again():
    clock = ManualClock()
    grace = StartupGrace(clock)
    assert grace.hold_back(_reports(answered=(0, 1, 2))) == set()
    clock.advance(500)
    assert grace.hold_back(_reports(answered=(1, 2))) == set()  # replica 0 went silent: it counts


def test_a_dead_replica_or_a_gone_node_gets_no_grace():
    grace = StartupGrace(ManualClock())
    assert grace.hold_back(_reports(answered=(0, 1), dead=(2,))) == set()
    assert grace.hold_back(_reports(answered=(0, 1), gone=(2,))) == set()


def test_a_partition_where_nobody_answered_and_nobody_is_known_dead_is_left_alone():
    clock = ManualClock()
    grace = StartupGrace(clock)
    grace.hold_back(_reports(answered=(0, 1, 2)))
    clock.advance(60_000)
    assert grace.hold_back(_reports()) == {("t", 0)}  # every call timed out: the view is in doubt
    assert grace.hold_back(_reports(dead=(0,))) == set()  # Ray said one died: decide


def test_a_replica_no_longer_reported_is_forgotten():
    clock = ManualClock()
    grace = StartupGrace(clock)
    grace.hold_back(_reports(answered=(0, 1)))
    grace.hold_back([])  # the topic was deleted
    clock.advance(STARTUP_GRACE_MS)
    assert grace.hold_back(_reports(answered=(0, 1))) == {("t", 0)}  # asked anew: a new grace
