"""The pure parts of rayka.data: micro-batch shares and ids, the write's producer ids and
pieces, the block-to-records conversion, where the read runs, and the import guards."""

import subprocess
import sys

import pyarrow as pa
import pytest

from rayka.clients.ray_data_read import read_remote_args
from rayka.clients.ray_data_stream import allot, batch_id
from rayka.clients.ray_data_write import PIECE_BYTES, piece_producer_id, pieces, to_records
from rayka.clients.bulk import MAX_CHUNK_BYTES
from rayka.clients.topic_read import PartitionRange
from rayka.errors import CommitFailedError, ConfigError
from rayka.partitions.producer_state import KEEP_BATCHES


def test_a_micro_batch_shares_max_records_fairly_and_gives_what_a_short_partition_leaves():
    assert allot({0: 100, 1: 100, 2: 100, 3: 100}, 100) == {0: 25, 1: 25, 2: 25, 3: 25}
    assert allot({0: 5, 1: 100, 2: 0}, 60) == {0: 5, 1: 55, 2: 0}
    assert allot({0: 3, 1: 4}, 100) == {0: 3, 1: 4}
    got = allot({0: 10, 1: 10, 2: 10}, 7)
    assert sum(got.values()) == 7 and max(got.values()) - min(got.values()) <= 1


def test_a_micro_batch_id_depends_on_the_group_and_the_ranges_only():
    a = [PartitionRange("t", 0, 0, 10, "n1"), PartitionRange("t", 1, 5, 9, None)]
    b = [PartitionRange("t", 1, 5, 9, "n2"), PartitionRange("t", 0, 0, 10, None)]
    assert batch_id("g", a) == batch_id("g", b)  # order and leader nodes do not matter
    assert batch_id("g", a) != batch_id("h", a)
    assert batch_id("g", a) != batch_id("g", [PartitionRange("t", 0, 0, 11), a[1]])


def test_a_piece_never_sends_more_chunks_to_one_partition_than_a_partition_remembers():
    assert PIECE_BYTES // MAX_CHUNK_BYTES + 1 < KEEP_BATCHES
    table = pa.table({"v": pa.array([b"x" * 1000] * 1000)})
    cut = pieces(table, max_bytes=100_000)
    assert sum(p.num_rows for p in cut) == 1000 and all(p.nbytes <= 110_000 for p in cut)
    assert [p.num_rows for p in cut] == [p.num_rows for p in pieces(table, max_bytes=100_000)]  # the same cut
    assert pieces(table.slice(0, 0)) == []


def test_producer_ids_of_a_write_are_the_same_on_a_rerun_and_differ_per_piece():
    ids = {piece_producer_id("w", t, b, i) for t in range(3) for b in range(3) for i in range(3)}
    assert len(ids) == 27 and piece_producer_id("w", 1, 2, 0) == piece_producer_id("w", 1, 2, 0)
    assert piece_producer_id("w", 1, 2, 0) != piece_producer_id("x", 1, 2, 0)


def test_a_block_becomes_records_without_offsets_keyed_by_the_key_column():
    block = pa.table({"offset": [1, 2], "key": pa.array([None, None], pa.binary()), "n": [1, 2],
                      "user": ["a", "b"]})
    out = to_records(block, "user", ["n"])
    assert out.column_names == ["n", "key"] and out["key"].to_pylist() == [b"a", b"b"]
    assert to_records(block, "user", ["n", "user"]).column_names == ["n", "user", "key"]  # a value column stays
    assert to_records(block, "n", ["n", "user"])["key"].to_pylist() == [b"1", b"2"]
    assert to_records(block, None, ["n"]).column_names == ["key", "n", "user"]
    with pytest.raises(ConfigError, match="not a column"):
        to_records(block, "nope", ["n"])
    with pytest.raises(ConfigError, match="keys are bytes"):
        to_records(pa.table({"f": [1.5]}), "f", None)


def test_the_read_runs_on_the_leaders_node_when_all_ranges_share_one():
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    same = [PartitionRange("t", p, 0, 10, "ab" * 28) for p in range(4)]
    args = read_remote_args(same)
    strategy = args["scheduling_strategy"]
    assert isinstance(strategy, NodeAffinitySchedulingStrategy) and strategy.soft and strategy._spill_on_unavailable
    assert strategy.node_id == "ab" * 28
    assert read_remote_args(same[:2] + [PartitionRange("t", 2, 0, 10, "cd" * 28)]) == {}  # Ray Data spreads
    assert read_remote_args(same[:1] + [PartitionRange("t", 1, 0, 10, None)]) == {}


