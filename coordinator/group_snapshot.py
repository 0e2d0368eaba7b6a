"""Group membership snapshots: what a restarted coordinator needs to keep a group's members.

Kafka keeps each group's members and assignment in ``__consumer_offsets``, so a
coordinator that fails over picks up where the old one stopped: members keep
their ids and generation, and heartbeats and commits go on with no rebalance.
rayka does the same: after every call that changes a group, its snapshot (a
JSON-able dict) goes to the offset store, and a coordinator that Ray restarted
restores it. Format (version 1)::

    {"v": 1, "gen": 7, "state": "Stable", "protocol": "cooperative-sticky",
     "members": [{"id": "consumer-3f2a...", "inst": null, "topics": ["clicks"],
                  "st": 10000, "rt": 300000,
                  "a": [["clicks", 0]], "ag": 7, "d": [["clicks", 0]], "dg": 7, "r": []}]}

``a``/``ag`` is the member's assignment and its generation, ``d``/``dg`` the one it
was last told, ``r`` what it is handing over. A restored member's session starts at the restore, so one that
died during the restart is evicted a session timeout later. What a snapshot
cannot hold (who has joined a rebalance in progress) is rebuilt by starting the
rebalance again.
"""

from __future__ import annotations

import logging

from .groups import Group, GroupState, Member

__all__ = ["snapshot", "restore"]

log = logging.getLogger(__name__)

VERSION = 1


def snapshot(group: Group) -> dict:
    """The group's membership as a JSON-able dict (no clock values: they mean nothing after a restart)."""
    return {
        "v": VERSION, "gen": group.generation, "state": group.state.value, "protocol": group.protocol,
        "members": [{"id": m.member_id, "inst": m.instance_id, "topics": sorted(m.topics),
                     "st": m.session_timeout_ms, "rt": m.rebalance_timeout_ms,
                     "a": [list(tp) for tp in m.assignment], "ag": m.assigned_generation,
                     "d": [list(tp) for tp in m.delivered_assignment], "dg": m.delivered_generation,
                     "r": [list(tp) for tp in m.revoking]}
                    for m in group.members.values()],
    }


def restore(group: Group, snap: dict) -> None:
    """Put the snapshot's members back into a new (empty) ``group``.

    Restoring recreates a state rather than moving between states, so it sets the state
    directly: Stable if the snapshot was a settled generation, else a rebalance starts
    (members are told to join again by their next heartbeat).
    """
    if snap.get("v") != VERSION:
        log.warning("group %s: snapshot version %r not understood; members must rejoin", group.group_id,
                    snap.get("v"))
        return
    assert not group.members, "restore into a group that already has members"
    now = group.clock()
    group.generation = max(group.generation, int(snap["gen"]))
    group.protocol = snap.get("protocol")
    for row in snap["members"]:
        group.members[row["id"]] = Member(
            member_id=row["id"], instance_id=row["inst"], topics=frozenset(row["topics"]),
            session_timeout_ms=int(row["st"]), rebalance_timeout_ms=int(row["rt"]), last_heartbeat_ms=now,
            owned=tuple(tuple(tp) for tp in row["d"]),
            assignment=[tuple(tp) for tp in row["a"]], assigned_generation=int(row["ag"]),
            delivered_generation=int(row["dg"]), delivered_assignment=[tuple(tp) for tp in row["d"]],
            revoking=[tuple(tp) for tp in row["r"]])
    if not group.members:
        return
    group.leader = min(group.members)
    group.state = GroupState.STABLE
    reason = _unsettled(group, snap)
    if reason is not None:
        group._prepare_rebalance(f"restored after a coordinator restart ({reason})")
    log.info("group %s: restored %d member(s) at generation %d", group.group_id, len(group.members),
             group.generation)


def _unsettled(group: Group, snap: dict) -> str | None:
    """Why the restored group needs a rebalance, or None if its generation is settled."""
    if snap["state"] != GroupState.STABLE.value:
        return f"it was {snap['state']}"
    wanted = {(t, p) for m in group.members.values() for t in m.topics for p in range(group.partitions.get(t, 0))}
    assigned = [tp for m in group.members.values() for tp in m.assignment]
    if set(assigned) != wanted or len(assigned) != len(wanted):
        return "its assignment does not cover its partitions"
    if any(m.assigned_generation != group.generation for m in group.members.values()):
        return "a member has no assignment in the current generation"
    return None
