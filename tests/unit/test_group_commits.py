"""Commits against a group in flux: zombies fenced, commits never wait for a rebalance, and
no partition is ever committable (or held) by two members (manual clock, no Ray)."""

import pytest

from rayka.messages import JoinStatus
from rayka.errors import IllegalGenerationError, UnknownMemberError

from group_helpers import COOP, join, make, settle


def test_member_catching_up_on_a_new_generation_may_commit_what_it_keeps():
    group, _ = make(parts=4)
    coop = "cooperative-sticky"
    a = join(group, assignor=coop).member_id
    assert len(group.members[a].assignment) == 4
    b = join(group, assignor=coop).member_id
    first = join(group, a, owned=group.members[a].assignment, assignor=coop)  # completes gen 2
    kept = first.assignment
    assert len(kept) == 2 and first.rebalance  # 2 withheld for b, follow-up pending
    join(group, b, owned=(), assignor=coop)  # b collects gen 2 (nothing yet)
    join(group, a, owned=tuple(kept), assignor=coop)  # a joins the follow-up ...
    done = join(group, b, owned=(), assignor=coop)  # ... and b's join completes gen 3
    assert done.status is JoinStatus.OK and len(done.assignment) == 2 and group.generation == first.generation + 1
    # a has not collected gen 3 yet: it may still commit, with gen 2, what it keeps ...
    group.validate_commit(a, first.generation, kept)
    # ... but never what now belongs to b, and never with an older generation.
    with pytest.raises(IllegalGenerationError):
        group.validate_commit(a, first.generation, done.assignment)
    with pytest.raises(IllegalGenerationError):
        group.validate_commit(a, first.generation - 1, kept)


def test_commit_overlapping_a_cooperative_rebalance_is_accepted_for_what_the_member_still_holds():
    # The audit's case: A's join is pending when B's join completes the next generation.
    group, _ = make(parts=6)
    answers = {}
    for _ in range(2):
        r = join(group, assignor=COOP)
        answers[r.member_id] = r
    answers = settle(group, answers, COOP)
    a, b = list(answers)
    gen_a, held_a = answers[a].generation, answers[a].assignment
    c = join(group, assignor=COOP).member_id
    assert join(group, a, owned=tuple(held_a), assignor=COOP).status is JoinStatus.PENDING
    done_b = join(group, b, owned=tuple(answers[b].assignment), assignor=COOP)
    assert done_b.status is JoinStatus.OK and group.generation == gen_a + 1
    withheld = set(map(tuple, held_a)) - set(map(tuple, group.members[a].assignment))
    assert withheld, "one of A's partitions moves to C"
    # A has not heard of the new generation: it still reads all it held, and may commit them all.
    group.validate_commit(a, gen_a, held_a)
    # Never a partition another member owns now, and never with an older generation.
    with pytest.raises(IllegalGenerationError, match="does not own"):
        group.validate_commit(a, gen_a, done_b.assignment)
    with pytest.raises(IllegalGenerationError):
        group.validate_commit(a, gen_a - 1, held_a)
    # A collects the new generation: it revokes what moves, committing it first (with the new
    # generation, as the client does); C is not given it until the follow-up.
    new_a = join(group, a, owned=tuple(held_a), assignor=COOP)
    group.validate_commit(a, new_a.generation, sorted(withheld))
    assert c in group.members and not group.members[c].assignment


def test_a_partition_being_handed_over_is_committable_by_its_old_owner_only_until_the_new_one_has_it():
    group, _ = make(parts=2)
    a = join(group, assignor=COOP)
    b = join(group, assignor=COOP).member_id
    first = join(group, a.member_id, owned=tuple(a.assignment), assignor=COOP)  # 1 withheld for b
    moving = sorted(set(map(tuple, a.assignment)) - set(map(tuple, first.assignment)))
    group.validate_commit(a.member_id, first.generation, moving)
    join(group, b, assignor=COOP)  # b collects (nothing yet) and joins the follow-up ...
    join(group, a.member_id, owned=tuple(first.assignment), assignor=COOP)  # ... a, having revoked
    final = join(group, b, assignor=COOP)
    assert list(final.assignment) == moving
    with pytest.raises(IllegalGenerationError, match="does not own"):
        group.validate_commit(a.member_id, group.generation, moving)
    group.validate_commit(b, final.generation, moving)


