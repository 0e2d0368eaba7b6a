"""The Spark data source "rayka" read by real PySpark: batch reads (bounds, typed columns,
pushed filters) and a streaming query restarted from its checkpoint."""

import json
import re

import pyarrow as pa
import pytest

import rayka
import rayka.spark
from rayka.testing import embedded_cluster

USERS = 20
N = 2000


@pytest.fixture(scope="module")
def kafka_like(ray_session, tmp_path_factory, spark):
    """One rayka cluster for the module: a 4-partition bytes topic and a typed one, registered."""
    with embedded_cluster(tmp_path_factory.mktemp("spark-src")) as cluster:
        admin = rayka.Admin(cluster)
        admin.create_topic("clicks", partitions=4)
        admin.create_topic("orders", partitions=2,
                           schema=pa.schema([("amount", pa.int64()), ("item", pa.string()), ("qty", pa.uint32())]))
        keys = [f"user-{i % USERS}".encode() for i in range(N)]
        values = [f"{i % USERS}:{i // USERS}".encode() for i in range(N)]
        with rayka.Producer(cluster=cluster) as p:
            p.send_table("clicks", pa.table({"key": keys, "value": values})).result()
            p.send_table("orders", pa.table({"amount": list(range(100)),
                                             "item": [f"item-{i % 7}" for i in range(100)],
                                             "qty": pa.array([4_000_000_000] * 100, pa.uint32())})).result()
        rayka.spark.register(spark, cluster)
        yield cluster


def _clicks(spark, **options):
    reader = spark.read.format("rayka").option("topic", "clicks")
    for k, v in options.items():
        reader = reader.option(k, v)
    return reader.load()


def test_batch_read_gives_every_record_in_per_key_order(spark, kafka_like):
    df = _clicks(spark)
    assert df.columns == ["partition", "offset", "timestamp_ms", "key", "headers", "value"]
    rows = df.select("partition", "offset", "key", "value").collect()
    assert len(rows) == N
    assert {r.partition for r in rows} == {0, 1, 2, 3}
    seen = {}
    for r in sorted(rows, key=lambda r: (r.partition, r.offset)):
        user, seq = r.value.decode().split(":")
        assert r.key == f"user-{user}".encode()
        seen.setdefault(user, []).append(int(seq))
    assert all(seqs == list(range(N // USERS)) for seqs in seen.values())
    assert len(seen) == USERS


def test_bounded_offsets_and_split_partitions(spark, kafka_like):
    ends = {p.partition: p.log_end_offset for p in rayka.Admin(kafka_like).describe_topic("clicks").partitions}
    df = _clicks(spark, startingOffsets=json.dumps({"0": 10, "1": -2}), endingOffsets=json.dumps({"0": 30}),
                 maxRecordsPerPartition=100)
    assert df.rdd.getNumPartitions() > 4  # large partitions were split
    counts = {r.partition: r["count"] for r in df.groupBy("partition").count().collect()}
    assert counts == {0: 20, 1: ends[1], 2: ends[2], 3: ends[3]}
    lo = df.filter("partition = 0").agg({"offset": "min"}).first()[0]
    assert lo == 10
    # time bounds (ms or ISO) win over offsets, as in Kafka's source
    assert _clicks(spark, startingTimestamp="2020-01-01T00:00:00Z", startingOffsets="latest").count() == N
    assert _clicks(spark, endingTimestamp="1").count() == 0


def test_typed_topic_columns_and_pushed_filter(spark, kafka_like):
    df = spark.read.format("rayka").option("topic", "orders").load()
    assert df.columns == ["partition", "offset", "timestamp_ms", "key", "headers", "amount", "item", "qty"]
    types = dict(df.dtypes)
    assert (types["amount"], types["item"], types["qty"]) == ("bigint", "string", "bigint")  # uint32 widened
    assert df.agg({"amount": "sum"}).first()[0] == sum(range(100))
    assert df.agg({"qty": "max"}).first()[0] == 4_000_000_000
    picked = df.filter("amount >= 90 AND item = 'item-3' AND partition IN (0, 1)").select("amount")
    assert sorted(r.amount for r in picked.collect()) == [a for a in range(90, 100) if a % 7 == 3]
    plan = picked._jdf.queryExecution().executedPlan().toString()
    # every filter was pushed into the source: Spark kept no Filter of its own
    assert not re.search(r"\bFilter\b", plan.replace("RuntimeFilters", "")), plan


def test_columns_option_reads_just_those(spark, kafka_like):
    df = spark.read.format("rayka").option("columns", "offset,amount").load("orders")
    assert df.columns == ["offset", "amount"]
    assert df.count() == 100


def test_stream_restarted_from_its_checkpoint_reads_only_new_records(spark, kafka_like, tmp_path):
    admin = rayka.Admin(kafka_like)
    admin.create_topic("stream", partitions=4)

    def produce(lo, hi):
        with rayka.Producer(cluster=kafka_like) as p:
            p.send_table("stream", pa.table({"key": [f"k{i % 9}".encode() for i in range(lo, hi)],
                                             "value": [str(i).encode() for i in range(lo, hi)]})).result()

    def run_query():
        stream = (spark.readStream.format("rayka").option("topic", "stream").option("startingOffsets", "earliest")
                  .option("maxOffsetsPerTrigger", 200).load())
        q = (stream.select("partition", "offset", "value").writeStream.format("parquet")
             .option("path", str(tmp_path / "out")).option("checkpointLocation", str(tmp_path / "ck"))
             .trigger(availableNow=True).start())
        q.awaitTermination(120)
        assert q.exception() is None
        batches = [b["numInputRows"] for b in q.recentProgress if b["numInputRows"]]
        return spark.read.parquet(str(tmp_path / "out")), batches

    produce(0, 300)
    first, batches = run_query()
    assert sorted(int(r.value) for r in first.collect()) == list(range(300))
    assert batches == [200, 100]  # maxOffsetsPerTrigger held, Trigger.AvailableNow went on to the end
    produce(300, 500)
    second, batches = run_query()
    values = [int(r.value) for r in second.collect()]
    assert batches == [200]  # the restart read only the 200 new ones...
    assert sorted(values) == list(range(500))  # ...and the sink holds each record once


def test_bad_options_name_what_is_wrong(spark, kafka_like):
    from pyspark.errors import PySparkException

    with pytest.raises(PySparkException, match="needs the topic"):
        spark.read.format("rayka").load()
    with pytest.raises(PySparkException, match="(?i)no option 'startOffsets'"):
        spark.read.format("rayka").option("topic", "clicks").option("startOffsets", "earliest").load()
