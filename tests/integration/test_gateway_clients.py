"""Real Kafka clients against the gateway: confluent-kafka (librdkafka), kafka-python, aiokafka
and kcat, with nothing changed but ``bootstrap.servers``.

One rayka cluster and one gateway serve the whole module (the clients are slow to start;
each test uses topics of its own). Every check is against what was acknowledged: the
offsets in delivery reports, and the values, keys and headers sent.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

import rayka
from rayka.testing import embedded_cluster, wait_for

confluent_kafka = pytest.importorskip("confluent_kafka")
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic  # noqa: E402

WORKER = Path(__file__).with_name("_kafka_group_worker.py")


@pytest.fixture(scope="module")
def gw(ray_session, tmp_path_factory):
    """``(cluster, bootstrap)``: a rayka cluster and its gateway on 127.0.0.1."""
    import rayka.gateway

    with embedded_cluster(tmp_path_factory.mktemp("gateway")) as cluster:
        brokers = rayka.gateway.start(port=0, cluster=cluster)
        host, port = brokers[0][1], brokers[0][2]
        try:
            yield cluster, f"{host}:{port}"
        finally:
            rayka.gateway.stop(cluster=cluster)


def _topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _producer(bootstrap: str, **extra) -> Producer:
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "broker.address.family": "v4"}
    conf.update(extra)
    return Producer(conf)


def _produce(producer: Producer, topic: str, messages: list[dict]) -> dict:
    """Produce each ``{"value", "key", "headers", "partition", "timestamp"}``; answer
    ``{value: (partition, offset)}`` from the delivery reports (every one must succeed)."""
    acked, errors = {}, []

    def report(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked[msg.value()] = (msg.partition(), msg.offset())

    for m in messages:
        kwargs = {k: m[k] for k in ("key", "headers", "partition", "timestamp") if m.get(k) is not None}
        producer.produce(topic, value=m["value"], on_delivery=report, **kwargs)
        producer.poll(0)
    left = producer.flush(60)
    assert left == 0 and not errors, (left, errors[:3])
    return acked


def _read_all(bootstrap: str, topic: str, partitions: int, expected: int, timeout_s: float = 60.0) -> list:
    """Every record of ``topic`` from offset 0 by manual assignment (no group)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                         "broker.address.family": "v4"})
    try:
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got, deadline = [], time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                assert m.error() is None, m.error()
                got.append(m)
        return got
    finally:
        consumer.close()


def test_produce_with_keys_and_headers_reads_back_what_was_acknowledged(gw):
    cluster, bootstrap = gw
    topic = _topic("keys")
    rayka.Admin(cluster).create_topic(topic, partitions=4)
    messages = [{"value": f"v{i}".encode(), "key": f"k{i % 17}".encode(),
                 "headers": [("h", f"{i}".encode()), ("h", b"dup"), ("empty", b"")]} for i in range(3000)]
    messages[5]["key"] = None  # keyless: any partition
    acked = _produce(_producer(bootstrap), topic, messages)
    got = _read_all(bootstrap, topic, 4, len(messages))
    assert len(got) == len(messages)
    by_value = {m.value(): m for m in got}
    assert len(by_value) == len(messages)  # no duplicate
    for i, sent in enumerate(messages):
        m = by_value[sent["value"]]
        assert (m.partition(), m.offset()) == acked[sent["value"]]
        assert m.key() == sent["key"]
        assert m.headers() == sent["headers"]
    # Per key, one partition, in the order produced.
    for k in {m["key"] for m in messages if m["key"] is not None}:
        spots = [acked[m["value"]] for m in messages if m["key"] == k]
        assert len({p for p, _ in spots}) == 1
        assert [o for _, o in spots] == sorted(o for _, o in spots)


