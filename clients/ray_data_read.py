"""A topic as a Ray Data Dataset: a Datasource with one read task per partition range.

The ranges are fixed on the driver when the Dataset is made (``plan_ranges``, so a read sees
the records there were then, and reading it twice gives the same rows), cut to at most
``max_records_per_task`` offsets each (``split_ranges``), and each read task reads its range
with ``read_range`` (columns and filter go to the partition, only what they keep travels).

Where the blocks are made: Ray 2.60 gives a Datasource no per-task scheduling (the read
operator runs every ReadTask with the one ``ray_remote_args`` of the read, and the task's
input is the ReadTask object the driver put), so a read task cannot be sent to the node of
its partition's leader. What can be done is done: when every range's leader is on one node
(one machine, or a topic whose leaders sit together) the whole read is asked to run there
(a soft NodeAffinity: elsewhere when that node has no free CPU), see :func:`read_remote_args`;
otherwise Ray Data spreads the tasks and each pulls its range from the partition actor.
"""

from __future__ import annotations

import threading
import warnings
from typing import TYPE_CHECKING

import pyarrow as pa

from rayka.clients.topic_read import _check_columns, _check_filter, plan_ranges, read_range, split_ranges
from rayka.errors import ConfigError, CoordinatorUnavailableError

if TYPE_CHECKING:  # pragma: no cover
    from rayka.clients.topic_read import PartitionRange

__all__ = ["TopicDatasource", "read_topic", "read_remote_args", "worker_cluster", "ClusterRef",
           "DEFAULT_RECORDS_PER_TASK"]

#: Offsets one read task reads at most (a larger partition is read by several tasks at once).
DEFAULT_RECORDS_PER_TASK = 1_000_000

_clusters: dict[tuple[str, str], object] = {}
_clusters_lock = threading.Lock()


class ClusterRef:
    """What a Ray task needs to reach the driver's rayka cluster: its name and namespace (a
    Cluster itself holds locks and caches, and is not shipped)."""

    __slots__ = ("name", "namespace")

    def __init__(self, name: str, namespace: str):
        self.name, self.namespace = name, namespace

    @classmethod
    def of(cls, cluster) -> "ClusterRef":
        return cls(cluster.cluster_name, cluster.namespace)

    def __getstate__(self):
        return (self.name, self.namespace)

    def __setstate__(self, state):
        self.name, self.namespace = state

    def resolve(self):
        """The Cluster of this name in this process (connected once per process)."""
        return worker_cluster(self.name, self.namespace)


def worker_cluster(name: str, namespace: str):
    """A Cluster for the coordinator named ``name``, kept per process while that coordinator
    lives; never starts a coordinator (a task must not bring up a cluster that was shut down)."""
    from rayka.actors import _ray
    from rayka.clients import connection
    from rayka.clients.stubs import CoordinatorClient

    mine = connection._current
    if mine is not None and mine.cluster_name == name and mine.namespace == namespace:
        return mine
    # Looked up by name each time (one GCS call): a cluster shut down and started again under
    # the same name has a new coordinator, and the cached one's handles would all be dead.
    handle = _ray.get_actor(_ray.coordinator_name(name), namespace)
    if handle is None:
        raise CoordinatorUnavailableError(
            f"no rayka cluster {name!r} in Ray namespace {namespace!r} (was it shut down while the "
            "Dataset was read or written?); connect() to a running cluster and make the Dataset again")
    with _clusters_lock:
        found = _clusters.get((name, namespace))
        if found is None or found.coordinator.handle._actor_id != handle._actor_id:
            found = connection.Cluster(CoordinatorClient(handle), cluster_name=name, namespace=namespace,
                                       data_dir="", started_ray=False)
            _clusters[name, namespace] = found
        return found


