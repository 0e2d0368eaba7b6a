"""The Spark data source "rayka": PySpark 4 reads topics, in batches and as a stream.

Spark runs every method of a Python data source in a Python worker process it starts, not in
the driver: ``schema()`` and ``pushFilters()`` / ``partitions()`` in planner workers, ``read()``
in executor workers, the stream reader's offsets calls in a long-lived worker of the driver.
Each attaches to the same Ray cluster and rayka cluster as the driver: :func:`source_for`
makes a subclass of :class:`RaykaDataSource` that carries the driver's Ray address, rayka
cluster name, namespace and data dir (cloudpickle ships the class by value), and a worker
connects once (``rayka.connect(address=...)``, about 1-2 s for ``ray.init``) and keeps that
connection for every later task it runs (Spark reuses its Python workers).

One Spark input partition per :class:`~rayka.clients.topic_read.PartitionRange` (planned once,
at query planning; ``maxRecordsPerPartition`` splits large ones), read with ``read_range`` and
handed to Spark as Arrow record batches. Spark filters on the stored columns are pushed into
``read_range(filter=...)``; filters on ``partition`` choose the partitions to read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.streaming.datasource import ReadAllAvailable, ReadMaxRows, SupportsTriggerAvailableNow

from rayka.clients import spark_options as opts
from rayka.clients.topic_read import PartitionRange, plan_ranges, read_range, split_ranges
from rayka.errors import ConfigError

__all__ = ["RaykaDataSource", "source_for", "attach"]

_CONNECTION_OPTIONS = {"address": "address", "cluster": "cluster_name", "namespace": "namespace",
                       "datadir": "data_dir"}

_clusters: dict[tuple, object] = {}
_clusters_lock = threading.Lock()


def attach(connection: dict):
    """This process's connection to the rayka cluster ``connection`` describes (the keyword
    arguments of ``rayka.connect``; empty: its defaults and environment), made on first use
    and kept for every later task of this Spark worker."""
    from rayka.clients.connection import connect

    key = tuple(sorted(connection.items()))
    with _clusters_lock:
        cluster = _clusters.get(key)
        if cluster is None:
            cluster = _clusters[key] = connect(**connection)
        return cluster


@dataclass(frozen=True)
class _Settings:
    """Everything a reader needs, fixed when Spark asks for the schema (pickled to workers)."""

    topic: str
    connection: dict
    stored: pa.Schema  # the topic's stored columns that are read (the `columns` option applied)
    out: pa.Schema  # the batches Spark wants: Spark's own Arrow form of the source's schema
    options: dict = field(default_factory=dict)

    @property
    def cluster(self):
        return attach(self.connection)


class _RangePartition(InputPartition):
    def __init__(self, rng: PartitionRange):
        super().__init__(None)
        self.rng = rng


def _stored_columns(schema: pa.Schema) -> list[str]:
    return [n for n in schema.names if n != opts.PARTITION_COLUMN]


def _read(settings: _Settings, rng: PartitionRange | None, flt):
    """The Arrow batches of one range, in the types Spark expects (it checks them exactly)."""
    if rng is None:  # Spark's stand-in partition of a read with no ranges
        return
    names = _stored_columns(settings.stored)
    for batch in read_range(rng, columns=names, filter=flt, cluster=settings.cluster):
        arrays = dict(zip(names, batch.columns))
        arrays[opts.PARTITION_COLUMN] = pa.array(np.full(batch.num_rows, rng.partition, np.int32))
        cols = [a if a.type == f.type else a.cast(f.type) for f, a in ((f, arrays[f.name]) for f in settings.out)]
        yield pa.RecordBatch.from_arrays(cols, schema=settings.out)


def _plan(settings: _Settings, keep_partition) -> list[PartitionRange]:
    """The ranges of a batch read: the offsets and times asked for, the partitions kept."""
    o = settings.options
    cluster = settings.cluster
    start = _bound(settings, o.get("startingTimestamp"), o.get("startingOffsets"), "starting", cluster)
    end = _bound(settings, o.get("endingTimestamp"), o.get("endingOffsets"), "ending", cluster)
    ranges = [r for r in plan_ranges(settings.topic, start, end, cluster=cluster) if keep_partition(r.partition)]
    most = opts.parse_positive_int(o.get("maxRecordsPerPartition"), "maxRecordsPerPartition")
    return split_ranges(ranges, most) if most else [r for r in ranges if r.records]


def _bound(settings: _Settings, timestamp, offsets, which: str, cluster):
    """A plan_ranges bound from the timestamp option (which wins, as in Kafka's source) or the
    offsets option."""
    when = opts.parse_timestamp(timestamp, f"{which}Timestamp")
    if when is not None:
        return when
    spec = opts.parse_offsets(offsets, settings.topic, f"{which}Offsets")
    if spec is None or spec == ("earliest" if which == "starting" else "latest"):
        return None
    full = None
    if spec in ("earliest", "latest") or any(v in (opts.EARLIEST, opts.LATEST) for v in spec.values()):
        full = {r.partition: r for r in plan_ranges(settings.topic, cluster=cluster)}
    if spec == "latest":
        return {p: r.end for p, r in full.items()}
    if spec == "earliest":
        return {p: r.start for p, r in full.items()}
    out = {}
    for p, v in spec.items():
        if v == opts.EARLIEST:
            out[p] = full[p].start if p in full else None
        elif v == opts.LATEST:
            out[p] = full[p].end if p in full else None
        else:
            out[p] = v
    return {p: v for p, v in out.items() if v is not None}


class RaykaBatchReader(DataSourceReader):
    """A bounded read: one input partition per partition range, filters pushed to the read."""

    def __init__(self, settings: _Settings):
        self.settings = settings
        self.pushed: list = []  # pyarrow expressions on stored columns
        self.partition_filters: list = []  # pyarrow expressions on `partition`

    def pushFilters(self, filters):
        """Keep the filters rayka can apply (comparisons, IN, null checks, string prefixes on
        top-level columns); return the others to Spark."""
        stored = pa.schema([self.settings.stored.field(n) for n in _stored_columns(self.settings.stored)])
        on_partition = pa.schema([pa.field(opts.PARTITION_COLUMN, pa.int32())])
        left = []
        for f in filters:
            expr = opts.checked_expression(f, on_partition)
            if expr is not None:
                self.partition_filters.append(expr)
                continue
            expr = opts.checked_expression(f, stored)
            if expr is None:
                left.append(f)
            else:
                self.pushed.append(expr)
        return left

    def _keep_partition(self):
        if not self.partition_filters:
            return lambda p: True
        meta, handles = self.settings.cluster.topic(self.settings.topic)
        table = pa.table({opts.PARTITION_COLUMN: pa.array(range(len(handles)), pa.int32())})
        kept = set(table.filter(_all(self.partition_filters)).column(0).to_pylist())
        return kept.__contains__

    def partitions(self):
        return [_RangePartition(r) for r in _plan(self.settings, self._keep_partition())]

    def read(self, partition):
        flt = _all(self.pushed) if self.pushed else None
        return _read(self.settings, getattr(partition, "rng", None), flt)


def _all(expressions: list):
    out = expressions[0]
    for e in expressions[1:]:
        out = out & e
    return out


class RaykaStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Micro-batches: offsets ``{"<partition>": next offset}`` kept by Spark in its checkpoint,
    so a query restarted from that checkpoint goes on where its last committed batch ended."""

    def __init__(self, settings: _Settings):
        self.settings = settings
        self.target: dict[int, int] | None = None  # Trigger.AvailableNow: the end offsets when it began

    def _ends(self) -> dict[int, int]:
        ranges = plan_ranges(self.settings.topic, cluster=self.settings.cluster)
        return {r.partition: r.end for r in ranges}

    def initialOffset(self) -> dict:
        o = self.settings.options
        start = _bound(self.settings, o.get("startingTimestamp"), o.get("startingOffsets", "latest"),
                       "starting", self.settings.cluster)
        ranges = plan_ranges(self.settings.topic, start, cluster=self.settings.cluster)
        return opts.offsets_to_json({r.partition: r.start for r in ranges})

    def prepareForTriggerAvailableNow(self) -> None:
        self.target = self._ends()

    def getDefaultReadLimit(self):
        most = opts.parse_positive_int(self.settings.options.get("maxOffsetsPerTrigger"), "maxOffsetsPerTrigger")
        return ReadMaxRows(most) if most else ReadAllAvailable()

    def latestOffset(self, start: dict, limit) -> dict:
        begin = opts.offsets_from_json(start)
        ends = self.target if self.target is not None else self._ends()
        # a partition added since the query began is read from its first offset
        ends = {p: max(e, begin.get(p, 0)) for p, e in ends.items()}
        most = limit.max_rows if isinstance(limit, ReadMaxRows) else None
        return opts.offsets_to_json(opts.cap_offsets(begin, ends, most))

    def reportLatestOffset(self):
        return opts.offsets_to_json(self._ends())

    def partitions(self, start: dict, end: dict):
        begin, finish = opts.offsets_from_json(start), opts.offsets_from_json(end)
        ranges = [PartitionRange(self.settings.topic, p, begin.get(p, 0), e) for p, e in sorted(finish.items())]
        most = opts.parse_positive_int(self.settings.options.get("maxRecordsPerPartition"), "maxRecordsPerPartition")
        ranges = split_ranges(ranges, most) if most else [r for r in ranges if r.records]
        return [_RangePartition(r) for r in ranges]

    def read(self, partition):
        return _read(self.settings, getattr(partition, "rng", None), None)

    def commit(self, end: dict) -> None:
        """Nothing to do: Spark's checkpoint is where the offsets are kept."""


class RaykaDataSource(DataSource):
    """``spark.read.format("rayka").option("topic", "clicks").load()`` and ``readStream``.

    The connection comes from the options ``address``, ``cluster``, ``namespace`` and
    ``dataDir`` (as ``rayka.connect`` takes them), else from what :func:`source_for` captured
    on the driver, else from rayka's defaults and environment in each worker.
    """

    defaults: dict = {}  # set on the subclass source_for makes

    @classmethod
    def name(cls) -> str:
        return "rayka"

    def _settings(self) -> _Settings:
        if getattr(self, "_made", None) is None:
            options = _options_by_name(dict(self.options.items()))
            topic = options.get("topic") or options.get("path")
            if not topic:
                raise ConfigError('the rayka source needs the topic: .option("topic", "clicks") or .load("clicks")')
            connection = dict(self.defaults)
            for option, kwarg in _CONNECTION_OPTIONS.items():
                if self.options.get(option):
                    connection[kwarg] = self.options[option]
            from rayka.partitions.records import log_schema

            meta, _ = attach(connection).topic(topic, refresh=True)
            full = log_schema(meta.value_schema)
            full = pa.schema([pa.field(opts.PARTITION_COLUMN, pa.int32(), nullable=False)] + list(full))
            wanted = opts.parse_columns(self.options.get("columns"), full.names)
            stored = full if wanted is None else pa.schema([full.field(n) for n in wanted])
            try:
                spark_schema = from_arrow_schema(opts.spark_ready(stored))
            except Exception as exc:  # noqa: BLE001 - PySpark's own error for a type it lacks
                raise ConfigError(f"topic {topic!r} has a column type Spark cannot take ({exc}); leave that "
                                  "column out with .option('columns', ...)") from None
            out = to_arrow_schema(spark_schema, timezone="UTC")
            self._made = _Settings(topic, connection, stored, out, options)
        return self._made

    def schema(self):
        return from_arrow_schema(opts.spark_ready(self._settings().stored))

    def reader(self, schema):
        return RaykaBatchReader(self._settings())

    def streamReader(self, schema):
        return RaykaStreamReader(self._settings())


_KNOWN = ("topic", "path", "startingOffsets", "endingOffsets", "startingTimestamp", "endingTimestamp",
          "maxRecordsPerPartition", "maxOffsetsPerTrigger", "columns", "address", "cluster", "namespace",
          "dataDir")


def _options_by_name(options: dict) -> dict:
    """The options under their documented spelling (Spark lower-cases them) and unknown ones refused."""
    lower = {k.lower(): k for k in _KNOWN}
    out = {}
    for key, value in options.items():
        name = lower.get(key.lower())
        if name is None:
            raise ConfigError(f"the rayka source has no option {key!r}; its options are {list(_KNOWN)}")
        out[name] = value
    return out


def source_for(cluster=None) -> type[RaykaDataSource]:
    """A :class:`RaykaDataSource` subclass whose workers attach to ``cluster`` (default: the
    current connection; nothing captured if there is none and ``cluster`` is None)."""
    import ray

    connection = {}
    if cluster is None:
        from rayka.clients import connection as conn

        cluster = conn._current
    if cluster is not None and ray.is_initialized():
        connection = {"address": ray.get_runtime_context().gcs_address, "cluster_name": cluster.cluster_name,
                      "namespace": cluster.namespace, "data_dir": cluster.data_dir}
    return type("RaykaDataSource", (RaykaDataSource,), {"defaults": connection, "__module__": __name__,
                                                          "__qualname__": "source_for.<locals>.RaykaDataSource"})
