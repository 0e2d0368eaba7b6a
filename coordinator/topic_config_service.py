"""TopicConfigService: topic config changes pushed to the partitions, and the partition budget.

Topic config changes are validated and persisted by
:meth:`rayka.coordinator.metadata.ClusterMetadata.alter_config`, then pushed to the
running partition actors with the topic's new ``config_version``. A partition that
cannot be reached (restarting, its node gone) stays pending and is sent the config
again by :meth:`TopicConfigService.sync_pending`, which the coordinator actor calls
every ``CONFIG_SYNC_S`` until it answers; a partition applies a version only if it is
newer than its own, so late or repeated deliveries are harmless. After a coordinator
start every topic with a changed config is pushed once, for the same reason.

The partition budget (rayka.coordinator.budget) is kept in the metadata's settings
and checked, with the alive nodes' Ray ``memory``, before partitions are created.

Plain logic: the partition handles, the push to them and the node memory are given
as callables (the actor's use Ray; tests give fakes).
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Protocol

from ..config import PartitionBudget
from ..messages import BudgetInfo, TopicConfigInfo
from .budget import partition_limit
from .metadata import ClusterMetadata, TopicMetadata

__all__ = ["TopicConfigService", "ConfigPush", "CONFIG_SYNC_S", "CONFIG_PUSH_TIMEOUT_S"]

log = logging.getLogger(__name__)

CONFIG_SYNC_S = 1.0  # how often unreached partitions are sent their config again
CONFIG_PUSH_TIMEOUT_S = 10.0  # how long alter_topic_config waits for the partitions


class ConfigPush(Protocol):
    def __call__(self, handles: list, config: dict, version: int, timeout_s: float) -> list[int]:
        """Send ``config`` at ``version`` to every partition; the partition numbers that did not
        confirm it within ``timeout_s``."""


class TopicConfigService:
    """alter/describe_topic_config and set_partition_budget/partition_budget of the coordinator.

    ``lock`` guards ``meta`` and the partition handles (the actor's topic lock);
    ``handles_of(meta)`` gives a topic's partition handles; ``node_memory()`` the alive
    nodes' Ray ``memory`` by node id.
    """

    def __init__(self, meta: ClusterMetadata, lock, handles_of: Callable[[TopicMetadata], list],
                 push: ConfigPush, node_memory: Callable[[], dict[str, float]]):
        self._meta, self._lock, self._handles_of = meta, lock, handles_of
        self._push, self._node_memory = push, node_memory
        self._pending: dict[str, int] = {}  # topic -> config_version not yet everywhere
        self._pending_lock = threading.Lock()
        for name in meta.topics():
            version = meta.get(name).config_version
            if version > 0:
                self._pending[name] = version

    @property
    def pending(self) -> dict[str, int]:
        """Topic -> the config version some of its partitions have not confirmed yet."""
        with self._pending_lock:
            return dict(self._pending)

    # -- topic config ---------------------------------------------------------------------------

    def alter_topic_config(self, name: str, changes: dict) -> TopicConfigInfo:
        """Change topic config keys (None resets one to its default) and apply them to the
        running partitions. Its ``pending`` lists partitions not reached yet (they get the
        config when they answer again)."""
        with self._lock:
            meta = self._meta.alter_config(name, changes)
            handles = self._handles_of(meta)
            config, version = dict(meta.config), meta.config_version
        pending = self._push(handles, config, version, CONFIG_PUSH_TIMEOUT_S)
        if pending:
            with self._pending_lock:
                self._pending[name] = max(version, self._pending.get(name, 0))
            log.warning("topic %s: config version %d not applied yet by partition(s) %s; retrying", name,
                        version, pending)
        return TopicConfigInfo(tuple(config.items()), version, tuple(pending))

    def describe_topic_config(self, name: str) -> TopicConfigInfo:
        """A topic's config and version as stored in the metadata."""
        meta = self._meta.get(name)
        return TopicConfigInfo(tuple(dict(meta.config).items()), meta.config_version)

    def sync_pending(self) -> None:
        """Send each pending topic's config again; forget those confirmed everywhere or deleted."""
        for name, version in self.pending.items():
            try:
                with self._lock:
                    meta = self._meta.get(name)
                    handles = self._handles_of(meta)
                    config, current = dict(meta.config), meta.config_version
                missing = self._push(handles, config, current, CONFIG_SYNC_S * 2)
            except Exception:  # topic deleted meanwhile, or Ray trouble: drop or retry below
                missing = None if name not in self._meta.topics() else [-1]
            with self._pending_lock:
                if not missing and self._pending.get(name) == version:
                    del self._pending[name]

    # -- partition budget -----------------------------------------------------------------------

    def budget(self) -> PartitionBudget:
        """The budget in force: the stored keys over the environment's."""
        stored = self._meta.settings().get("partition_budget")
        return PartitionBudget.from_dict(stored, base=PartitionBudget.from_env())

    def set_partition_budget(self, changes: dict) -> BudgetInfo:
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

    def partition_budget(self) -> BudgetInfo:
        """The budget in force, the node memory it is computed from, the limit and the
        partitions that exist (``limit`` None: no limit)."""
        budget = self.budget()
        memory = tuple(self._node_memory().values())
        total = sum(self._meta.get(name).partitions for name in self._meta.topics())
        return BudgetInfo(budget.partition_memory_bytes, budget.memory_fraction, budget.max_partitions, memory,
                          partition_limit(budget, memory), total)