def test_rayka_producer_to_kafka_consumer_and_back_with_the_same_offsets_and_bytes(gw):
    cluster, bootstrap = gw
    topic = _topic("interop")
    rayka.Admin(cluster).create_topic(topic, partitions=1)
    with rayka.Producer(cluster=cluster) as producer:
        futures = [producer.send(topic, value=f"r{i}".encode(), key=b"k", headers={"src": b"rayka"})
                   for i in range(500)]
        producer.flush()
        native = [f.result() for f in futures]
    got = _read_all(bootstrap, topic, 1, 500)
    assert [(m.offset(), m.value()) for m in got] == [(md.offset, f"r{i}".encode()) for i, md in enumerate(native)]
    assert all(m.key() == b"k" and m.headers() == [("src", b"rayka")] for m in got)

    acked = _produce(_producer(bootstrap), topic, [{"value": f"kafka{i}".encode(), "key": b"kk",
                                                    "headers": [("src", b"kafka")]} for i in range(500)])
    consumer = rayka.Consumer(cluster=cluster)
    try:
        consumer.assign([rayka.TopicPartition(topic, 0)])
        consumer.seek(rayka.TopicPartition(topic, 0), 0)
        rows = []
        deadline = time.monotonic() + 30
        while sum(len(t) for t in rows) < 1000 and time.monotonic() < deadline:
            rows.append(consumer.poll_batch(timeout_ms=500))
    finally:
        consumer.close()
    import pyarrow as pa

    table = pa.concat_tables([t for t in rows if len(t)])
    from_kafka = {v: o for v, o in zip(table.column("value").to_pylist(), table.column("offset").to_pylist())
                  if v.startswith(b"kafka")}
    assert from_kafka == {v: off for v, (_, off) in acked.items()}


def test_manual_assignment_seeks_by_offset_and_by_time(gw):
    cluster, bootstrap = gw
    topic = _topic("seek")
    rayka.Admin(cluster).create_topic(topic, partitions=1)
    base = (int(time.time()) - 3600) * 1000  # recent: retention (7 days) would delete older records
    _produce(_producer(bootstrap), topic, [{"value": f"s{i}".encode(), "partition": 0, "timestamp": base + 1000 * i}
                                          for i in range(100)])
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                         "broker.address.family": "v4"})
    try:
        assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10) == (0, 100)
        [at] = consumer.offsets_for_times([TopicPartition(topic, 0, base + 60_500)], timeout=10)
        assert at.offset == 61  # the first record at or after that time
        consumer.assign([TopicPartition(topic, 0, 40)])
        first = _consume_n(consumer, 1)[0]
        assert (first.offset(), first.value(), first.timestamp()[1]) == (40, b"s40", base + 40_000)
        consumer.seek(TopicPartition(topic, 0, at.offset))
        after = _consume_n(consumer, 39)
        assert [m.offset() for m in after] == list(range(61, 100))
    finally:
        consumer.close()


def _consume_n(consumer, n: int, timeout_s: float = 30.0) -> list:
    got, deadline = [], time.monotonic() + timeout_s
    while len(got) < n and time.monotonic() < deadline:
        got.extend(m for m in consumer.consume(num_messages=n - len(got), timeout=0.5) if m.error() is None)
    assert len(got) == n, f"{len(got)} of {n} records within {timeout_s} s"
    return got


def test_idempotent_producer_across_a_gateway_restart_writes_each_record_once(gw):
    """librdkafka (enable.idempotence) keeps retrying what was in flight when the gateway went
    away, with the same sequences: the partitions answer the re-sent batches as duplicates."""
    import rayka.gateway

    cluster, bootstrap = gw
    topic = _topic("idem")
    rayka.Admin(cluster).create_topic(topic, partitions=2)
    producer = _producer(bootstrap, **{"enable.idempotence": True, "message.timeout.ms": 60000,
                                       "reconnect.backoff.ms": 50, "reconnect.backoff.max.ms": 200})
    acked, errors = {}, []

    def report(err, msg):
        (errors.append(err) if err is not None else acked.__setitem__(msg.value(), (msg.partition(), msg.offset())))

    host, port = bootstrap.split(":")
    for i in range(20_000):
        producer.produce(topic, value=f"i{i}".encode(), key=f"{i % 7}".encode(), on_delivery=report)
        if i == 10_000:  # in flight now: batches the gateway may or may not have appended
            producer.poll(0)
            rayka.gateway.stop(cluster=cluster)
            rayka.gateway.start(port=int(port), host=host, cluster=cluster)
        producer.poll(0)
    assert producer.flush(90) == 0 and not errors, errors[:3]
    got = _read_all(bootstrap, topic, 2, len(acked))
    values = [m.value() for m in got]
    assert len(values) == len(set(values)) == 20_000  # all there, none twice
    assert {m.value(): (m.partition(), m.offset()) for m in got} == acked


