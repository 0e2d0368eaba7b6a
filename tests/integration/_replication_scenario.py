"""Child process of test_replication.py: replication under real faults on a 3-node local Ray cluster.

A multi-node ``ray.cluster_utils.Cluster`` cannot share a process with the test session's
``ray.init``, so the scenarios run here, one after the other on one cluster, and print one
JSON line with what each observed. Every loop is bounded in count and time.

Scenarios (each on its own topic):

- ``failover``: the checker. An idempotent acks="all" producer sends unique, sequenced,
  keyed records to an RF=3, min.insync.replicas=2 topic while the node holding partition
  0's leader is removed; every acknowledgement's offset is recorded, everything is read
  back and checked (rayka.checker): lost, duplicated, reordered, wrong must be 0.
- ``acks1_window``: the followers of a partition are paused (SIGSTOP) so they copy
  nothing; acks=1 sends are acknowledged by the leader, the leader is killed
  (ray.kill), the followers resume, one of them is elected: the acknowledged records
  are gone. The same with acks="all": nothing is acknowledged, so nothing is lost.
- ``fencing``: the leader is paused until the controller elects another leader, then
  resumed: an append it is sent directly at its old epoch is refused or never becomes
  visible, it becomes a follower, and its divergent tail is truncated (every replica
  ends with the same records).
- ``healing``: a follower's node is removed for good and a new node added; with
  replica.lost.timeout.ms short the controller places a replacement that copies the log
  and joins the ISR: the replication factor is restored, every replica holds the same
  records.
- ``follower_reads``: an RF=3 topic takes N records (acks="all"), then, with the other
  follower paused, more (acks=1) that the leader and one follower hold but the HW does not
  pass; a Ray task pinned to that follower's node (not the leader's) reads with
  ``client_rack="local"``: the N records in order and none past the HW, all served by the
  follower on its node (the fetch answers say which replica answered; consumer metrics).
- ``chaos``: the checker under a loop of faults (replicas, the coordinator, a node).
- ``multinode``: test_multinode.py's single-replica scenario (``_multinode_scenario.py``),
  last: one cluster start for both test modules.
"""

import json
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import pyarrow as pa  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

import rayka  # noqa: E402
import rayka.testing  # noqa: E402
from rayka import TopicPartition  # noqa: E402
from rayka.checker import History, check, make_value, read_back as read_log  # noqa: E402

RC = None  # the connection to the scenarios' rayka cluster
CHAOS_KINDS = os.environ.get("CHAOS_KINDS", "replica,replica,coordinator,node").split(",")
REPLICATED = {"min.insync.replicas": 2, "replica.lag.time.max.ms": 3000, "replica.lost.timeout.ms": 4000}


