"""Kafka clients simulated against KafkaGroup with a fixed seed: members join, leave, die and
restart (static ones too) while the others poll as the gateway does. In every generation no
partition has two owners, and once the chaos stops the group settles with every partition
assigned exactly once to the members still alive."""

import random

import pytest

from rayka.coordinator.client_groups import KafkaGroup
from rayka.coordinator.clock import ManualClock
from rayka.coordinator.group_state import GroupState as S
from rayka.errors import (FencedInstanceIdError, IllegalGenerationError, RebalanceInProgressError,
                          UnknownMemberError)
from rayka.messages import JoinStatus

PARTITIONS = 6


class Client:
    """One Kafka consumer as the gateway drives it: join until answered, sync until answered,
    then heartbeat; a group error sends it back to joining, as real clients do."""

    def __init__(self, group, instance=None):
        self.group, self.instance = group, instance
        self.member_id, self.generation, self.phase, self.parts, self.members = None, -1, "join", (), ()

    def step(self):
        g = self.group
        try:
            if self.phase == "join":
                a = g.join(self.member_id, instance_id=self.instance, protocol_type="consumer",
                           protocols=[("range", b"")], session_timeout_ms=1000, rebalance_timeout_ms=3000)
                self.member_id = a.member_id
                if a.status is JoinStatus.OK:
                    self.generation, self.phase = a.generation, "sync"
                    self.members = [m for m, _, _ in a.members] if a.leader == self.member_id else []
            elif self.phase == "sync":
                plan = {m: [("t", p) for p in range(PARTITIONS) if p % len(self.members) == i]
                        for i, m in enumerate(self.members)}
                r = g.sync(self.member_id, self.generation, instance_id=self.instance,
                           assignments={m: ",".join(str(p) for _, p in tps).encode() for m, tps in plan.items()},
                           assigned=plan)
                if r.status is JoinStatus.OK:
                    self.parts = tuple(int(p) for p in r.assignment.decode().split(",") if p)
                    self.phase = "stable"
            elif g.heartbeat(self.member_id, self.generation, instance_id=self.instance) == "rebalance":
                self.phase, self.parts = "join", ()
        except (RebalanceInProgressError, IllegalGenerationError):
            self.phase, self.parts = "join", ()
        except (UnknownMemberError, FencedInstanceIdError):
            self.member_id, self.phase, self.parts = None, "join", ()


def check_no_two_owners(clients):
    owned = {}
    for c in clients:
        if c.phase == "stable":
            for p in c.parts:
                assert (c.generation, p) not in owned, f"partition {p} owned twice in generation {c.generation}"
                owned[(c.generation, p)] = c


@pytest.mark.parametrize("seed", range(30))
def test_random_membership_changes_never_give_a_partition_two_owners_and_settle(seed):
    rng = random.Random(seed)
    clock = ManualClock()
    group = KafkaGroup("g", clock)
    alive = [Client(group) for _ in range(3)] + [Client(group, instance="static-1")]
    for _ in range(300):  # at least one client stays alive throughout
        for c in list(alive):
            c.step()
        check_no_two_owners(alive)
        roll = rng.random()
        if roll < 0.03:
            alive.append(Client(group, instance=rng.choice([None, f"static-{rng.randrange(1, 4)}"])))
        elif roll < 0.05 and len(alive) > 1:
            alive.remove(rng.choice(alive))  # it dies: the session timeout removes it
        elif roll < 0.07 and len(alive) > 1:
            c = rng.choice(alive)
            if c.member_id and c.member_id in group.members:
                group.leave(c.member_id)
                alive.remove(c)
        elif roll < 0.09:
            for c in alive:
                if c.instance is not None:
                    c.member_id, c.phase, c.parts = None, "join", ()  # a static member's process restarts
                    break
        clock.advance(rng.choice([10, 50, 200]))
        group.tick()
    # Two clients of one instance id: the older one is fenced for good (a real one would stop).
    by_instance = {}
    for c in alive:
        if c.instance is not None:
            by_instance.setdefault(c.instance, []).append(c)
    for clients in by_instance.values():
        for c in clients[:-1]:
            alive.remove(c)
    for _ in range(200):  # no more chaos: everyone left polls until the group settles
        for c in alive:
            c.step()
        check_no_two_owners(alive)
        clock.advance(50)
        group.tick()
        if (group.state is S.STABLE and {c.member_id for c in alive} == set(group.members)
                and all(c.phase == "stable" and c.generation == group.generation for c in alive)):
            break
    assert group.state is S.STABLE and {c.member_id for c in alive} == set(group.members)
    assert all(c.phase == "stable" and c.generation == group.generation for c in alive)
    assert sorted(p for c in alive for p in c.parts) == list(range(PARTITIONS))
