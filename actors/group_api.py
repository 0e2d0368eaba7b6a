"""The consumer-group half of the coordinator actor: forwards to GroupCoordinator under a lock.

A mixin of :class:`rayka.actors.coordinator.CoordinatorActor`, kept apart so each file
stays one concern. Group logic lives in :mod:`rayka.coordinator`; here are only the
lock, the tick thread and the calls to partition actors that lag and resets need.
"""

from __future__ import annotations

import logging

import ray

from rayka.coordinator.group_coordinator import lag_partitions, lag_rows, reset_targets
from rayka.errors import PartitionUnavailableError, UnknownGroupError, UnknownTopicError

__all__ = ["GroupApi", "GROUP_TICK_S"]

log = logging.getLogger(__name__)

GROUP_TICK_S = 0.1
_BOUNDS_TIMEOUT_S = 5.0  # a describe_group must answer even if a partition does not


class GroupApi:
    """Group methods of the coordinator actor (needs ``_groups``, ``_glock``, ``_stop``, ``topic``)."""

    def _tick_loop(self) -> None:
        while not self._stop.wait(GROUP_TICK_S):
            try:
                with self._glock:
                    self._groups.tick()
            except Exception:  # keep ticking; a broken group must not stop the others
                log.exception("group tick failed")

    def _topics_changed(self, deleted: str | None = None) -> None:
        with self._glock:
            if deleted is not None:
                self._groups.topic_deleted(deleted)
            else:
                self._groups.topics_changed()

    def join_group(self, group_id, member_id, instance_id, topics, session_timeout_ms, rebalance_timeout_ms,
                   owned, assignor) -> dict:
        with self._glock:
            return self._groups.join(group_id, member_id, instance_id, topics, session_timeout_ms,
                                     rebalance_timeout_ms, owned, assignor)

    def heartbeat(self, group_id, member_id, generation) -> str:
        with self._glock:
            return self._groups.heartbeat(group_id, member_id, generation)

    def leave_group(self, group_id, member_id) -> None:
        with self._glock:
            self._groups.leave(group_id, member_id)

    def commit_offsets(self, group_id, member_id, generation, offsets) -> None:
        with self._glock:
            self._groups.commit(group_id, member_id, generation, offsets)

    def fetch_offsets(self, group_id, tps, with_metadata: bool = False) -> list:
        with self._glock:
            return self._groups.fetch(group_id, tps, with_metadata)

    def list_groups(self) -> list[dict]:
        with self._glock:
            return self._groups.list()

    def describe_group(self, group_id) -> dict:
        """Members and, per partition the group reads or committed, its log start/end offsets and lag."""
        with self._glock:
            info = self._groups.describe(group_id)
        _, partitions = lag_partitions(info)
        info["partitions"] = lag_rows(info, self._bounds(partitions))
        del info["committed"]
        return info

    def _bounds(self, tps) -> dict:
        """(topic, partition) -> (log_start, log_end), leaving out partitions that are gone or
        cannot answer (dead, or their node is gone): their lag is unknown, the others are shown."""
        refs = {}
        for t, p in tps:
            try:
                _, handles = self.topic(t)
            except UnknownTopicError:  # deleted since: no end offset
                continue
            if p < len(handles):
                refs[(t, p)] = handles[p].offsets.remote()
        out = {}
        ready = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=_BOUNDS_TIMEOUT_S)[0]) if refs else ()
        for tp, ref in refs.items():  # each on its own: an unreachable partition has no bounds
            try:
                if ref not in ready:
                    raise TimeoutError("no answer")
                out[tp] = tuple(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - dead, restarting or its node gone
                log.warning("describe_group: partition %s-%d did not answer (%s); its lag is unknown",
                            tp[0], tp[1], type(exc).__name__)
        return out

    def delete_group(self, group_id) -> None:
        with self._glock:
            self._groups.delete(group_id)

    def reset_offsets(self, group_id, to, topics=None) -> dict:
        """Set an inactive group's offsets to "earliest", "latest", an offset, or {"timestamp_ms": t}."""
        with self._glock:
            topics = sorted(topics or {t for (t, _) in self._groups.store.offsets(group_id)})
        if not topics:
            raise UnknownGroupError(f"group {group_id!r} has no committed offsets; name the topics to reset")
        targets = {}
        for name in topics:
            _, handles = self.topic(name)
            bounds = _each(name, [h.offsets.remote() for h in handles])
            times = None
            if isinstance(to, dict) and "timestamp_ms" in to:
                times = _each(name, [h.offset_for_time.remote(int(to["timestamp_ms"])) for h in handles])
            targets.update(reset_targets(to, name, bounds, times))
        with self._glock:
            self._groups.reset(group_id, targets)
        return targets



def _each(topic: str, refs: list) -> list:
    """The answers of every partition of ``topic``, or PartitionUnavailableError naming those
    that could not answer (nothing is reset then: a reset is all the topic's partitions or none)."""
    ready = set(ray.wait(refs, num_returns=len(refs), timeout=_BOUNDS_TIMEOUT_S)[0]) if refs else set()
    out, failed = [], []
    for p, ref in enumerate(refs):
        try:
            if ref not in ready:
                raise TimeoutError("no answer")
            out.append(ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - dead, restarting or its node gone
            failed.append(f"{topic}-{p} ({type(exc).__name__})")
    if failed:
        raise PartitionUnavailableError(
            f"reset_offsets: partition(s) {', '.join(failed)} cannot be reached, so their offsets cannot be "
            "looked up; nothing was reset. Try again when they are back")
    return out