def test_ray_data_gives_a_read_no_per_task_scheduling_so_placement_is_per_read():
    # Why read_remote_args is per read: Ray 2.60's Read operator has no ray_remote_args_fn (it
    # is fixed to None), so a ReadTask cannot ask for its own node. If this fails, Ray grew one:
    # place each read task on its range's node instead.
    import dataclasses

    from ray.data._internal.logical.operators.read_operator import Read

    fields = {f.name: f for f in dataclasses.fields(Read)}
    assert fields["ray_remote_args_fn"].init is False and fields["ray_remote_args_fn"].default is None


def test_producer_id_must_be_a_string_and_needs_idempotence():
    from rayka.clients.producer import Producer

    with pytest.raises(ConfigError, match="producer_id"):
        Producer(producer_id=7)
    with pytest.raises(ConfigError, match="idempotent"):
        Producer(producer_id="w.1", idempotent=False)


def test_importing_rayka_data_does_not_import_ray_data_and_rayka_alone_imports_neither():
    code = ("import sys, rayka; assert 'rayka.data' not in sys.modules; import rayka.data; "
            "bad = [m for m in sys.modules if m == 'ray.data' or m.startswith('ray.data.')]; "
            "assert not bad, bad; rayka.data.read_topic; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr[-2000:]


def test_a_rerun_under_the_same_producer_id_writes_nothing_twice_and_another_id_does(tmp_path, monkeypatch):
    # What a retried write task does, without Ray: the same piece sent again by a new Producer
    # under the same producer_id (sequences from 0 again) is recognised by every partition.
    from producer_helpers import FakeCluster

    from rayka.clients import bulk
    from rayka.clients.producer import Producer

    monkeypatch.setattr(bulk, "MAX_CHUNK_BYTES", 4_000)  # several chunks per partition
    cluster = FakeCluster(tmp_path)
    try:
        parts = cluster.create_topic("t", partitions=4)
        table = pa.table({"value": pa.array([b"v%06d" % i for i in range(2_000)], pa.binary())})
        for pid in ("w.0.0.0", "w.0.0.0", "w.0.0.1"):
            with Producer(cluster=cluster, producer_id=pid) as producer:
                assert producer.producer_id == pid
                producer.send_table("t", table).result()
        stored = sorted(r["value"] for p in parts for r in p.records())
        assert stored == sorted(table["value"].to_pylist() * 2)  # the rerun added nothing; the other id did
    finally:
        cluster.close()


class _GroupStub:
    """The two calls TopicStream.commit makes of its group Consumer."""

    def __init__(self, owned, refuse=False):
        self.owned, self.refuse, self.commits = set(owned), refuse, []

    def assignment(self):
        return set(self.owned)

    def commit(self, offsets):
        if self.refuse:
            raise CommitFailedError("the group rebalanced")
        self.commits.append(dict(offsets))


def _stream_with(consumer, ranges):
    from rayka.clients.ray_data_stream import MicroBatch, TopicStream

    stream = TopicStream.__new__(TopicStream)  # only commit() is exercised: no group, no cluster
    stream._consumer, stream._pending = consumer, MicroBatch("b1", ranges, None, False)
    return stream


def test_a_micro_batch_commit_after_a_rebalance_names_only_the_partitions_still_owned():
    from rayka.clients.types import TopicPartition

    ranges = [PartitionRange("t", 0, 0, 10), PartitionRange("t", 1, 5, 9), PartitionRange("t", 2, 3, 4)]
    group = _GroupStub({TopicPartition("t", 0), TopicPartition("t", 2)})
    stream = _stream_with(group, ranges)
    stream.commit()
    assert len(group.commits) == 1
    assert {tp.partition: o.offset for tp, o in group.commits[0].items()} == {0: 10, 2: 4}
    stream.commit()  # already committed: nothing more
    assert len(group.commits) == 1


def test_a_micro_batch_commit_refused_by_the_group_warns_and_the_stream_goes_on(caplog):
    from rayka.clients.types import TopicPartition

    group = _GroupStub({TopicPartition("t", 0)}, refuse=True)
    stream = _stream_with(group, [PartitionRange("t", 0, 0, 10)])
    with caplog.at_level("WARNING", logger="rayka.clients.ray_data_stream"):
        stream.commit()
    assert "b1" in caplog.text and "read again" in caplog.text
    assert stream._pending is None


def test_a_micro_batch_none_of_whose_partitions_are_still_owned_commits_nothing():
    group = _GroupStub(set())
    _stream_with(group, [PartitionRange("t", 0, 0, 10)]).commit()
    assert group.commits == []
