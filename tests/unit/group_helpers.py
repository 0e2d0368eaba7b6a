"""Helpers shared by the group unit tests: a group on a manual clock, joins, settling."""

from rayka.messages import JoinStatus
from rayka.coordinator.clock import ManualClock
from rayka.coordinator.groups import Group, GroupState

S = GroupState
COOP = "cooperative-sticky"


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
            a = join(group, mid, owned=tuple(answers[mid].assignment) if mid in answers else (), assignor=assignor)
            answers[mid] = a
            done &= a.status is JoinStatus.OK and not a.rebalance
        if done and group.state is S.STABLE:
            return answers
    raise AssertionError("group did not settle")


def owners(group):
    return {tp: mid for mid, m in group.members.items() for tp in m.assignment}
