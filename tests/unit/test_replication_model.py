"""The replication rules together, without Ray: a model cluster of replicas with failovers,
zombie leaders and stale followers, checking that nothing acknowledged or visible is lost.

Each replica is a log (the value and epoch of each offset) with its epoch cache; the
controller keeps the PartitionState and elects cleanly (elect_leader); the leader keeps a
ReplicaSet; followers fetch with (fetch offset, last epoch) and truncate by the leader's
diverging epoch. A "partitioned" leader keeps running as a zombie: it takes appends and
fetches from followers that have not learned of the new epoch, and is fenced at its next
ISR change. The model is what the actors will do, one call at a time.
"""

import random

import pytest

from rayka.coordinator.clock import ManualClock
from rayka.coordinator.election import PartitionState, alter_partition, elect_leader
from rayka.errors import FencedLeaderEpochError, InvalidUpdateVersionError, NotEnoughReplicasError, NotLeaderError
from rayka.partitions.divergence import diverging_epoch, truncation_for
from rayka.partitions.epoch_cache import EpochCache
from rayka.partitions.replica_set import PendingAcks, ReplicaSet, check_leader_epoch

LAG = 50


class Node:
    def __init__(self, rid):
        self.rid = rid
        self.log: list[tuple[int, int]] = []  # (epoch, value) per offset
        self.cache = EpochCache()
        self.hw = 0
        self.running = True
        self.leading: ReplicaSet | None = None
        self.acks = PendingAcks()
        self.known_epoch = 0  # the leader epoch this replica last learned
        self.known_leader = 0

    def truncate(self, offset):
        del self.log[offset:]
        self.cache.truncate_from_end(offset)
        self.hw = min(self.hw, offset)


class Cluster:
    def __init__(self, rng, n, min_isr):
        self.rng, self.min_isr = rng, min_isr
        self.clock = ManualClock(0)
        self.nodes = [Node(r) for r in range(n)]
        self.state = PartitionState.initial(list(range(n)))
        self.acked: dict[int, int] = {}  # value -> offset
        self.visible: dict[int, int] = {}
        self.next_value = 0
        self.become_leader(self.nodes[0])

    def become_leader(self, node):
        node.cache.assign(self.state.leader_epoch, len(node.log))
        node.known_epoch, node.known_leader = self.state.leader_epoch, node.rid
        node.leading = ReplicaSet(self.state, node.rid, len(node.log), node.hw, len(node.log),
                                  min_insync_replicas=self.min_isr, lag_time_max_ms=LAG, clock=self.clock)
        node.acks = PendingAcks()

    def step_down(self, node):
        node.leading = None
        node.acks = PendingAcks()  # their producers time out: indeterminate, never counted

    def produce(self, node):
        rs = node.leading
        try:
            check_leader_epoch(rs.leader_epoch, node.known_epoch)
            rs.check_acks_all()
        except (NotEnoughReplicasError, NotLeaderError, FencedLeaderEpochError):
            return
        for _ in range(self.rng.randint(1, 3)):
            node.log.append((rs.leader_epoch, self.next_value))
            self.next_value += 1
        rs.on_append(len(node.log))
        node.acks.add(len(node.log) - 1, 10**12, len(node.log) - 1)
        self.settle(node)

    def settle(self, node):
        rs = node.leading
        node.hw = rs.high_watermark
        for offset, error in node.acks.release(rs):
            if error is None:
                holders = sum(1 for n in self.nodes if len(n.log) > offset and n.log[offset] == node.log[offset])
                assert holders >= self.min_isr
                self.acked[node.log[offset][1]] = offset
        for offset in range(node.hw):
            self.visible[node.log[offset][1]] = offset

    def fetch(self, f):
        if self.rng.random() < 0.3:  # the follower refreshes its metadata
            f.known_epoch, f.known_leader = self.state.leader_epoch, self.state.leader
        if f.known_leader is None or f.known_leader == f.rid:
            return
        lead = self.nodes[f.known_leader]
        if not lead.running or lead.leading is None:
            return
        try:
            check_leader_epoch(lead.leading.leader_epoch, f.known_epoch, what="fetch")
        except (NotLeaderError, FencedLeaderEpochError):
            f.known_epoch, f.known_leader = self.state.leader_epoch, self.state.leader
            return
        answer = diverging_epoch(lead.cache, len(lead.log), len(f.log), f.cache.latest_epoch)
        if answer is not None:
            f.truncate(truncation_for(f.cache, 0, len(f.log), answer).offset)
            return
        lead.leading.on_follower_fetch(f.rid, len(f.log))
        self.settle(lead)
        for offset in range(len(f.log), min(len(lead.log), len(f.log) + self.rng.randint(0, 4))):
            f.cache.assign(lead.log[offset][0], offset)
            f.log.append(lead.log[offset])
        f.hw = min(lead.leading.high_watermark, len(f.log))

    def isr_change(self, node, propose_only=False):
        """Propose an ISR change, or (re-)send the pending one: the coordinator may have made
        other changes (an election) in between."""
        rs = node.leading
        if rs.pending is None:
            if rs.next_isr_change() is None or propose_only:
                return
        request = rs.pending
        try:
            self.state = alter_partition(self.state, request)
        except (FencedLeaderEpochError, NotLeaderError):
            self.step_down(node)  # a zombie learns it was deposed
            return
        except InvalidUpdateVersionError:
            pass
        if self.rng.random() < 0.8:  # else the answer is lost: it stays pending and is sent again
            rs.on_isr_committed(self.state.isr, self.state.partition_epoch)
            self.settle(node)

    def elect(self):
        alive = {n.rid for n in self.nodes if n.running and not getattr(n, "cut_off", False)}
        result = elect_leader(self.state, alive)
        if result.changed:
            assert not result.unclean
            self.state = result.state
            if self.state.leader is not None:
                new = self.nodes[self.state.leader]
                if new.leading is not None:
                    self.step_down(new)
                self.become_leader(new)

    def check(self):
        if self.state.leader is None:
            return
        log = self.nodes[self.state.leader].log
        for value, offset in list(self.acked.items()) + list(self.visible.items()):
            assert offset < len(log) and log[offset][1] == value, (value, offset, log)


