"""test_multinode.py's scenario on a 3-node local Ray cluster: single-replica partitions spread
over the nodes, Kafka gateways on each, then the loss of a worker node.

``run`` is one scenario of ``_replication_scenario.py`` (its child process and 3-node cluster
serve test_replication.py and test_multinode.py, started once); run by hand, this file starts
a cluster of its own and prints one JSON line with what it observed. Every loop is bounded
in time.
"""

import json
import os
import sys
import time

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import rayka  # noqa: E402
from rayka import TopicPartition  # noqa: E402


def run(cluster, workers, data_dir: str) -> dict:
    """The scenario on ``cluster`` (3 nodes alive; ``workers`` its two non-head nodes, one of
    which it removes for good) with a rayka cluster of its own ("multi", files in ``data_dir``,
    left connected as the current one); what it observed."""
    report = {"nodes": len([n for n in ray.nodes() if n["Alive"]])}
    rc = rayka.connect(data_dir=data_dir, cluster_name="multi")
    admin = rayka.Admin(rc)
    desc = admin.create_topic("spread", partitions=6)
    leaders = [p.leader for p in desc.partitions]
    report["distinct_leaders"] = len(set(leaders))
    with rayka.Producer() as p:
        for i in range(6000):
            p.send("spread", value=b"%d" % i, partition=i % 6)
    report["produced"] = 6000
    c = rayka.Consumer("spread", auto_offset_reset="earliest")
    got = []
    deadline = time.monotonic() + 60
    while len(got) < 6000 and time.monotonic() < deadline:
        got += c.poll(timeout_ms=500, max_records=5000)
    report["consumed"] = len(got)
    report["order_ok"] = all(
        [int(r.value) for r in got if r.partition == part] == list(range(part, 6000, 6)) for part in range(6)
    )
    c.close()

    report.update(_through_kafka_gateways(rc, leaders))

    worker_ids = {w.node_id: w for w in workers}
    lost = next(p for p, leader in enumerate(leaders) if leader in worker_ids)
    cluster.remove_node(worker_ids[leaders[lost]])
    with rayka.Producer(delivery_timeout_ms=5000, retry_backoff_ms=100) as p:
        try:
            p.send("spread", value=b"x", partition=lost).result(timeout=60)
            report["lost_partition_error"] = None
        except rayka.errors.RaykaError as exc:
            report["lost_partition_error"] = type(exc).__name__
        survivors = [part for part, leader in enumerate(leaders) if leader != leaders[lost]]
        ok = True
        for part in survivors:
            # 1000 sent natively, then 100 through the Kafka gateways
            ok &= p.send("spread", value=b"after", partition=part).result(timeout=60).offset == 1100
        report["survivors_ok"] = ok
    c = rayka.Consumer(auto_offset_reset="earliest")
    c.assign([TopicPartition("spread", part) for part in survivors])
    tail = []
    deadline = time.monotonic() + 60
    while len(tail) < 1101 * len(survivors) and time.monotonic() < deadline:
        tail += c.poll(timeout_ms=500, max_records=5000)
    report["survivors_ok"] = report["survivors_ok"] and len(tail) == 1101 * len(survivors)
    c.close()
    gone = sorted(set(range(6)) - set(survivors))
    report["gone"] = gone
    # Consumers created after the loss, on every partition: they read the survivors (within
    # 20 s, bounded) and report the partitions of the removed node as unavailable.
    for kind, options in (("plain", {}), ("group", {"group_id": "after-loss", "enable_auto_commit": False})):
        started = time.monotonic()
        c = rayka.Consumer("spread", auto_offset_reset="earliest", **options)
        got = []
        while len(got) < 1101 * len(survivors) and time.monotonic() - started < 20:
            got += c.poll(timeout_ms=500, max_records=5000)
        report[f"{kind}_read"] = len(got)
        report[f"{kind}_partitions"] = sorted({r.partition for r in got})
        report[f"{kind}_unavailable"] = sorted(tp.partition for tp in c.unavailable())
        report[f"{kind}_seconds"] = round(time.monotonic() - started, 2)
        c.close()
    desc = admin.describe_topic("spread")
    report["described_unavailable"] = desc.unavailable
    report["described_error"] = next((p.error for p in desc.partitions if not p.available), None)
    report["list_offsets_none"] = sorted(p for p, v in admin.list_offsets("spread").items() if v is None)
    return report


def main(data_dir: str) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False)
    print(json.dumps(run(cluster, workers, data_dir)), flush=True)
    ray.shutdown()
    cluster.shutdown()


def _through_kafka_gateways(rc, leaders) -> dict:
    """A gateway per node: Kafka metadata names each node's gateway as a broker and each
    partition's leader as the broker of its actor's node; a Kafka producer and consumer
    (confluent-kafka) work through them. Stopped again before the node loss."""
    import rayka.gateway
    from confluent_kafka import Consumer, Producer, TopicPartition as KafkaTP
    from confluent_kafka.admin import AdminClient

    from rayka.clients.gateway_backend import broker_id

    out = {}
    gateways = rayka.gateway.start(port=0, cluster=rc)
    try:
        bootstrap = ",".join(f"{h}:{p}" for _, h, p in gateways)
        meta = AdminClient({"bootstrap.servers": bootstrap, "broker.address.family": "v4"}).list_topics(timeout=30)
        out["kafka_brokers"] = sorted(meta.brokers)
        out["gateway_brokers"] = sorted(b for b, _, _ in gateways)
        out["kafka_leaders"] = [meta.topics["spread"].partitions[p].leader for p in range(6)]
        out["node_brokers"] = [broker_id(node) for node in leaders]
        acked, errors = [], []
        producer = Producer({"bootstrap.servers": bootstrap, "broker.address.family": "v4", "linger.ms": 5})
        for i in range(600):
            producer.produce("spread", value=b"k%d" % i, partition=i % 6,
                             on_delivery=lambda e, m: errors.append(e) if e else acked.append((m.partition(),
                                                                                                 m.offset())))
        producer.flush(60)
        out["kafka_acked"], out["kafka_errors"] = len(acked), [str(e) for e in errors[:3]]
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False,
                             "broker.address.family": "v4"})
        consumer.assign([KafkaTP("spread", p, 1000) for p in range(6)])
        got, deadline = [], time.monotonic() + 60
        while len(got) < 600 and time.monotonic() < deadline:
            got += [(m.partition(), m.offset()) for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
        consumer.close()
        out["kafka_read_back"] = sorted(got) == sorted(acked) and len(got) == 600
    finally:
        rayka.gateway.stop(cluster=rc)
    return out


if __name__ == "__main__":
    main(sys.argv[1])
