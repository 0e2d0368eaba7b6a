"""The coordinator's topic-config and partition-budget methods (a mixin of CoordinatorActor).

Topic config changes are validated and persisted by
:meth:`rayka.coordinator.metadata.ClusterMetadata.alter_config`, then pushed to the
running partition actors with the topic's new ``config_version``. A partition that
cannot be reached (restarting, its node gone) stays pending and is sent the config
again by a background loop until it answers; a partition applies a version only if it
is newer than its own, so late or repeated deliveries are harmless. After a coordinator
start every topic with a changed config is pushed once, for the same reason.

The partition budget (rayka.coordinator.budget) is checked before partitions are
created, with the alive Ray nodes' ``memory`` resource gathered here.
"""

from __future__ import annotations

import logging
import threading

import ray

from rayka.config import PartitionBudget
from rayka.coordinator.budget import partition_limit

__all__ = ["TopicConfigApi"]

log = logging.getLogger(__name__)

CONFIG_SYNC_S = 1.0  # how often unreached partitions are sent their config again
CONFIG_PUSH_TIMEOUT_S = 10.0  # how long alter_topic_config waits for the partitions


class TopicConfigApi:
    """Needs ``self._meta``, ``self._lock``, ``self._stop`` and ``self._ensure_partitions``."""

    def _start_config_sync(self) -> None:
        self._pending_configs: dict[str, int] = {}  # topic -> config_version not yet everywhere
        self._pending_lock = threading.Lock()
        for name in self._meta.topics():
            meta = self._meta.get(name)
            if meta.config_version > 0:
                self._pending_configs[name] = meta.config_version
        threading.Thread(target=self._config_sync_loop, name="rayka-config-sync", daemon=True).start()

    # -- topic config ---------------------------------------------------------------------------

    def alter_topic_config(self, name: str, changes: dict) -> dict:
        """Change topic config keys (None resets one to its default) and apply them to the
        running partitions. Returns ``{"config", "version", "pending"}``; ``pending`` lists
        partitions not reached yet (they get the config when they answer again)."""
        with self._lock:
            meta = self._meta.alter_config(name, changes)
            handles = self._ensure_partitions(meta)
            config, version = dict(meta.config), meta.config_version
        pending = self._push_config(handles, config, version, CONFIG_PUSH_TIMEOUT_S)
        if pending:
            with self._pending_lock:
                self._pending_configs[name] = max(version, self._pending_configs.get(name, 0))
            log.warning("topic %s: config version %d not applied yet by partition(s) %s; retrying", name,
                        version, pending)
        return {"config": config, "version": version, "pending": pending}

    def describe_topic_config(self, name: str) -> dict:
        """``{"config", "version"}`` of a topic as stored in the metadata."""
        meta = self._meta.get(name)
        return {"config": dict(meta.config), "version": meta.config_version}

    @staticmethod
    def _push_config(handles: list, config: dict, version: int, timeout_s: float) -> list[int]:
        """Send the config to every partition; the partition numbers that did not confirm it."""
        refs = {h.update_config.remote(config, version): p for p, h in enumerate(handles)}
        ready, _ = ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        confirmed = set()
        for ref in ready:
            try:
                if ray.get(ref) >= version:
                    confirmed.add(refs[ref])
            except Exception:  # died or restarting: it stays pending
                pass
        return sorted(set(refs.values()) - confirmed)

    def _config_sync_loop(self) -> None:
        while not self._stop.wait(CONFIG_SYNC_S):
            with self._pending_lock:
                todo = dict(self._pending_configs)
            for name, version in todo.items():
                try:
                    with self._lock:
                        meta = self._meta.get(name)
                        handles = self._ensure_partitions(meta)
                        config, current = dict(meta.config), meta.config_version
                    missing = self._push_config(handles, config, current, CONFIG_SYNC_S * 2)
                except Exception:  # topic deleted meanwhile, or Ray trouble: drop or retry below
                    missing = None if name not in self._meta.topics() else [-1]
                with self._pending_lock:
                    if not missing and self._pending_configs.get(name) == version:
                        del self._pending_configs[name]

    # -- partition budget -----------------------------------------------------------------------

    def _budget(self) -> PartitionBudget:
        stored = self._meta.settings().get("partition_budget")
        return PartitionBudget.from_dict(stored, base=PartitionBudget.from_env())

    def set_partition_budget(self, changes: dict) -> dict:
        """Change the cluster's partition budget (keys of :class:`rayka.config.PartitionBudget`;
        None resets a key); kept in the metadata. Returns :meth:`partition_budget`."""
        stored = dict(self._meta.settings().get("partition_budget", {}))
        for key, value in dict(changes).items():
            if value is None:
                stored.pop(key, None)
            else:
                stored[key] = value
        PartitionBudget.from_dict(stored, base=PartitionBudget.from_env())  # validate before storing
        self._meta.set_setting("partition_budget", stored or None)
        return self.partition_budget()

    def partition_budget(self) -> dict:
        """The budget in force: its keys, the node memory it is computed from, the limit and
        the partitions that exist (``limit`` None: no limit)."""
        budget = self._budget()
        memory = _node_memory_bytes()
        return {**budget.to_dict(), "node_memory_bytes": memory, "limit": partition_limit(budget, memory),
                "partitions": self._partition_total()}

    def _partition_total(self) -> int:
        return sum(self._meta.get(name).partitions for name in self._meta.topics())



def _node_memory_bytes() -> list[float]:
    """The Ray ``memory`` resource of each alive node (what Ray lets tasks and actors use)."""
    return list(_node_memory_by_id().values())


def _node_memory_by_id() -> dict[str, float]:
    """Alive node id -> its Ray ``memory`` resource."""
    return {n["NodeID"]: float(n.get("Resources", {}).get("memory", 0.0)) for n in ray.nodes() if n.get("Alive")}