def wait_until(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")


def read_back(topic, partitions, timeout_s=60):
    """Every record of ``topic`` as {partition: [(offset, key, value)]}, once every partition answers."""
    admin = rayka.Admin()
    wait_until(lambda: all(v is not None for v in admin.list_offsets(topic).values()), 60,
               f"{topic}: every partition answers list_offsets")
    return read_log(topic, timeout_s=timeout_s)


def verdict(result):
    """The CheckResult as JSON-able counts."""
    fields = ("sent", "acknowledged", "failed", "indeterminate", "read", "lost", "duplicated", "reordered", "wrong",
              "unacknowledged_present")
    out = {f: getattr(result, f) for f in fields}
    out["ok"] = result.ok
    out["examples"] = {k: [repr(i)[:80] for i in v] for k, v in result.examples.items() if v}
    return out


def replica_records(data_dir, topic, partition, replica):
    """The (offset, key, value) of every record in one replica's files, read with plain pyarrow."""
    base = Path(data_dir) / "topics" / topic / str(partition)
    directory = base if replica == 0 else base.with_name(f"{partition}.r{replica}")
    rows = []
    for seg in sorted(directory.glob("*.arrows")):
        with pa.memory_map(str(seg)) as f:
            table = pa.ipc.open_stream(f).read_all()
        rows += list(zip(table.column("offset").to_pylist(), table.column("key").to_pylist(),
                         table.column("value").to_pylist()))
    return rows


def node_of(desc, partition, replica=None):
    p = desc.partitions[partition]
    if replica is None:
        replica = p.leader_replica
    return p.replicas[p.replica_ids.index(replica)]


def topic_id(topic):
    meta, _ = RC.topic(topic, refresh=True)
    return meta.topic_id


def replica_handle(topic, partition, replica):
    """The Ray actor handle of one replica (named and detached in the ``rayka`` namespace)."""
    meta, _ = RC.topic(topic, refresh=True)
    name = f"rayka:repl:p:{meta.topic_id}:{partition}" + (f".r{replica}" if replica else "")
    return ray.get_actor(name, namespace="rayka"), name


def replica_pid(topic, partition, replica):
    """The process id of one replica's actor (its status says)."""
    handle, _ = replica_handle(topic, partition, replica)
    return ray.get(handle.status.remote(), timeout=30).pid


def process_alive(pid):
    """Whether process ``pid`` still runs (a zombie, exited but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def produce_checked(topic, partitions, n, history, *, acks="all", during=None, at=None, timeout_s=120):
    """Send ``n`` unique keyed records (key k<i%5>, sequenced per key), recording each outcome in
    ``history``; ``during()`` runs once after ``at`` records were acknowledged."""
    seqs = {}
    with rayka.Producer(acks=acks, idempotent=True, delivery_timeout_ms=60_000, retry_backoff_ms=100,
                        linger_ms=2) as producer:
        futures = []
        deadline = time.monotonic() + timeout_s
        for i in range(n):
            if time.monotonic() > deadline:
                break
            key = b"k%d" % (i % 5)
            seq = seqs.get(key, 0)
            seqs[key] = seq + 1
            value = make_value(i % 5, seq)
            history.invoke(value, key)
            futures.append((value, producer.send(topic, key=key, value=value, partition=i % partitions)))
            if during is not None and at is not None and i == at:
                for v, f in futures:
                    settle(history, v, f)
                futures = []
                during()
            if len(futures) >= 200:
                for v, f in futures:
                    settle(history, v, f)
                futures = []
        for v, f in futures:
            settle(history, v, f)


def settle(history, value, future):
    try:
        md = future.result(timeout=90)
        history.ok(value, md.partition, md.offset)
    except Exception as exc:  # noqa: BLE001 - an unknown outcome: indeterminate, never "lost"
        history.info(value, exc)


def failover(cluster, workers, report):
    admin = rayka.Admin()
    admin.create_topic("jepsen", partitions=3, replication_factor=3, config=REPLICATED)
    desc = admin.describe_topic("jepsen")
    # The partition whose leader sits on a worker node (the coordinator lives on the head).
    target = next(p for p in range(3) if desc.partitions[p].leader in workers)
    victim = workers[desc.partitions[target].leader]
    history = History()
    removed = {}

    def remove():
        removed["at"] = time.monotonic()
        cluster.remove_node(victim)
        del workers[victim.node_id]

    produce_checked("jepsen", 3, 3000, history, during=remove, at=1000)
    # How long the partition took to accept writes again after the removal.
    with rayka.Producer(acks="all", delivery_timeout_ms=60_000, retry_backoff_ms=50) as p:
        probe = make_value("probe", 0)
        history.invoke(probe, b"probe")
        settle(history, probe, p.send("jepsen", key=b"probe", value=probe, partition=target))
    new_desc = admin.describe_topic("jepsen")
    report["failover_leader_changed"] = new_desc.partitions[target].leader_epoch > desc.partitions[target].leader_epoch
    result = check(history, read_back("jepsen", 3))
    report["failover"] = verdict(result)
    report["failover_first_ack_s"] = history.unavailable_s(removed["at"], partition=target)


def _restore_three_nodes(cluster, workers):
    while len(workers) < 2:
        node = cluster.add_node(num_cpus=1)
        workers[node.node_id] = node
    cluster.wait_for_nodes()


def acks1_window(cluster, workers, report):
    """acks=1 loses what the leader acknowledged before its followers copied it; acks="all" does not."""
    _restore_three_nodes(cluster, workers)
    admin = rayka.Admin()
    for acks, topic in ((1, "window1"), ("all", "window-all")):
        # A long lag bound: the paused followers must stay in the ISR, so that one is elected.
        admin.create_topic(topic, partitions=1, replication_factor=3,
                           config={**REPLICATED, "replica.lag.time.max.ms": 20_000})
        with rayka.Producer(acks="all") as p:  # one record everyone has
            p.send(topic, key=b"k0", value=make_value(0, 0), partition=0).result(timeout=30)
        desc = admin.describe_topic(topic)
        leader = desc.partitions[0].leader_replica
        followers = [r for r in desc.partitions[0].replica_ids if r != leader]
        wait_until(lambda: admin.describe_topic(topic).partitions[0].log_end_offset == 1, 10, "first record")
        pids = [replica_pid(topic, 0, r) for r in followers]
        leader_pid = replica_pid(topic, 0, leader)
        history = History()
        history.invoke(make_value(0, 0), b"k0")
        history.ok(make_value(0, 0), 0, 0)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        # The fetch each follower had waiting at the leader ends (empty) after its 0.5 s long-poll; only
        # then is nothing in flight that could carry the records below to a paused follower.
        time.sleep(1.5)
        try:
            with rayka.Producer(acks=acks, idempotent=True, delivery_timeout_ms=60_000, retry_backoff_ms=100,
                                linger_ms=0) as p:
                futures = []
                for seq in range(1, 21):
                    value = make_value(0, seq)
                    history.invoke(value, b"k0")
                    futures.append((value, p.send(topic, key=b"k0", value=value, partition=0)))
                if acks == 1:
                    for v, f in futures:
                        settle(history, v, f)
                else:
                    time.sleep(0.5)  # the sends are in flight at the leader, waiting for the paused followers
                ray.kill(replica_handle(topic, 0, leader)[0], no_restart=True)
                # ray.kill only asks: resumed followers must find the leader gone, or their next fetch
                # would still copy the records and nothing would be lost.
                wait_until(lambda: not process_alive(leader_pid), 30, f"{topic}: the killed leader's process exits")
                for pid in pids:
                    os.kill(pid, signal.SIGCONT)
                pids = []
                for v, f in futures:
                    if acks != 1:
                        settle(history, v, f)
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)
        wait_until(lambda: admin.describe_topic(topic).partitions[0].leader_replica in followers, 30,
                   f"{topic}: a follower leads")
        # The new leader serves up to its high watermark: a follower paused before it learned that
        # record 0 was committed serves nothing until the other one fetched from it (on a busy
        # machine that comes after the election). Read back once record 0 is served again.
        wait_until(lambda: (admin.list_offsets(topic).get(0) or (0, 0))[1] >= 1, 30,
                   f"{topic}: the new leader serves the record every replica had")
        result = check(history, read_back(topic, 1))
        report[f"acks_{acks}"] = verdict(result)


def fencing(cluster, workers, report):
    """A paused leader is replaced; resumed, it cannot make an append visible, and it truncates."""
    _restore_three_nodes(cluster, workers)
    admin = rayka.Admin()
    admin.create_topic("fence", partitions=1, replication_factor=3, config=REPLICATED)
    with rayka.Producer(acks="all") as p:
        for i in range(10):
            p.send("fence", value=b"before-%d" % i, partition=0)
    desc = admin.describe_topic("fence")
    old = desc.partitions[0].leader_replica
    old_epoch = desc.partitions[0].leader_epoch
    old_handle, _ = replica_handle("fence", 0, old)
    pid = replica_pid("fence", 0, old)
    os.kill(pid, signal.SIGSTOP)
    try:
        wait_until(lambda: admin.describe_topic("fence").partitions[0].leader_epoch > old_epoch, 30,
                   "a new leader elected while the old one is paused")
        with rayka.Producer(acks="all", delivery_timeout_ms=30_000) as p:
            for i in range(10):
                p.send("fence", value=b"after-%d" % i, partition=0)
    finally:
        os.kill(pid, signal.SIGCONT)
    table = pa.table({"value": pa.array([b"fenced"], pa.binary())})
    try:
        ray.get(old_handle.append.remote(table, None, -1, 1, old_epoch), timeout=30)
        report["fence_append"] = "accepted"
    except Exception as exc:  # noqa: BLE001 - refused: what we want to know is its type
        report["fence_append"] = type(getattr(exc, "cause", None) or exc).__name__
    try:
        answer = ray.get(old_handle.fetch.remote(0, 1000, 1 << 20, 0, True, old_epoch), timeout=30)
        report["fence_old_view_hw"] = answer.high_watermark
    except Exception as exc:  # noqa: BLE001
        report["fence_old_view_hw"] = type(getattr(exc, "cause", None) or exc).__name__
    new = admin.describe_topic("fence").partitions[0]
    data_dir = RC.data_dir
    wait_until(lambda: len({tuple(replica_records(data_dir, "fence", 0, r)) for r in new.replica_ids}) == 1,
               30, "every replica holds the same records")
    final = replica_records(data_dir, "fence", 0, old)
    report["fence_values"] = [v.decode() for _, _, v in final]
    report["fence_old_role"] = ray.get(old_handle.status.remote(), timeout=10).role


def healing(cluster, workers, report):
    """A follower's node is gone for good: a replacement on a new node restores RF=3."""
    _restore_three_nodes(cluster, workers)
    admin = rayka.Admin()
    admin.create_topic("heal", partitions=1, replication_factor=3, config=REPLICATED)
    with rayka.Producer(acks="all") as p:
        for i in range(300):
            p.send("heal", value=b"v%d" % i, partition=0)
    desc = admin.describe_topic("heal").partitions[0]
    lost = next(r for r in desc.replica_ids if r != desc.leader_replica and desc.replicas[desc.replica_ids.index(r)]
                in workers)
    node = workers.pop(desc.replicas[desc.replica_ids.index(lost)])
    cluster.remove_node(node)
    started = time.monotonic()
    _restore_three_nodes(cluster, workers)

    def healed():
        p = admin.describe_topic("heal").partitions[0]
        return p if lost not in p.replica_ids and len(p.isr) == 3 else None

    after = wait_until(healed, 90, "the replication factor restored")
    report["heal_seconds"] = round(time.monotonic() - started, 1)
    report["heal_replicas"] = list(after.replica_ids)
    data_dir = RC.data_dir
    logs = {r: replica_records(data_dir, "heal", 0, r) for r in after.replica_ids}
    report["heal_identical"] = len({tuple(v) for v in logs.values()}) == 1
    report["heal_records"] = len(next(iter(logs.values())))


def reassign(cluster, workers, report):
    """A partition's replicas move to another node: the new replica copies, joins the ISR, the old
    one is removed (its files too), and the records are the same on every replica."""
    _restore_three_nodes(cluster, workers)
    admin = rayka.Admin()
    admin.create_topic("moving", partitions=1, replication_factor=2, config={"min.insync.replicas": 1})
    with rayka.Producer(acks="all") as p:
        for i in range(200):
            p.send("moving", value=b"m%d" % i, partition=0)
    before = admin.describe_topic("moving").partitions[0]
    alive = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
    spare = next(n for n in alive if n not in before.replicas)
    leaving = next(r for r in before.replica_ids if r != before.leader_replica)
    target = [before.leader, spare]
    admin.reassign_partitions("moving", {0: target})

    def moved():
        p = admin.describe_topic("moving").partitions[0]
        return p if set(p.replicas) == set(target) and len(p.isr) == 2 else None

    after = wait_until(moved, 60, "the replicas on the target nodes, in sync")
    report["reassign_nodes_ok"] = set(after.replicas) == set(target)
    report["reassign_removed"] = leaving not in after.replica_ids
    base = Path(RC.data_dir) / "topics" / "moving" / "0"
    gone = base if leaving == 0 else base.with_name(f"0.r{leaving}")
    wait_until(lambda: not gone.exists(), 30, "the removed replica's files deleted")
    logs = {r: replica_records(RC.data_dir, "moving", 0, r) for r in after.replica_ids}
    report["reassign_identical"] = len({tuple(v) for v in logs.values()}) == 1
    report["reassign_records"] = len(next(iter(logs.values())))


def follower_reads(cluster, workers, report):
    """A consumer on a follower's node with client_rack="local" reads from that follower (KIP-392),
    and never past the HW: with the other follower paused, records the leader and the local
    follower hold but the paused one lacks (acks=1, so not committed) are not shown."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    _restore_three_nodes(cluster, workers)
    admin = rayka.Admin()
    # A long lag bound: the paused follower stays in the ISR, so the HW stays put while it is paused.
    admin.create_topic("nearby", partitions=1, replication_factor=3,
                       config={**REPLICATED, "replica.lag.time.max.ms": 20_000})
    n, extra = 400, 50
    with rayka.Producer(acks="all", linger_ms=2) as p:
        futures = [p.send("nearby", value=b"near-%d" % i, partition=0) for i in range(n)]
        offsets = [f.result(timeout=60).offset for f in futures]
    desc = wait_until(lambda: (d := admin.describe_topic("nearby").partitions[0]) and len(d.isr) == 3 and d, 30,
                      "every replica of nearby in sync")
    follower, other = [r for r in desc.replica_ids if r != desc.leader_replica]
    node = desc.replicas[desc.replica_ids.index(follower)]
    report["nearby_acked"] = offsets == list(range(n))
    report["nearby_follower"], report["nearby_follower_is_off_the_leaders_node"] = follower, node != desc.leader

    @ray.remote(num_cpus=0, max_retries=0)
    def read_locally(count):
        import time as t

        import ray as r

        import rayka as rk

        rk.connect(cluster_name="repl")
        c = rk.Consumer("nearby", client_rack="local", auto_offset_reset="earliest")
        values, deadline = [], t.monotonic() + 30
        while len(values) < count and t.monotonic() < deadline:
            values += [(rec.offset, rec.value) for rec in c.poll(timeout_ms=500)]
        more_until = t.monotonic() + 1.5  # long enough for several long-polls at the follower
        while t.monotonic() < more_until:
            values += [(rec.offset, rec.value) for rec in c.poll(timeout_ms=300)]
        m = c.metrics()
        c.close()
        return {"values": values, "node": r.get_runtime_context().get_node_id(),
                "read_replicas": {tp.partition: v for tp, v in m["read_replicas"].items()},
                "from_followers": m["records_fetched_from_followers"], "fallbacks": m["read_replica_fallbacks"],
                "fetched": m["records_fetched"]}

    status = lambda r: ray.get(replica_handle("nearby", 0, r)[0].status.remote(), timeout=30)  # noqa: E731
    pid = replica_pid("nearby", 0, other)
    os.kill(pid, signal.SIGSTOP)
    try:
        with rayka.Producer(acks=1, linger_ms=0) as p:
            for i in range(n, n + extra):
                p.send("nearby", value=b"near-%d" % i, partition=0).result(timeout=30)
        wait_until(lambda: status(follower).log_end_offset == n + extra, 20, "the local follower copies the rest")
        report["nearby_hw_while_paused"] = status(desc.leader_replica).high_watermark
        strategy = NodeAffinitySchedulingStrategy(node, soft=False)
        out = ray.get(read_locally.options(scheduling_strategy=strategy).remote(n), timeout=90)
        local = status(follower)
        report["nearby_follower_log_end"], report["nearby_follower_isr"] = local.log_end_offset, list(local.isr)
    finally:
        os.kill(pid, signal.SIGCONT)
    report["nearby_in_order"] = out["values"] == [(i, b"near-%d" % i) for i in range(n)]
    report["nearby_read"] = len(out["values"])
    report["nearby_on_node"] = out["node"] == node
    report["nearby_served_by"] = out["read_replicas"].get(0)
    report["nearby_from_followers"], report["nearby_fetched"] = out["from_followers"], out["fetched"]
    report["nearby_fallbacks"] = out["fallbacks"]


def chaos(cluster, workers, report):
    """The checker under a loop of faults (fixed seed): replicas and the coordinator killed, a node
    removed and another added, while a producer sends and a group consumer processes and commits."""
    import random
    import threading

    _restore_three_nodes(cluster, workers)
    admin = rayka.Admin()
    admin.create_topic("chaos", partitions=3, replication_factor=3, config=REPLICATED)
    history = History()
    processed = set()
    stop = threading.Event()
    errors = []

    def consume():
        try:
            c = rayka.Consumer("chaos", group_id="chaos-g", auto_offset_reset="earliest", enable_auto_commit=False)
            deadline = time.monotonic() + 240
            while not stop.is_set() and time.monotonic() < deadline:
                records = c.poll(timeout_ms=300, max_records=2000)
                if records:
                    processed.update(r.value for r in records)  # "process", then commit
                    try:
                        c.commit()
                    except rayka.errors.RaykaError:
                        pass  # a rebalance or the coordinator restarting: processed again later, at least once
            c.close()
        except Exception as exc:  # noqa: BLE001 - reported
            errors.append(f"consumer: {type(exc).__name__}: {exc}")

    rng = random.Random(7)
    actions = []

    def faults():
        meta_id = topic_id("chaos")
        for i in range(8):
            time.sleep(1.5)
            kind = rng.choice(CHAOS_KINDS)
            try:
                if kind == "replica":
                    p, r = rng.randrange(3), rng.choice(admin.describe_topic("chaos").partitions[0].replica_ids)
                    name = f"rayka:repl:p:{meta_id}:{p}" + (f".r{r}" if r else "")
                    ray.kill(ray.get_actor(name, namespace="rayka"), no_restart=True)
                elif kind == "coordinator":
                    ray.kill(ray.get_actor("rayka:repl:coordinator", namespace="rayka"), no_restart=False)
                elif len(workers) >= 2:
                    node_id = rng.choice(sorted(workers))
                    cluster.remove_node(workers.pop(node_id))
                    _restore_three_nodes(cluster, workers)
                actions.append(kind)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is listed
                actions.append(f"{kind} failed: {type(exc).__name__}: {str(exc)[:120]}")

    consumer = threading.Thread(target=consume)
    producer = threading.Thread(target=produce_checked, args=("chaos", 3, 3000, history), kwargs={"timeout_s": 150})
    consumer.start()
    producer.start()
    faults()  # in the main thread: a Cluster adds and removes nodes only there
    producer.join(timeout=200)
    acked = {v for v, op in history.ops().items() if op.state == "ok"}
    deadline = time.monotonic() + 90
    while not acked <= processed and time.monotonic() < deadline:
        time.sleep(0.2)
    stop.set()
    consumer.join(timeout=60)
    report["chaos_actions"] = actions
    report["chaos_after"] = [(p.partition, p.leader_replica, p.replica_ids, p.isr, p.leader_epoch, p.available)
                             for p in admin.describe_topic("chaos").partitions]
    result = check(history, read_back("chaos", 3))
    report["chaos"] = verdict(result)
    report["chaos_unprocessed"] = len(acked - processed)
    report["chaos_errors"] = errors


def multinode(cluster, workers, report):
    """test_multinode.py's scenario (``_multinode_scenario.run``) on this cluster, with a rayka
    cluster of its own. Last of all: the node it removes stays removed, and it leaves its own
    rayka cluster as the current one."""
    import _multinode_scenario

    # The scenarios before are done: their replicas (and their fetch loops) would only load the
    # two cores under this one.
    RC.shutdown(delete_data=True)
    _restore_three_nodes(cluster, workers)
    wait_until(lambda: len([n for n in ray.nodes() if n["Alive"]]) == 3, 30, "the removed nodes reported dead")
    report["multinode"] = _multinode_scenario.run(cluster, list(workers.values()),
                                                  str(Path(RC.data_dir).with_name("multi-data")))


def main(data_dir: str, scenarios: list[str]) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, include_dashboard=False)
    workers = {n.node_id: n for n in nodes}
    global RC
    RC = rayka.connect(data_dir=data_dir, cluster_name="repl")
    report = {"nodes": len([n for n in ray.nodes() if n["Alive"]])}
    for name in scenarios:
        started = time.monotonic()
        try:
            globals()[name](cluster, workers, report)
        except Exception as exc:  # noqa: BLE001 - reported, the test fails on it
            import traceback

            report[f"{name}_error"] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc()[-3000:]}"
        report[f"{name}_seconds"] = round(time.monotonic() - started, 1)
        print(json.dumps({"progress": name, "seconds": report[f"{name}_seconds"]}), flush=True)
    print(json.dumps(report), flush=True)
    ray.shutdown()
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