def test_admin_creates_describes_grows_and_deletes_topics(gw):
    cluster, bootstrap = gw
    admin = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"})
    topic = _topic("admin")
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1,
                                  config={"retention.ms": "3600000"})])[topic].result(30)
    meta = admin.list_topics(timeout=10)
    assert len(meta.topics[topic].partitions) == 3
    assert topic in rayka.Admin(cluster).list_topics()
    with pytest.raises(confluent_kafka.KafkaException) as exists:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    assert exists.value.args[0].code() == confluent_kafka.KafkaError.TOPIC_ALREADY_EXISTS
    res = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = admin.describe_configs([res])[res].result(30)
    assert configs["retention.ms"].value == "3600000"
    admin.create_partitions([NewPartitions(topic, 5)])[topic].result(30)
    assert rayka.Admin(cluster).describe_topic(topic).num_partitions == 5
    admin.delete_topics([topic])[topic].result(30)
    wait_for(lambda: topic not in admin.list_topics(timeout=10).topics, 20, what="topic deleted")
    assert topic not in rayka.Admin(cluster).list_topics()


def test_group_of_three_where_one_leaves_and_one_is_killed_processes_everything(gw, tmp_path):
    cluster, bootstrap = gw
    topic, group = _topic("grp"), _topic("g")
    admin = rayka.Admin(cluster)
    admin.create_topic(topic, partitions=6)
    sent = [f"g{i}".encode() for i in range(6000)]
    acked = _produce(_producer(bootstrap), topic, [{"value": v, "key": v} for v in sent[:3000]])
    out = tmp_path / "processed.txt"
    procs = [subprocess.Popen([sys.executable, str(WORKER), bootstrap, group, topic, str(out)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(3)]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        wait_for(lambda: _members_and_state(admin, group) == (3, "Stable"), 60, what="three members stable")
        wait_for(lambda: _processed(out) >= 1000, 60, what="a third processed")
        procs[0].stdin.write("leave\n")
        procs[0].stdin.flush()
        assert procs[0].stdout.readline().strip() == "left"
        procs[1].send_signal(signal.SIGKILL)
        acked.update(_produce(_producer(bootstrap), topic, [{"value": v, "key": v} for v in sent[3000:]]))
        wait_for(lambda: _seen(out) >= set(sent), 90, what="every record processed")
        wait_for(lambda: _total_lag(admin, group) == 0, 60, what="lag 0")
        members = admin.describe_group(group).members
        assert len(members) == 1 and len({tp for m in members for tp in m.assignment}) == 6
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
    lines = [ln.split() for ln in out.read_text().splitlines()]
    # What was processed is what was acknowledged there (at-least-once: the killed one's last
    # uncommitted records come again, never a record at a wrong offset).
    assert all(acked[v.encode()] == (int(p), int(o)) for p, o, v in lines)


def _members_and_state(admin, group: str) -> tuple[int, str | None]:
    try:
        info = admin.describe_group(group)
    except rayka.errors.UnknownGroupError:  # no member joined yet
        return 0, None
    return len(info.members), info.state


def _processed(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _seen(path: Path) -> set:
    return {ln.split()[2].encode() for ln in path.read_text().splitlines()} if path.exists() else set()


def _total_lag(admin, group: str) -> int | None:
    return admin.describe_group(group).total_lag


def test_committed_offsets_survive_a_gateway_restart_and_reset_offsets_works(gw):
    import rayka.gateway

    cluster, bootstrap = gw
    topic, group = _topic("commit"), _topic("gc")
    rayka.Admin(cluster).create_topic(topic, partitions=1)
    _produce(_producer(bootstrap), topic, [{"value": f"c{i}".encode()} for i in range(100)])
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
            "auto.offset.reset": "earliest", "broker.address.family": "v4"}
    consumer = Consumer(conf)
    consumer.subscribe([topic])
    _consume_n(consumer, 1)
    consumer.commit(offsets=[TopicPartition(topic, 0, 50)], asynchronous=False)
    consumer.close()
    host, port = bootstrap.split(":")
    rayka.gateway.stop(cluster=cluster)
    rayka.gateway.start(port=int(port), host=host, cluster=cluster)
    consumer = Consumer(conf)
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=20)
        assert tp.offset == 50
        consumer.subscribe([topic])
        assert _consume_n(consumer, 1)[0].offset() == 50
    finally:
        consumer.close()
    info = rayka.Admin(cluster).describe_group(group)
    assert [(p.topic, p.partition, p.committed, p.lag) for p in info.partitions] == [(topic, 0, 50, 50)]
    rayka.Admin(cluster).reset_offsets(group, to="earliest")
    consumer = Consumer(conf)
    try:
        [tp] = consumer.committed([TopicPartition(topic, 0)], timeout=20)
        assert tp.offset == 0
    finally:
        consumer.close()


def test_kafka_python_and_aiokafka_produce_and_consume(gw):
    from kafka import KafkaConsumer, KafkaProducer

    cluster, bootstrap = gw
    topic = _topic("kp")
    rayka.Admin(cluster).create_topic(topic, partitions=2)
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    futures = [producer.send(topic, value=f"p{i}".encode(), key=b"a", headers=[("x", b"1")]) for i in range(300)]
    producer.flush(30)
    acked = {f"p{i}".encode(): (f.get(10).partition, f.get(10).offset) for i, f in enumerate(futures)}
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             group_id=None, consumer_timeout_ms=10_000)
    got = {}
    for m in consumer:
        got[m.value] = (m.partition, m.offset)
        assert m.key == b"a" and list(m.headers) == [("x", b"1")]
        if len(got) == 300:
            break
    consumer.close()
    assert got == acked

    async def with_aiokafka():
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        aprod = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await aprod.start()
        try:
            md = [await aprod.send_and_wait(topic, value=f"a{i}".encode(), partition=1) for i in range(50)]
        finally:
            await aprod.stop()
        acons = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=_topic("aio"),
                                 auto_offset_reset="earliest", enable_auto_commit=False)
        await acons.start()
        try:
            seen = {}
            deadline = time.monotonic() + 30
            while len(seen) < 350 and time.monotonic() < deadline:
                batch = await acons.getmany(timeout_ms=500)
                for msgs in batch.values():
                    seen.update({m.value: (m.partition, m.offset) for m in msgs})
            await acons.commit()
            return md, seen
        finally:
            await acons.stop()

    md, seen = asyncio.run(with_aiokafka())
    assert {f"a{i}".encode(): (1, m.offset) for i, m in enumerate(md)}.items() <= seen.items()
    assert acked.items() <= seen.items() and len(seen) == 350


