"""Follower truncation by leader epoch: KIP-101's and KIP-279's scenarios, and a random history."""

import random

import pytest

from rayka.errors import FencedLeaderEpochError, OffsetOutOfRangeError
from rayka.partitions.divergence import (
    Truncation,
    diverging_epoch,
    out_of_range_reset,
    resolve_truncation,
    truncation_for,
)
from rayka.partitions.epoch_cache import UNDEFINED, EpochCache


class Replica:
    """A log as the epoch of each record (offset = index), and its epoch cache."""

    def __init__(self, epochs=()):
        self.log: list[int] = []
        self.cache = EpochCache()
        for epoch in epochs:
            self.append(epoch, 1)

    def append(self, epoch, count):
        self.cache.assign(epoch, len(self.log))
        self.log.extend([epoch] * count)

    def lead(self, epoch):
        self.cache.assign(epoch, len(self.log))

    def answer(self, epoch):
        return self.cache.end_offset_for(epoch, len(self.log))

    def truncate(self, offset):
        del self.log[offset:]
        self.cache.truncate_from_end(offset)

    def copy_from(self, leader, upto):
        for offset in range(len(self.log), upto):
            self.cache.assign(leader.log[offset], offset)
            self.log.append(leader.log[offset])


def common_prefix(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def resolve(follower, leader):
    return resolve_truncation(follower.cache, 0, len(follower.log), leader.answer)


def test_kip101_scenario1_hw_truncation_would_lose_an_acknowledged_record():
    # A (leader, epoch 0) and B both hold m1 and m2, but B learned HW 1 only. B restarts and
    # rejoins: truncating to its HW would drop m2, which A acknowledged. By epoch B keeps it.
    a, b = Replica([0, 0]), Replica([0, 0])
    follower_hw = 1
    assert resolve(b, a) == 2 > follower_hw
    # ... so when A dies next and B leads, m2 is still there
    b.lead(1)
    assert b.log == [0, 0]


def test_kip101_scenario2_divergent_logs_after_back_to_back_failovers():
    # A held m1, m2 (epoch 0); B held m1 only. Both crash; B comes back first, leads epoch 1
    # and writes m3 at offset 1. A returns as follower: its m2 must go, not sit beside m3.
    a, b = Replica([0, 0]), Replica([0])
    b.lead(1)
    b.append(1, 1)
    assert b.answer(0) == (0, 1)
    offset = resolve(a, b)
    assert offset == 1
    a.truncate(offset)
    a.copy_from(b, len(b.log))
    assert a.log == b.log == [0, 1] and a.cache.entries == b.cache.entries


def test_kip279_follower_holds_an_epoch_the_leader_never_had():
    # F: epoch 1 at 0..2, epoch 3 at 3..5.  L: epoch 1 at 0..1, epoch 2 at 2..4, epoch 4 at 5..7.
    f = Replica([1, 1, 1, 3, 3, 3])
    lead = Replica([1, 1, 2, 2, 2, 4, 4, 4])
    first = truncation_for(f.cache, 0, len(f.log), lead.answer(f.cache.latest_epoch))
    assert lead.answer(3) == (2, 5)
    assert first == Truncation(3, False)  # F lacks epoch 2: cut where its epoch 1 ends, ask again
    f.truncate(first.offset)
    second = truncation_for(f.cache, 0, len(f.log), lead.answer(f.cache.latest_epoch))
    assert second == Truncation(2, True)
    assert resolve(Replica([1, 1, 1, 3, 3, 3]), lead) == 2 == common_prefix(f.log, lead.log)


def test_follower_with_an_older_epoch_the_leader_moved_past():
    f = Replica([1, 1, 1, 2, 2])
    lead = Replica([1, 1, 1, 1, 3, 3])
    assert lead.answer(2) == (1, 4)
    assert resolve(f, lead) == 3


def test_leader_ahead_and_equal_logs_keep_everything():
    f = Replica([0, 0, 0])
    lead = Replica([0, 0, 0, 0, 0, 1, 1])
    assert resolve(f, lead) == 3
    same = Replica([0, 0, 2, 2])
    assert resolve(same, Replica([0, 0, 2, 2])) == 4


def test_empty_follower_and_follower_without_epochs():
    lead = Replica([0, 0])
    assert resolve(Replica(), lead) == 0
    no_epochs = EpochCache()
    assert truncation_for(no_epochs, 5, 9, UNDEFINED) == Truncation(5, True)
    assert resolve_truncation(no_epochs, 5, 9, lead.answer) == 5


def test_undefined_answer_fences_instead_of_truncating():
    f = Replica([0, 3])
    stale = Replica([0, 0])
    assert stale.answer(3) == UNDEFINED
    with pytest.raises(FencedLeaderEpochError) as info:
        truncation_for(f.cache, 0, 2, stale.answer(3))
    assert info.value.retriable and "Nothing was truncated" in str(info.value)


def test_follower_after_retention_with_no_epoch_as_old_as_the_leaders_answer():
    # F kept only epoch 3 from offset 100 on; the leader wrote 50..109 in epoch 2 and 110.. in 4.
    f = EpochCache([(3, 100)])
    lead = EpochCache([(2, 50), (4, 110)])
    answer = lead.end_offset_for(3, 130)
    assert answer == (2, 110)
    assert truncation_for(f, 100, 120, answer) == Truncation(100, True)


def test_diverging_epoch_in_fetches():
    lead = Replica([0, 0, 2, 2])
    assert diverging_epoch(lead.cache, 4, 4, 2) is None
    assert diverging_epoch(lead.cache, 4, 2, 0) is None  # a follower at the end of epoch 0
    assert diverging_epoch(lead.cache, 4, 3, 0) == (0, 2)  # it has a third epoch-0 record
    assert diverging_epoch(lead.cache, 4, 3, 1) == (0, 2)  # an epoch the leader never had
    assert diverging_epoch(lead.cache, 4, 3, -1) is None
    assert diverging_epoch(lead.cache, 4, 3, 7) == UNDEFINED


def test_out_of_range_reset():
    assert out_of_range_reset(3, 10, 20) == 10
    assert out_of_range_reset(12, 10, 20) == 12
    with pytest.raises(OffsetOutOfRangeError):
        out_of_range_reset(25, 10, 20)


def test_resolve_truncation_leaves_the_cache_alone():
    f = Replica([1, 1, 1, 3, 3, 3])
    before = f.cache.entries
    assert resolve(f, Replica([1, 1, 2, 2, 4])) == 2
    assert f.cache.entries == before


def _sync_by_fetches(f, lead):
    """The follower fetches with (log end, latest epoch) until the leader has no diverging
    epoch for it, truncating by each answer; returns the offset it settled at."""
    for _ in range(100):
        answer = diverging_epoch(lead.cache, len(lead.log), len(f.log), f.cache.latest_epoch)
        if answer is None:
            return len(f.log)
        f.truncate(truncation_for(f.cache, 0, len(f.log), answer).offset)
    raise AssertionError("fetch truncation did not settle")


@pytest.mark.parametrize("seed", range(40))
def test_random_failovers_truncate_exactly_to_the_common_prefix(seed):
    rng = random.Random(seed)
    replicas = [Replica() for _ in range(rng.randint(2, 4))]
    leader, epoch = 0, 0
    replicas[0].lead(0)
    by_fetch = seed % 2 == 1
    for _ in range(60):
        op = rng.random()
        lead = replicas[leader]
        if op < 0.4:
            lead.append(epoch, rng.randint(1, 3))
        elif op < 0.8:
            f = replicas[rng.choice([i for i in range(len(replicas)) if i != leader])]
            expected = common_prefix(f.log, lead.log)
            if by_fetch:
                offset = _sync_by_fetches(f, lead)
            else:
                offset = resolve(f, lead)
                f.truncate(offset)
            assert offset == expected, (f.log, lead.log)
            f.copy_from(lead, rng.randint(offset, len(lead.log)))
            assert f.log == lead.log[:len(f.log)]
        else:  # any replica may lead next (an unclean election too): epochs stay unique
            leader, epoch = rng.randrange(len(replicas)), epoch + 1
            replicas[leader].lead(epoch)
    lead = replicas[leader]
    for f in replicas:
        if f is not lead:
            f.truncate(resolve(f, lead))
            f.copy_from(lead, len(lead.log))
        assert f.log == lead.log