def test_a_stale_claim_never_beats_the_owner_in_the_current_assignment():
    # pod-a sorts before pod-b, and claims as many partitions: order alone would pick pod-a.
    group, _ = make(parts=4)
    real = join(group, instance="pod-b", assignor=COOP)
    assert len(real.assignment) == 4
    stale = join(group, instance="pod-a", owned=tuple(real.assignment), assignor=COOP)  # e.g. left and back
    done = join(group, real.member_id, owned=tuple(real.assignment), assignor=COOP)
    assert done.status is JoinStatus.OK and len(done.assignment) == 2  # keeps its share, hands 2 over
    assert group.members[stale.member_id].assignment == []  # gets nothing it could overlap with
    assert group.members[stale.member_id].revoking == []  # and may commit none of them
    with pytest.raises(IllegalGenerationError):
        group.validate_commit(stale.member_id, group.generation, real.assignment[:1])


class _Model:
    """A client as the protocol expects it to behave: joins when told to, revokes (after
    committing) what it is no longer given, eagerly everything first with range."""

    def __init__(self, member_id):
        self.member_id, self.gen, self.held, self.joining, self.rejoin = member_id, -1, set(), True, False


def _simulate(seed, assignor, steps=250):
    import random

    rnd = random.Random(seed)
    group, clock = make(parts=6)
    group.partitions = {"t": 6}
    models = {}

    def step_join(m):
        if assignor != COOP and not m.joining:
            if m.held:
                group.validate_commit(m.member_id, m.gen, sorted(m.held))  # commit before giving up
            m.held = set()
        m.joining, m.rejoin = True, False
        a = join(group, m.member_id, owned=tuple(sorted(m.held)), assignor=assignor)
        if a.status is JoinStatus.OK:
            m.gen, new = a.generation, set(map(tuple, a.assignment))
            if m.held - new:  # cooperative revocation: the old owner commits, then gives up
                group.validate_commit(m.member_id, m.gen, sorted(m.held - new))
            m.held, m.joining, m.rejoin = new, False, bool(a.rebalance)

    for _ in range(steps):
        clock.advance(rnd.randint(0, 50))
        action = rnd.random()
        if action < 0.12 and len(models) < 5:
            a = join(group, assignor=assignor)
            models[a.member_id] = m = _Model(a.member_id)
            if a.status is JoinStatus.OK:
                m.gen, m.held = a.generation, set(map(tuple, a.assignment))
                m.joining, m.rejoin = False, bool(a.rebalance)
        elif action < 0.18 and len(models) > 1:
            gone = rnd.choice(sorted(models))
            group.leave(gone)
            del models[gone]
        elif action < 0.20:
            group.on_metadata_change({"t": group.partitions["t"] + 1})
        elif models:
            m = models[rnd.choice(sorted(models))]
            if m.joining or m.rejoin or group.heartbeat(m.member_id, m.gen) == "rebalance":
                step_join(m)
        group.tick()
        # What members physically hold never overlaps ...
        held = [tp for m in models.values() for tp in m.held]
        assert len(held) == len(set(held)), (seed, [(m.member_id[-4:], sorted(m.held)) for m in models.values()])
        # ... each can commit all it holds with the generation it knows (commits never wait) ...
        for m in models.values():
            if m.held:
                group.validate_commit(m.member_id, m.gen, sorted(m.held))
        # ... and no partition is ever committable by two members.
        for tp in [("t", p) for p in range(group.partitions["t"])]:
            committers = []
            for m in models.values():
                try:
                    group.validate_commit(m.member_id, m.gen, [tp])
                    committers.append(m.member_id)
                except (IllegalGenerationError, UnknownMemberError):
                    pass
            assert len(committers) <= 1, (seed, tp, committers)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("assignor", [COOP, "range"])
def test_random_rebalances_never_let_two_members_own_or_commit_one_partition(seed, assignor):
    _simulate(seed, assignor)
