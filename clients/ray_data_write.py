"""A Ray Data Dataset written to a topic: a Datasink whose write tasks send their blocks with
``Producer.send_table``, in parallel, and whose retries write nothing twice.

Why a retry writes no duplicate: the write gets one id, made on the driver; each piece of a
block a write task sends has a producer id derived from (write id, task index, block index,
piece index), and a fresh Producer under that id numbers its chunks 0, 1, 2... per
partition. A task Ray runs again (its worker died, its node went away) sends the same blocks
as the same pieces under the same ids and numbers, and each partition answers what it
already holds as a duplicate (partitions/producer_state.py) instead of appending it. A piece
is kept small enough that it never sends more chunks to one partition than a partition
remembers per producer (KEEP_BATCHES), so the oldest of a replay is still recognised.

This holds when a rerun task gets the same blocks in the same order: a deterministic
Dataset whose steps up to the write are fused into the write tasks (reads, map, map_batches,
filter: Ray Data's default). A shuffle (groupby, repartition, sort) before the write, or a
UDF that is not deterministic, gives a rerun other blocks, and then only the blocks that came
out the same are recognised.
"""

from __future__ import annotations

import uuid

import pyarrow as pa

from rayka.clients.bulk import MAX_CHUNK_BYTES
from rayka.clients.ray_data_read import ClusterRef
from rayka.errors import ConfigError
from rayka.partitions.producer_state import KEEP_BATCHES

__all__ = ["TopicDatasink", "write_topic", "piece_producer_id", "pieces", "to_records"]

#: Bytes of a block one producer id sends at most: fewer chunks to any one partition than a
#: partition remembers per producer (one chunk is at most MAX_CHUNK_BYTES).
PIECE_BYTES = (KEEP_BATCHES - 2) * MAX_CHUNK_BYTES


def piece_producer_id(write_id: str, task_index: int, block_index: int, piece_index: int) -> str:
    """The producer id of one piece of one block of one write task (the same on a rerun)."""
    return f"rayka-data.{write_id}.{task_index}.{block_index}.{piece_index}"


def pieces(table: pa.Table, max_bytes: int = PIECE_BYTES) -> list[pa.Table]:
    """``table`` cut in row slices of at most about ``max_bytes`` each (the same cut for the
    same table: it depends only on its rows and size)."""
    if table.num_rows == 0:
        return []
    rows = max(1, int(table.num_rows * max_bytes / max(table.nbytes, 1)))
    return [table.slice(lo, rows) for lo in range(0, table.num_rows, rows)]


def to_records(table: pa.Table, key_column: str | None, value_names) -> pa.Table:
    """A block as the table send_table takes: without ``offset`` (the log assigns offsets; a
    Dataset read from a topic carries them), ``key_column`` as the binary ``key`` (replacing a
    ``key`` column the Dataset had).
    ``value_names``: the topic's value columns (None for a topic of binary ``value``)."""
    if "offset" in table.column_names:
        table = table.drop_columns(["offset"])
    if key_column is None:
        return table
    if key_column not in table.column_names:
        raise ConfigError(f"key_column={key_column!r} is not a column of the Dataset; its columns are "
                          f"{table.column_names}")
    col = table.column(key_column)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        col = col.cast(pa.binary())
    elif pa.types.is_integer(col.type):
        col = col.cast(pa.string()).cast(pa.binary())  # a number's decimal text, as a key
    elif not (pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type)):
        raise ConfigError(f"key_column={key_column!r} holds {col.type}; keys are bytes, strings or integers: "
                          "convert it first (Dataset.map_batches)")
    if key_column == "key":
        return table.set_column(table.column_names.index("key"), "key", col)
    if "key" in table.column_names:
        table = table.drop_columns(["key"])  # key_column replaces it (a Dataset read from a topic has one)
    keep = key_column in (value_names or ("value",))
    if not keep:
        table = table.drop_columns([key_column])
    return table.append_column("key", col)


def _make_datasink_class():
    from ray.data.block import BlockAccessor
    from ray.data.datasource import Datasink

    class TopicDatasink(Datasink):
        """Writes a Dataset to ``topic`` (see the module docs); ``write_id`` names the write
        (random when None; give the same one to make a rerun of the whole write a no-op, as
        stream_topic's micro-batches do). ``written`` holds the records written once done."""

        def __init__(self, topic: str, *, cluster_ref: ClusterRef, key_column: str | None = None,
                     write_id: str | None = None, producer_options: dict | None = None):
            self.topic = topic
            self.cluster_ref = cluster_ref
            self.key_column = key_column
            self.write_id = write_id or uuid.uuid4().hex
            self.producer_options = dict(producer_options or {})
            self.written = 0

        def get_name(self) -> str:
            return f"RaykaTopic({self.topic})"

        def after_block(self, ctx, block_index: int) -> None:
            """Called in the write task after a block was sent and acknowledged (a hook for
            tests to fail a task at that point)."""

        def write(self, blocks, ctx) -> int:
            from rayka.clients.producer import Producer

            cluster = self.cluster_ref.resolve()
            meta, _ = cluster.topic(self.topic)
            value_names = None if meta.value_schema is None else meta.value_schema.names
            sent = 0
            for b, block in enumerate(blocks):
                table = to_records(BlockAccessor.for_block(block).to_arrow(), self.key_column, value_names)
                for i, piece in enumerate(pieces(table)):
                    pid = piece_producer_id(self.write_id, ctx.task_idx, b, i)
                    with Producer(cluster=cluster, producer_id=pid, **self.producer_options) as producer:
                        producer.send_table(self.topic, piece).result()
                    sent += piece.num_rows
                self.after_block(ctx, b)
            return sent

        def on_write_complete(self, write_result) -> None:
            self.written = sum(write_result.write_returns)

    return TopicDatasink


_DATASINK = None


def __getattr__(name: str):
    # Made on first use, so importing this module does not import Ray Data.
    global _DATASINK
    if name == "TopicDatasink":
        if _DATASINK is None:
            _DATASINK = _make_datasink_class()
            _DATASINK.__module__ = __name__
            _DATASINK.__qualname__ = "TopicDatasink"
        return _DATASINK
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def write_topic(dataset, topic: str, key_column: str | None = None, *, cluster=None, write_id: str | None = None,
                concurrency: int | None = None, **producer_options) -> int:
    """Write every row of ``dataset`` to ``topic``; returns how many records were written.

    Columns as ``Producer.send_table`` takes them: ``value`` (binary) or the typed topic's
    columns, and optionally ``timestamp_ms``, ``headers``, ``partition``; ``key_column`` (bytes,
    strings or integers) becomes each record's key (so its partition, as ``send`` would pick
    it; the column stays when it is also a value column). An ``offset`` column (a Dataset
    read from a topic) is dropped. The write tasks run in parallel, each with its own
    producers; a task Ray retries writes nothing twice (module docs). ``producer_options``
    (``acks="all"`` ...) go to those producers. No order holds across write tasks.
    """
    from rayka.clients.connection import current

    cluster = cluster or current()
    if not isinstance(topic, str) or not topic:
        raise ConfigError(f"topic must be a topic name, not {topic!r}")
    cluster.topic(topic)  # an unknown topic fails here, before any task runs
    sink = __getattr__("TopicDatasink")(topic, cluster_ref=ClusterRef.of(cluster), key_column=key_column,
                                        write_id=write_id, producer_options=producer_options)
    dataset.write_datasink(sink, concurrency=concurrency)
    return sink.written
