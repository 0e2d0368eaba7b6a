"""Real Kafka clients (kafka-python 3.0.12, confluent-kafka, aiokafka) against the gateway's protocol core over the
fake backend (no Ray): serve_connection on 127.0.0.1, clients in this process."""

from __future__ import annotations

import time

import pytest
from gateway_server import GatewayThread

kafka = pytest.importorskip("kafka")


def _poll_until(consumer, want: int, timeout_s: float = 60.0) -> list:
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < want and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            got.extend(records)
    return got


def test_kafka_python_produce_keys_headers_and_consume_back():
    with GatewayThread() as gw:
        admin = kafka.KafkaAdminClient(bootstrap_servers=gw.bootstrap, request_timeout_ms=10000)
        admin.create_topics([kafka.admin.NewTopic("clicks", num_partitions=2, replication_factor=1)])
        assert "clicks" in admin.list_topics()
        producer = kafka.KafkaProducer(bootstrap_servers=gw.bootstrap, acks="all", linger_ms=5)
        sent = []
        for i in range(20):
            fut = producer.send("clicks", key=b"k%d" % (i % 3), value=b"v%d" % i, headers=[("h", b"x%d" % i)],
                                partition=i % 2)
            sent.append(fut)
        producer.flush(10)
        metas = [f.get(10) for f in sent]
        assert sorted((m.partition, m.offset) for m in metas) == sorted((i % 2, i // 2) for i in range(20))
        producer.close(5)

        consumer = kafka.KafkaConsumer("clicks", bootstrap_servers=gw.bootstrap, group_id="g1",
                                       auto_offset_reset="earliest", enable_auto_commit=False,
                                       fetch_max_wait_ms=200)
        got = _poll_until(consumer, 20)
        consumer.commit()
        consumer.close()
        assert len(got) == 20
        by_value = {r.value: r for r in got}
        for i in range(20):
            r = by_value[b"v%d" % i]
            assert r.key == b"k%d" % (i % 3)
            assert r.headers == [("h", b"x%d" % i)]
            assert (r.partition, r.offset) == (i % 2, i // 2)
        assert gw.call(gw.backend.fetch_offsets("g1", None)) == {("clicks", 0): (10, ""), ("clicks", 1): (10, "")}
        admin.delete_topics(["clicks"])
        assert "clicks" not in admin.list_topics()
        admin.close()


def test_confluent_kafka_idempotent_produce_and_group_consume():
    ck = pytest.importorskip("confluent_kafka")
    with GatewayThread() as gw:
        gw.call(gw.backend.create_topic("t", 3, 1, {}))
        p = ck.Producer({"bootstrap.servers": gw.bootstrap, "enable.idempotence": True, "linger.ms": 5})
        for i in range(30):
            p.produce("t", key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"%d" % i)], partition=i % 3)
        assert p.flush(20) == 0
        appends = [c for c in gw.backend.calls if c[0] == "append"]
        assert appends and all(c[4] is not None and c[4].startswith("kafka:") for c in appends)
        c = ck.Consumer({"bootstrap.servers": gw.bootstrap, "group.id": "cg", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 100})
        c.subscribe(["t"])
        got, deadline = [], time.monotonic() + 30
        while len(got) < 30 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append(m)
        c.commit(asynchronous=False)
        c.close()
        assert sorted(m.value() for m in got) == sorted(b"v%d" % i for i in range(30))
        assert all(m.headers() == [("h", b"%d" % int(m.value()[1:]))] for m in got)
        committed = gw.call(gw.backend.fetch_offsets("cg", None))
        assert committed == {("t", i): (10, "") for i in range(3)}


def test_aiokafka_produce_and_consume():
    aiokafka = pytest.importorskip("aiokafka")
    import asyncio

    with GatewayThread() as gw:
        gw.call(gw.backend.create_topic("a", 1, 1, {}))

        async def run():
            prod = aiokafka.AIOKafkaProducer(bootstrap_servers=gw.bootstrap)
            await prod.start()
            for i in range(5):
                await prod.send_and_wait("a", b"v%d" % i, key=b"k", headers=[("x", b"y")])
            await prod.stop()
            cons = aiokafka.AIOKafkaConsumer("a", bootstrap_servers=gw.bootstrap, group_id="ag",
                                             auto_offset_reset="earliest", fetch_max_wait_ms=100)
            await cons.start()
            got = []
            try:
                while len(got) < 5:
                    got.append(await asyncio.wait_for(cons.getone(), 20))
            finally:
                await cons.stop()
            return got

        got = asyncio.run(run())
        assert [(m.offset, m.key, m.value, list(m.headers)) for m in got] == [
            (i, b"k", b"v%d" % i, [("x", b"y")]) for i in range(5)]


def test_kafka_python_manual_assignment_seek_by_offset_and_time():
    from kafka.structs import TopicPartition

    with GatewayThread() as gw:
        gw.call(gw.backend.create_topic("m", 1, 1, {}))
        producer = kafka.KafkaProducer(bootstrap_servers=gw.bootstrap, acks=1)
        for i in range(10):
            producer.send("m", value=b"%d" % i, timestamp_ms=1_000_000 + 1000 * i)
        producer.flush(10)
        producer.close(5)
        tp = TopicPartition("m", 0)
        consumer = kafka.KafkaConsumer(bootstrap_servers=gw.bootstrap, enable_auto_commit=False,
                                       fetch_max_wait_ms=100)
        consumer.assign([tp])
        assert consumer.beginning_offsets([tp]) == {tp: 0}
        assert consumer.end_offsets([tp]) == {tp: 10}
        found = consumer.offsets_for_times({tp: 1_004_500})[tp]
        assert (found.offset, found.timestamp) == (5, 1_005_000)
        consumer.seek(tp, 7)
        assert [r.value for r in _poll_until(consumer, 3)] == [b"7", b"8", b"9"]
        consumer.seek(tp, found.offset)
        got = _poll_until(consumer, 5)
        assert [(r.offset, r.timestamp) for r in got] == [(i, 1_000_000 + 1000 * i) for i in range(5, 10)]
        consumer.close()


def test_kafka_python_admin_configs_partitions_and_groups():
    from kafka.admin import ConfigResource, ConfigResourceType, NewPartitions

    with GatewayThread() as gw:
        admin = kafka.KafkaAdminClient(bootstrap_servers=gw.bootstrap, request_timeout_ms=10000)
        admin.create_topics([kafka.admin.NewTopic("c", 1, 1, topic_configs={"retention.ms": "1000"})])
        res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "c")], config_filter="all")
        assert res["topic"]["c"]["retention.ms"]["value"] == "1000"
        admin.create_partitions({"c": NewPartitions(total_count=3)})
        assert len(gw.backend.topics["c"]) == 3
        consumer = kafka.KafkaConsumer("c", bootstrap_servers=gw.bootstrap, group_id="adm",
                                       auto_offset_reset="earliest", fetch_max_wait_ms=100,
                                       metadata_max_age_ms=1000)
        deadline = time.monotonic() + 20
        while not consumer.assignment() and time.monotonic() < deadline:
            consumer.poll(timeout_ms=100)
        assert len(consumer.assignment()) == 3
        consumer.commit({tp: kafka.OffsetAndMetadata(0, "", -1) for tp in consumer.assignment()})
        assert "adm" in repr(admin.list_groups())
        desc = admin.describe_groups(["adm"])
        assert "Stable" in repr(desc) and "adm" in repr(desc)
        offsets = admin.list_group_offsets({"adm": None})["adm"]
        assert {tp.partition: om.offset for tp, om in offsets.items()} == {0: 0, 1: 0, 2: 0}
        consumer.close()
        admin.close()


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_confluent_kafka_compressed_batches(codec):
    ck = pytest.importorskip("confluent_kafka")
    with GatewayThread() as gw:
        gw.call(gw.backend.create_topic("z", 1, 1, {}))
        p = ck.Producer({"bootstrap.servers": gw.bootstrap, "compression.type": codec, "linger.ms": 20})
        for i in range(200):
            p.produce("z", key=b"k%d" % i, value=b"value-%d " % i * 5, partition=0)
        assert p.flush(20) == 0
        c = ck.Consumer({"bootstrap.servers": gw.bootstrap, "group.id": "z", "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
        c.assign([ck.TopicPartition("z", 0, 0)])
        got, deadline = [], time.monotonic() + 30
        while len(got) < 200 and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is not None and m.error() is None:
                got.append((m.offset(), m.key(), m.value()))
        c.close()
        assert got == [(i, b"k%d" % i, b"value-%d " % i * 5) for i in range(200)]


def test_confluent_kafka_two_consumers_share_a_group():
    ck = pytest.importorskip("confluent_kafka")
    with GatewayThread() as gw:
        gw.call(gw.backend.create_topic("g4", 4, 1, {}))
        p = ck.Producer({"bootstrap.servers": gw.bootstrap})
        for i in range(40):
            p.produce("g4", value=b"%d" % i, partition=i % 4)
        assert p.flush(20) == 0
        conf = {"bootstrap.servers": gw.bootstrap, "group.id": "pair", "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 200,
                "fetch.wait.max.ms": 50, "partition.assignment.strategy": "range"}
        consumers = [ck.Consumer(conf), ck.Consumer(conf)]
        for c in consumers:
            c.subscribe(["g4"])
        seen: dict[bytes, int] = {}
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            for n, c in enumerate(consumers):
                m = c.poll(0.05)
                if m is not None and m.error() is None:
                    seen[m.value()] = n
            split = [len(c.assignment()) for c in consumers]
            if len(seen) == 40 and split == [2, 2]:
                break
        split = [sorted(tp.partition for tp in c.assignment()) for c in consumers]
        for c in consumers:
            c.close()
        assert len(seen) == 40
        assert sorted(split) == [[0, 1], [2, 3]]


def test_kafka_python_and_aiokafka_idempotent_producers():
    aiokafka = pytest.importorskip("aiokafka")
    import asyncio

    with GatewayThread() as gw:
        gw.call(gw.backend.create_topic("i", 1, 1, {}))
        producer = kafka.KafkaProducer(bootstrap_servers=gw.bootstrap, enable_idempotence=True, acks="all")
        metas = [producer.send("i", value=b"kp%d" % i).get(10) for i in range(3)]
        producer.close(5)

        async def aio():
            prod = aiokafka.AIOKafkaProducer(bootstrap_servers=gw.bootstrap, enable_idempotence=True)
            await prod.start()
            try:
                return [await prod.send_and_wait("i", b"ak%d" % i) for i in range(3)]
            finally:
                await prod.stop()

        aio_metas = asyncio.run(aio())
        assert [m.offset for m in metas + aio_metas] == list(range(6))
        ids = [c[4] for c in gw.backend.calls if c[0] == "append"]
        assert len(ids) == 6 and all(i and i.startswith("kafka:") for i in ids)
        assert len(set(ids)) == 2  # one id per producer, its sequences checked by the partition
        assert [c[5] for c in gw.backend.calls if c[0] == "append"] == [0, 1, 2, 0, 1, 2]
