"""Where a follower's log parts from its leader's: KIP-101/KIP-279 truncation by leader epoch.

A replica that becomes a follower may hold a tail its new leader never had (it led
an older epoch and wrote records no one copied, or it copied them from a leader that
lost them). Truncating to the high watermark is not enough and not safe (KIP-101's
two scenarios: the HW a follower knows lags the leader's, so it may cut committed
records, and two logs can hold different records below it after back-to-back
failovers). Instead the follower asks the leader where its latest epoch ends::

    follower: my latest epoch is E                 (OffsetsForLeaderEpoch(E))
    leader:   (E', end) = cache.end_offset_for(E)  E' <= E, the largest it knows
    follower: E' is mine too   -> truncate to min(end, my end of E', my log end); done
              E' is not mine   -> truncate to where my largest epoch below E' ends,
                                  and ask again with my new latest epoch (KIP-279)

Because every record of an epoch is written by that epoch's one leader, two logs
that hold the same epoch at an offset hold the same records up to it, so this ends
at exactly the first offset where the logs differ.

The same check runs inside fetches (Kafka 2.7+, from KIP-595: the "diverging epoch"): a follower's
fetch carries ``fetch_offset`` (its log end) and ``last_fetched_epoch`` (its cache's
latest epoch); the leader answers :func:`diverging_epoch` instead of records when they
do not match, and the follower feeds that answer to :func:`truncation_for` and
fetches again. :func:`resolve_truncation` runs the request loop with a callable to
ask the leader. The follower then cuts its log and its epoch cache to the offset
(``cache.truncate_from_end(offset)``, also when it equals the log end).

A follower with no epochs at all (a new replica, a cache moved aside) keeps nothing
unverified: it truncates to its log start and copies everything again. A leader answer
with no epoch (UNDEFINED) while the follower has one means the leader is older than
the follower's log (a deposed leader): FencedLeaderEpochError, nothing is cut.

Pure functions of the caches and offsets; nothing here changes a cache or a log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..errors import FencedLeaderEpochError, OffsetOutOfRangeError
from .epoch_cache import UNDEFINED_EPOCH, EpochCache, EpochEndOffset

__all__ = ["Truncation", "truncation_for", "resolve_truncation", "diverging_epoch", "out_of_range_reset",
           "MAX_ROUNDS"]

#: Bound of the KIP-279 request loop: each round drops at least one epoch of the follower's.
MAX_ROUNDS = 10_000


@dataclass(frozen=True, slots=True)
class Truncation:
    """Cut the log (and the epoch cache) back to ``offset``; if not ``done``, ask the leader
    again with the latest epoch left (KIP-279)."""

    offset: int
    done: bool


def truncation_for(cache: EpochCache, log_start: int, log_end: int, leader: EpochEndOffset) -> Truncation:
    """One KIP-279 step: the follower with ``cache`` and log ``[log_start, log_end)`` got
    ``leader`` in answer to its latest epoch (cache.latest_epoch), or as the diverging epoch
    of a fetch. See the module docstring. A follower whose cache is empty gets its log start
    without asking (call it with UNDEFINED before its first fetch: that fetch is not checked)."""
    if cache.latest_epoch == UNDEFINED_EPOCH:
        return Truncation(log_start, True)
    if leader.undefined or leader.epoch == UNDEFINED_EPOCH:
        raise FencedLeaderEpochError(
            f"the leader knows no leader epoch <= {cache.latest_epoch}, the latest of this replica's "
            "log: it is older than this replica (a deposed leader). Nothing was truncated; refresh "
            "the partition's state from the coordinator")
    mine = cache.end_offset_for(leader.epoch, log_end)
    if mine.undefined:
        # The follower keeps no epoch <= the leader's (its older ones went by retention): the
        # leader's end of that epoch is the most it can trust (Kafka does the same).
        return Truncation(max(log_start, min(leader.end_offset, log_end)), True)
    if mine.epoch != leader.epoch:
        return Truncation(max(log_start, min(mine.end_offset, log_end)), False)
    return Truncation(max(log_start, min(mine.end_offset, leader.end_offset, log_end)), True)


def resolve_truncation(cache: EpochCache, log_start: int, log_end: int,
                       ask_leader: Callable[[int], EpochEndOffset], max_rounds: int = MAX_ROUNDS) -> int:
    """The offset to truncate to, asking ``ask_leader(epoch)`` (the leader's
    ``cache.end_offset_for(epoch, leader_log_end)``) as often as KIP-279 needs. Works on a
    copy: ``cache`` is not changed."""
    scratch = cache.copy()
    end = log_end
    for _ in range(max_rounds):
        if scratch.latest_epoch == UNDEFINED_EPOCH:
            return log_start
        step = truncation_for(scratch, log_start, end, ask_leader(scratch.latest_epoch))
        end = min(end, step.offset)
        scratch.truncate_from_end(end)
        if step.done:
            return end
    raise RuntimeError(f"leader epoch truncation did not settle in {max_rounds} rounds")  # an invariant broke


def diverging_epoch(cache: EpochCache, log_end: int, fetch_offset: int,
                    last_fetched_epoch: int) -> EpochEndOffset | None:
    """The leader's check of a follower fetch: None if the follower's log matches up to
    ``fetch_offset`` (fetch records from there), else the (epoch, end offset) answer the
    follower truncates by (Kafka's ``divergingEpoch``). ``last_fetched_epoch`` -1: a follower
    with no epochs, not checked (it truncates to its log start on its own)."""
    if last_fetched_epoch == UNDEFINED_EPOCH:
        return None
    answer = cache.end_offset_for(last_fetched_epoch, log_end)
    if answer.undefined or answer.epoch < last_fetched_epoch or answer.end_offset < fetch_offset:
        return answer
    return None


def out_of_range_reset(follower_log_end: int, leader_log_start: int, leader_log_end: int) -> int:
    """The offset a follower fetches from after the leader refused its fetch offset as out of
    range (Kafka's ``handleOutOfRangeError``). Below the leader's log start (retention deleted
    those records there): the leader's log start, and the follower empties its log and epoch
    cache and starts its log there. A fetch past the leader's end never happens once
    truncation by epoch has run, so it is refused."""
    if follower_log_end > leader_log_end:
        raise OffsetOutOfRangeError(
            f"the follower's log end {follower_log_end} is past the leader's {leader_log_end}; truncate by "
            "leader epoch first", log_start_offset=leader_log_start, log_end_offset=leader_log_end)
    return max(follower_log_end, leader_log_start)
