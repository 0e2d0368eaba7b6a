"""Real Kafka clients (kafka-python 3.0.12) against the gateway's protocol core over the fake backend."""

from __future__ import annotations

import time

import pytest
from gateway_server import GatewayThread

kafka = pytest.importorskip("kafka")


def _poll_until(consumer, want: int, timeout_s: float = 20.0) -> list:
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