def read_remote_args(ranges: list[PartitionRange]) -> dict:
    """Ray options for the read tasks of ``ranges``: run them on the node of the leaders when
    all the ranges have theirs on one node (soft, so a busy node does not stall the read);
    nothing (Ray Data's spreading) when they are on several nodes or one is not known."""
    nodes = {r.node_id for r in ranges}
    if len(nodes) != 1 or None in nodes:
        return {}
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # soft + spill_on_unavailable: there while it has a free CPU, elsewhere rather than queued.
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=nodes.pop(), soft=True,
                                                                  _spill_on_unavailable=True)}


def output_schema(cluster, topic: str, columns) -> pa.Schema:
    """The schema the read's rows have: the stored layout (offset, timestamp_ms, key, headers,
    then value or a typed topic's columns), cut to ``columns`` in their order."""
    from rayka.partitions.records import log_schema

    meta, _ = cluster.topic(topic)
    schema = log_schema(meta.value_schema)
    cols = _check_columns(schema, columns)
    return schema if cols is None else pa.schema([schema.field(c) for c in cols])


def _read_one(ref: ClusterRef, rng: PartitionRange, columns, flt, schema: pa.Schema):
    batches = list(read_range(rng, columns=columns, filter=flt, cluster=ref.resolve()))
    yield pa.Table.from_batches(batches, schema=schema) if batches else schema.empty_table()


def _row_bytes(schema: pa.Schema) -> int:
    width = 0
    for field in schema:
        width += field.type.byte_width if pa.types.is_primitive(field.type) else 32
    return max(width, 1)


def _make_datasource_class():
    from ray.data import Datasource, ReadTask
    from ray.data.block import BlockMetadata

    class TopicDatasource(Datasource):
        """The records of fixed ranges of a topic (see the module docs); made by
        :func:`read_topic`, or directly for a read of ranges planned elsewhere (stream_topic)."""

        def __init__(self, ranges: list[PartitionRange], schema: pa.Schema, *, cluster_ref: ClusterRef,
                     columns=None, filter=None):
            super().__init__()
            self.ranges = list(ranges)
            self.schema = schema
            self.cluster_ref = cluster_ref
            self.columns = None if columns is None else list(columns)
            self.filter = filter

        def get_name(self) -> str:
            topics = sorted({r.topic for r in self.ranges})
            return "RaykaTopic(" + ",".join(topics) + ")"

        def estimate_inmemory_data_size(self) -> int | None:
            return sum(r.records for r in self.ranges) * _row_bytes(self.schema)

        def get_read_tasks(self, parallelism: int, per_task_row_limit=None, data_context=None) -> list:
            tasks = []
            width = _row_bytes(self.schema)
            for rng in self.ranges:
                rows = rng.records if self.filter is None else None
                meta = BlockMetadata(num_rows=rows, size_bytes=rng.records * width, exec_stats=None,
                                     input_files=None)
                tasks.append(ReadTask(_bind(self.cluster_ref, rng, self.columns, self.filter, self.schema),
                                      meta, schema=self.schema, per_task_row_limit=per_task_row_limit))
            return tasks

    return TopicDatasource


def _bind(ref, rng, columns, flt, schema):
    # A closure over just these (not the datasource): each ReadTask ships only its own range.
    def read_fn():
        return _read_one(ref, rng, columns, flt, schema)

    read_fn.__name__ = f"read_{rng.topic}_{rng.partition}_{rng.start}"
    return read_fn


_DATASOURCE = None


def __getattr__(name: str):
    # TopicDatasource subclasses Ray Data's Datasource: made on first use, so importing this
    # module (and rayka.data) does not import Ray Data.
    global _DATASOURCE
    if name == "TopicDatasource":
        if _DATASOURCE is None:
            _DATASOURCE = _make_datasource_class()
            _DATASOURCE.__module__ = __name__
            _DATASOURCE.__qualname__ = "TopicDatasource"
        return _DATASOURCE
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_records_per_task(value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"max_records_per_task must be a whole number >= 1, not {value!r}")
    return value