@pytest.mark.parametrize("seed", range(25))
def test_failovers_lose_nothing_acknowledged_or_visible(seed):
    rng = random.Random(seed)
    c = Cluster(rng, n=3, min_isr=rng.choice([1, 2, 2]))
    for _ in range(600):
        op = rng.random()
        leaders = [n for n in c.nodes if n.running and n.leading is not None]
        if op < 0.25 and leaders:
            c.produce(rng.choice(leaders))
        elif op < 0.65:
            f = rng.choice(c.nodes)
            if f.running and f.leading is None:
                c.fetch(f)
        elif op < 0.72:
            c.clock.advance(rng.randint(1, LAG))
        elif op < 0.8 and leaders:
            c.isr_change(rng.choice(leaders), propose_only=rng.random() < 0.5)
        elif op < 0.82:  # a replica dies; its files stay
            victim = rng.choice(c.nodes)
            victim.running = False
            c.step_down(victim)
            c.elect()
        elif op < 0.84 and c.state.leader is not None:  # the leader is cut off: the controller
            zombie = c.nodes[c.state.leader]         # thinks it dead, it keeps running
            zombie.cut_off = True
            c.elect()
            zombie.cut_off = False
        elif op < 0.95:  # a dead replica comes back as a follower
            back = rng.choice(c.nodes)
            if not back.running:
                back.running = True
                back.known_epoch, back.known_leader = c.state.leader_epoch, c.state.leader
                c.elect()
        c.check()
    # heal: everyone back, zombies step down, followers catch up
    for n in c.nodes:
        n.running = True
        if n.leading is not None and n.rid != c.state.leader:
            c.step_down(n)
    c.elect()
    if c.state.leader is None:
        pytest.fail(f"no leader after healing: {c.state}")
    lead = c.nodes[c.state.leader]
    for _ in range(200):
        for f in c.nodes:
            if f is not lead:
                f.known_epoch, f.known_leader = c.state.leader_epoch, c.state.leader
                c.fetch(f)
        c.clock.advance(5)
        c.isr_change(lead)
    c.check()
    assert all(n.log == lead.log for n in c.nodes), [n.log for n in c.nodes]
    assert lead.leading.isr == c.state.isr == c.state.replicas
