"""What the coordinator asks of its partition actors, with bounded waits: offsets, times, configs.

The coordinator's group and topic-config logic (rayka.coordinator.group_service,
rayka.coordinator.topic_config_service) is plain; these are the Ray calls it is
given. A partition that does not answer in time (dead, restarting, its node gone)
is reported, never waited on for ever.
"""

from __future__ import annotations

import logging
from typing import Callable

import ray

from rayka.errors import PartitionUnavailableError, UnknownTopicError

__all__ = ["PartitionCalls", "node_memory_by_id"]

log = logging.getLogger(__name__)

BOUNDS_TIMEOUT_S = 5.0  # a describe_group must answer even if a partition does not


class PartitionCalls:
    """Calls to the partition actors of the topics ``topic_handles(name)`` gives handles of
    (raising UnknownTopicError for a topic that does not exist)."""

    def __init__(self, topic_handles: Callable[[str], list]):
        self._topic_handles = topic_handles

    def bounds(self, tps) -> dict:
        """(topic, partition) -> (log_start, log_end), leaving out partitions that are gone or
        cannot answer (dead, or their node is gone): their lag is unknown, the others are shown."""
        refs = {}
        for t, p in tps:
            try:
                handles = self._topic_handles(t)
            except UnknownTopicError:  # deleted since: no end offset
                continue
            if p < len(handles):
                refs[(t, p)] = handles[p].offsets.remote()
        out = {}
        ready = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=BOUNDS_TIMEOUT_S)[0]) if refs else ()
        for tp, ref in refs.items():  # each on its own: an unreachable partition has no bounds
            try:
                if ref not in ready:
                    raise TimeoutError("no answer")
                out[tp] = tuple(ray.get(ref))
            except Exception as exc:  # noqa: BLE001 - dead, restarting or its node gone
                log.warning("describe_group: partition %s-%d did not answer (%s); its lag is unknown",
                            tp[0], tp[1], type(exc).__name__)
        return out

    def topic_bounds(self, topic: str) -> list:
        """(log_start, log_end) of every partition of ``topic``, or PartitionUnavailableError."""
        return _each(topic, [h.offsets.remote() for h in self._topic_handles(topic)])

    def topic_times(self, topic: str, timestamp_ms: int) -> list:
        """Each partition's first (offset, timestamp) at or after ``timestamp_ms`` (None: none)."""
        return _each(topic, [h.offset_for_time.remote(timestamp_ms) for h in self._topic_handles(topic)])

    @staticmethod
    def push_config(targets: list, config: dict, version: int, timeout_s: float) -> list[int]:
        """Send the config to every ``(partition, replica handle)`` of ``targets``; the partition
        numbers with a replica that did not confirm it."""
        refs = {h.update_config.remote(config, version): p for p, h in targets if h is not None}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        pending = {p for p, h in targets if h is None}  # a replica whose node is gone: not reached
        pending |= {p for ref, p in refs.items() if ref not in set(ready)}
        for ref in ready:
            try:
                if ray.get(ref) < version:
                    pending.add(refs[ref])
            except Exception:  # died or restarting: it stays pending
                pending.add(refs[ref])
        return sorted(pending)


def node_memory_by_id() -> dict[str, float]:
    """Alive node id -> its Ray ``memory`` resource (what Ray lets tasks and actors use)."""
    return {n["NodeID"]: float(n.get("Resources", {}).get("memory", 0.0)) for n in ray.nodes() if n.get("Alive")}


def _each(topic: str, refs: list) -> list:
    """The answers of every partition of ``topic``, or PartitionUnavailableError naming those
    that could not answer (nothing is reset then: a reset is all the topic's partitions or none)."""
    ready = set(ray.wait(refs, num_returns=len(refs), timeout=BOUNDS_TIMEOUT_S)[0]) if refs else set()
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