def datasource_of_ranges(ranges: list[PartitionRange], *, cluster, columns=None, filter=None,
                         max_records_per_task: int = DEFAULT_RECORDS_PER_TASK):
    """The TopicDatasource reading exactly ``ranges`` (split to ``max_records_per_task``)."""
    check_records_per_task(max_records_per_task)
    _check_filter(filter)
    if not ranges:
        raise ConfigError("no partition ranges to read")
    schema = output_schema(cluster, ranges[0].topic, columns)
    cols = None if columns is None else list(schema.names)
    # Nothing to read still gets one (empty) read task: the Dataset then knows its schema.
    pieces = split_ranges(ranges, max_records_per_task) or ranges[:1]
    return __getattr__("TopicDatasource")(pieces, schema, cluster_ref=ClusterRef.of(cluster), columns=cols,
                                          filter=filter)


def dataset_of_ranges(ranges: list[PartitionRange], *, cluster, columns=None, filter=None,
                      max_records_per_task: int = DEFAULT_RECORDS_PER_TASK, ray_remote_args=None):
    """A Dataset reading exactly ``ranges`` (split to ``max_records_per_task``)."""
    import ray.data

    source = datasource_of_ranges(ranges, cluster=cluster, columns=columns, filter=filter,
                                  max_records_per_task=max_records_per_task)
    pieces = source.ranges
    args = dict(read_remote_args(pieces))
    args.update(ray_remote_args or {})
    # One block per read task: Ray Data would otherwise cut a small read into many empty blocks.
    if not args:
        return ray.data.read_datasource(source, override_num_blocks=max(len(pieces), 1))
    with warnings.catch_warnings():
        # ray_remote_args is deprecated in 2.60 for the named options, but a scheduling strategy
        # has no named option yet: it is the one way to place the read.
        warnings.simplefilter("ignore", DeprecationWarning)
        return ray.data.read_datasource(source, override_num_blocks=max(len(pieces), 1), ray_remote_args=args)


def topic_datasource(topic: str, start=None, end=None, columns=None, filter=None, *, cluster=None,
                     max_records_per_task: int = DEFAULT_RECORDS_PER_TASK):
    """The TopicDatasource :func:`read_topic` reads (its ``ranges``, ``schema`` and read tasks
    can be looked at before anything is read)."""
    from rayka.clients.connection import current

    cluster = cluster or current()
    check_records_per_task(max_records_per_task)
    _check_filter(filter)
    return datasource_of_ranges(plan_ranges(topic, start, end, cluster=cluster), cluster=cluster, columns=columns,
                                filter=filter, max_records_per_task=max_records_per_task)


def read_topic(topic: str, start=None, end=None, columns=None, filter=None, *, cluster=None,
               max_records_per_task: int = DEFAULT_RECORDS_PER_TASK, ray_remote_args: dict | None = None):
    """The records of ``topic`` between ``start`` and ``end`` as a ``ray.data.Dataset``.

    Bounds as :func:`rayka.clients.topic_read.plan_ranges` takes them (None, offsets, datetimes
    or ISO strings, or dicts per partition; end exclusive), fixed now: records written later are
    not in the Dataset. Columns: the stored layout (offset, timestamp_ms, key, headers, then
    ``value`` or the typed topic's columns), or just ``columns``; ``filter`` a
    ``pyarrow.compute`` expression. One read task per partition, or per ``max_records_per_task``
    offsets of one; the Dataset's schema and, without a filter, its row count are known before
    anything is read. Rows come in no particular order across partitions (Ray Data's).
    """
    from rayka.clients.connection import current

    cluster = cluster or current()
    check_records_per_task(max_records_per_task)
    _check_filter(filter)
    ranges = plan_ranges(topic, start, end, cluster=cluster)
    return dataset_of_ranges(ranges, cluster=cluster, columns=columns, filter=filter,
                             max_records_per_task=max_records_per_task, ray_remote_args=ray_remote_args)