def _kcat() -> str:
    """kcat (Debian's package), installed when missing."""
    found = shutil.which("kcat") or shutil.which("kafkacat")
    if found:
        return found
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=300, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "kcat"], check=True, capture_output=True, timeout=300, env=env)
    found = shutil.which("kcat")
    assert found, "kcat not found after apt-get install kcat"
    return found


def test_kcat_produces_and_consumes(gw):
    cluster, bootstrap = gw
    kcat = _kcat()
    topic = _topic("kcat")
    rayka.Admin(cluster).create_topic(topic, partitions=1)
    lines = "".join(f"k{i}:value {i}\n" for i in range(200))
    subprocess.run([kcat, "-b", bootstrap, "-P", "-t", topic, "-K:", "-p", "0"], input=lines, text=True,
                   check=True, timeout=60)
    out = subprocess.run([kcat, "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k|%s|%o\n"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.splitlines() == [f"k{i}|value {i}|{i}" for i in range(200)]
    with rayka.Consumer(cluster=cluster) as consumer:
        tp = rayka.TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        records = []
        deadline = time.monotonic() + 20
        while len(records) < 200 and time.monotonic() < deadline:
            records.extend(consumer.poll(timeout_ms=500))
    assert [(r.offset, r.key, r.value) for r in records] == [(i, f"k{i}".encode(), f"value {i}".encode())
                                                           for i in range(200)]
