"""Assignors without Ray: balanced, deterministic, and cooperative moves the minimum."""

import pytest

from rayka.coordinator.assignment import Subscription, get_assignor
from rayka.errors import ConfigError


def subs(n, topics=("t",), owned=None):
    owned = owned or {}
    return {f"m{i}": Subscription(f"m{i}", frozenset(topics), tuple(owned.get(f"m{i}", ())), None) for i in range(n)}


@pytest.mark.parametrize("name", ["range", "roundrobin", "cooperative-sticky"])
@pytest.mark.parametrize("members,parts", [(1, 4), (3, 12), (4, 10), (5, 3), (3, 7)])
def test_balanced_complete_and_unique(name, members, parts):
    result = get_assignor(name).assign(subs(members), {"t": parts}).owners
    counts = [len(v) for v in result.values()]
    assert max(counts) - min(counts) <= 1
    flat = [tp for v in result.values() for tp in v]
    assert sorted(flat) == [("t", p) for p in range(parts)]


@pytest.mark.parametrize("name", ["range", "roundrobin", "cooperative-sticky"])
def test_same_input_same_answer(name):
    a = get_assignor(name).assign(subs(3, ("a", "b")), {"a": 5, "b": 7}).owners
    b = get_assignor(name).assign(dict(reversed(list(subs(3, ("a", "b")).items()))), {"a": 5, "b": 7}).owners
    assert a == b


def test_range_gives_contiguous_ranges_per_topic():
    result = get_assignor("range").assign(subs(3), {"t": 8}).owners
    assert result == {"m0": [("t", 0), ("t", 1), ("t", 2)], "m1": [("t", 3), ("t", 4), ("t", 5)],
                      "m2": [("t", 6), ("t", 7)]}


def test_only_subscribers_get_a_topics_partitions():
    members = {"a": Subscription("a", frozenset({"x"})), "b": Subscription("b", frozenset({"x", "y"}))}
    for name in ("range", "roundrobin", "cooperative-sticky"):
        result = get_assignor(name).assign(members, {"x": 2, "y": 3}).owners
        assert all(tp[0] == "x" for tp in result["a"])
        assert {tp for tp in result["b"] if tp[0] == "y"} == {("y", 0), ("y", 1), ("y", 2)}


def test_cooperative_join_of_a_fourth_member_moves_exactly_three_of_twelve():
    before = get_assignor("cooperative-sticky").assign(subs(3), {"t": 12}).owners
    owned = {m: tuple(v) for m, v in before.items()}
    first = get_assignor("cooperative-sticky").assign(subs(4, owned=owned), {"t": 12})
    # Round one: nobody gets a partition another member still owns; three are withheld.
    assert first.owners["m3"] == [] and len(first.withheld) == 3
    for m in ("m0", "m1", "m2"):
        assert set(first.owners[m]) <= set(owned[m]) and len(first.owners[m]) == 3
    # Round two, after the old owners revoked: the new member gets the three, nothing else moves.
    owned2 = {m: tuple(v) for m, v in first.owners.items()}
    second = get_assignor("cooperative-sticky").assign(subs(4, owned=owned2), {"t": 12})
    assert not second.withheld
    assert sorted(second.owners["m3"]) == sorted(first.withheld)
    moved = sum(len(set(second.owners[m]) - set(owned.get(m, ()))) for m in second.owners)
    assert moved == 3


def test_cooperative_keeps_everything_when_nothing_changes():
    before = get_assignor("cooperative-sticky").assign(subs(4), {"t": 10}).owners
    again = get_assignor("cooperative-sticky").assign(subs(4, owned={m: tuple(v) for m, v in before.items()}),
                                                      {"t": 10})
    assert again.owners == before and not again.withheld


def test_cooperative_leave_reassigns_only_the_leavers_partitions():
    before = get_assignor("cooperative-sticky").assign(subs(3), {"t": 9}).owners
    owned = {m: tuple(v) for m, v in before.items() if m != "m2"}
    after = get_assignor("cooperative-sticky").assign(
        {m: Subscription(m, frozenset({"t"}), owned[m]) for m in owned}, {"t": 9}).owners
    for m in owned:
        assert set(owned[m]) <= set(after[m])
    assert sorted(tp for v in after.values() for tp in v) == [("t", p) for p in range(9)]


def test_static_members_order_by_instance_id():
    a = {"x-1": Subscription("x-1", frozenset({"t"}), (), "beta"), "y-2": Subscription("y-2", frozenset({"t"}), (), "alpha")}
    result = get_assignor("range").assign(a, {"t": 2}).owners
    assert result["y-2"] == [("t", 0)]


def test_unknown_assignor_is_a_config_error():
    with pytest.raises(ConfigError, match="cooperative-sticky"):
        get_assignor("sticky-ish")


def test_cooperative_conflicting_claims_go_to_the_newest_generation_not_the_first_in_order():
    # m0 sorts first and claims more, but its claim is of an older generation (a member that
    # left and came back still believing it owns what moved on since): m1, the owner, keeps them.
    members = {"m0": Subscription("m0", frozenset({"t"}), (("t", 0), ("t", 1), ("t", 2)), None, generation=3),
               "m1": Subscription("m1", frozenset({"t"}), (("t", 0), ("t", 1)), None, generation=5)}
    result = get_assignor("cooperative-sticky").assign(members, {"t": 4})
    assert result.owners["m1"] == [("t", 0), ("t", 1)]
    assert not {("t", 0), ("t", 1)} & set(result.owners["m0"])
    assert not result.withheld  # the stale claimant holds nothing that must be revoked first


def test_cooperative_claims_tied_at_one_generation_are_withheld_from_everyone():
    members = {"m0": Subscription("m0", frozenset({"t"}), (("t", 0),), None, generation=4),
               "m1": Subscription("m1", frozenset({"t"}), (("t", 0), ("t", 1)), None, generation=4)}
    result = get_assignor("cooperative-sticky").assign(members, {"t": 2})
    assert ("t", 0) in result.withheld and result.needs_follow_up
    assert all(("t", 0) not in tps for tps in result.owners.values())
    assert result.owners["m1"] == [("t", 1)]
