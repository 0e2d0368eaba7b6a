"""Replication on one machine (the embedded default): replicas share the node with
replica.placement=colocate, each in its own directory; a killed leader is replaced by an
in-sync follower and recreated as a follower; nothing acknowledged is lost."""

from pathlib import Path

import pyarrow as pa
import pytest
import ray

import rayka
from rayka.errors import ConfigError
from rayka.testing import consume_all, wait_for

COLOCATED = {"replica.placement": "colocate", "min.insync.replicas": 2, "replica.lag.time.max.ms": 5000}


def test_replication_factor_above_the_node_count_needs_colocate(admin):
    with pytest.raises(ConfigError, match="replica.placement=colocate"):
        admin.create_topic("spread-only", partitions=1, replication_factor=3)
    assert "spread-only" not in admin.list_topics()


def test_a_killed_leader_is_replaced_and_every_acknowledged_record_survives(cluster, admin):
    admin.create_topic("local-rf3", partitions=1, replication_factor=3, config=COLOCATED)
    before = admin.describe_topic("local-rf3").partitions[0]
    assert before.replica_ids == (0, 1, 2) and before.isr == (0, 1, 2) and before.leader_replica == 0
    with rayka.Producer(cluster=cluster, acks="all") as producer:
        offsets = [f.get(timeout=30).offset for f in [producer.send("local-rf3", value=b"a%d" % i)
                                                       for i in range(200)]]
    assert offsets == list(range(200))
    meta, handles = cluster.topic("local-rf3", refresh=True)
    ray.kill(handles[0].handle, no_restart=True)  # the leader, for good
    with rayka.Producer(cluster=cluster, acks="all", delivery_timeout_ms=60_000, retry_backoff_ms=50) as producer:
        after = producer.send("local-rf3", value=b"after").get(timeout=60)
    assert after.offset == 200
    now = admin.describe_topic("local-rf3").partitions[0]
    assert now.leader_replica in (1, 2) and now.leader_epoch > before.leader_epoch
    # The killed replica is created again in place, copies what it missed and rejoins the ISR.
    wait_for(lambda: admin.describe_topic("local-rf3").partitions[0].isr == (0, 1, 2), 60,
             what="the recreated replica back in the ISR")
    consumer = rayka.Consumer("local-rf3", cluster=cluster, auto_offset_reset="earliest")
    got = consume_all(consumer, 201, timeout_s=30)
    consumer.close()
    assert [r.value for r in got] == [b"a%d" % i for i in range(200)] + [b"after"]
    dirs = sorted(p.name for p in (Path(cluster.data_dir) / "topics" / "local-rf3").iterdir())
    assert dirs == ["0", "0.r1", "0.r2"]


def test_pipelined_send_table_survives_a_killed_leader_in_order_and_once(cluster, admin, monkeypatch):
    """send_table chunks under acks="all" are pipelined (written while earlier ones wait for
    their replicas); a leader killed in the middle of them loses none, duplicates none and
    keeps their order: the retries go again in sequence order to the new leader."""
    from rayka.clients import bulk

    monkeypatch.setattr(bulk, "MAX_CHUNK_BYTES", 64 * 1024)  # 50,000 rows of 20 bytes: ~20 chunks
    admin.create_topic("local-bulk", partitions=1, replication_factor=3, config=COLOCATED)
    values = [b"row-%015d" % i for i in range(50_000)]
    table = pa.table({"value": pa.array(values, pa.binary())})
    _, handles = cluster.topic("local-bulk", refresh=True)
    with rayka.Producer(cluster=cluster, acks="all", delivery_timeout_ms=60_000, retry_backoff_ms=50) as producer:
        future = producer.send_table("local-bulk", table)
        wait_for(lambda: handles[0].stats().result(timeout_s=10).log_end_offset >= 5_000, 60,
                 what="some chunks written")
        ray.kill(handles[0].handle, no_restart=True)  # the leader, while chunks travel
        future.result(timeout=90)
        assert producer.metrics()["retries"] >= 1, "the kill met chunks in flight"
    consumer = rayka.Consumer("local-bulk", cluster=cluster, auto_offset_reset="earliest")
    got = consume_all(consumer, len(values), timeout_s=60)
    extra = consumer.poll(timeout_ms=500)
    consumer.close()
    assert not extra, "nothing past the table's rows (no duplicate)"
    assert [r.value for r in got] == values
