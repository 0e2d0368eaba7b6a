"""The Kafka gateway's Ray side: RayBackend over a real rayka cluster, the gateway actors
(rayka.gateway.start/stop), and the ``rayka gateway`` command answering on its port.
(Group methods are not tested here: the coordinator's client-assigned group calls are
another branch's work.)"""

import asyncio
import os
import socket
import subprocess
import sys
import time

import pyarrow as pa
import pytest
import ray

import rayka
import rayka.gateway
from rayka.actors import _ray
from rayka.clients.gateway_backend import RayBackend, broker_id
from rayka.partitions.records import input_schema


def _run(coro):
    return asyncio.run(coro)


NOW = int(time.time() * 1000)


def _batch(n, start=0, ts=NOW):
    schema = input_schema()
    return pa.RecordBatch.from_pydict({
        "timestamp_ms": [ts + i for i in range(n)],
        "key": [b"k%d" % (start + i) for i in range(n)],
        "headers": [[] for _ in range(n)],
        "value": [b"v%d" % (start + i) for i in range(n)],
    }, schema=schema)


@pytest.fixture
def backend(cluster):
    return RayBackend.from_cluster(cluster, port=9999)


def test_backend_topics_records_and_offsets(backend, admin):
    async def scenario():
        await backend.create_topic("gw-t", 2, 1, {"retention.ms": "3600000"})
        assert "gw-t" in await backend.list_topics()
        meta = await backend.topic("gw-t")
        assert [p.partition for p in meta.partitions] == [0, 1] and not meta.typed
        assert len(meta.topic_id) == 16 and meta.config["retention.ms"] == "3600000"
        assert await backend.topic("no-such-topic") is None
        first = await backend.append("gw-t", 1, _batch(5), None, -1, 1)
        second = await backend.append("gw-t", 1, _batch(3, start=5, ts=NOW + 1_000), None, -1, -1)
        assert (first.base_offset, first.count, second.base_offset, second.count) == (0, 5, 5, 3)
        fetched = await backend.fetch("gw-t", 1, 0, 1 << 20, 100)
        assert (fetched.offset, fetched.next_offset, fetched.high_watermark) == (0, 8, 8) and fetched.schema
        empty = await backend.fetch("gw-t", 1, 8, 1 << 20, 50)  # the long poll ends with nothing
        assert empty.records == 0
        assert tuple(await backend.offsets("gw-t", 1)) == (0, 8)
        assert tuple(await backend.offsets("gw-t", 0)) == (0, 0)
        hit = await backend.offset_for_time("gw-t", 1, NOW + 1_001)
        assert (hit.offset, hit.timestamp_ms) == (6, NOW + 1_001)
        assert await backend.offset_for_time("gw-t", 1, NOW + 60_000) is None
        assert (await backend.describe_topic_config("gw-t"))["retention.ms"] == "3600000"
        await backend.create_partitions("gw-t", 3)
        assert len((await backend.topic("gw-t")).partitions) == 3
        await backend.delete_topic("gw-t")
        assert await backend.topic("gw-t") is None
        return fetched

    fetched = _run(scenario())
    assert fetched.records == 8 and len(fetched.payload) > 0


def test_backend_advertises_each_leader_on_its_nodes_broker(backend, admin, cluster):
    admin.create_topic("gw-lead", partitions=2)
    node = ray.get_runtime_context().get_node_id()

    async def scenario():
        brokers = await backend.brokers()
        meta = await backend.topic("gw-lead")
        return brokers, meta

    brokers, meta = _run(scenario())
    assert [(b.node_id, b.host, b.port) for b in brokers] == [(broker_id(node), "127.0.0.1", 9999)]
    assert {p.leader for p in meta.partitions} == {broker_id(node)}
    assert all(p.replicas == (broker_id(node),) and p.isr == (broker_id(node),) for p in meta.partitions)
    assert backend.controller_id() == broker_id(node) and backend.cluster_id().startswith("rayka-")


def test_broker_id_is_stable_and_refuses_garbage():
    node = "ab" * 28
    assert broker_id(node) == broker_id(node) == int("abababab", 16) & 0x7FFFFFFF
    with pytest.raises(rayka.errors.ConfigError):
        broker_id("x")


def _gateways(cluster):
    return _ray.named_actors(_ray.gateway_prefix(cluster.cluster_name), cluster.namespace)


def _connects(port, deadline_s=20.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.1)
    return False


def test_start_places_a_gateway_per_node_and_stop_leaves_none(cluster, admin):
    admin.create_topic("gw-nodes", partitions=2)
    started = rayka.gateway.start(port=0, cluster=cluster)
    try:
        assert len(started) == len(_ray.alive_node_ids()) == len(_gateways(cluster))
        bid, host, port = started[0]
        assert host == "127.0.0.1" and port > 0
        assert _connects(port)
        assert rayka.gateway.start(port=0, cluster=cluster) == started  # one per node: kept
        # A gateway on another (made-up) node sees the actor's broker and sends clients there.
        elsewhere = RayBackend(cluster.coordinator, cluster_name=cluster.cluster_name, namespace=cluster.namespace,
                               node_id="f" * 56, port=1)
        brokers = _run(elsewhere.brokers())
        assert [(b.node_id, b.host, b.port) for b in brokers] == sorted([(bid, host, port), (elsewhere.broker_id,
                                                                                            "127.0.0.1", 1)])
        meta = _run(elsewhere.topic("gw-nodes"))
        assert {p.leader for p in meta.partitions} == {bid}
    finally:
        assert rayka.gateway.stop(cluster=cluster) == len(started)
    deadline = time.monotonic() + 20
    while _gateways(cluster) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gateways(cluster) == []


def test_start_refuses_a_bad_port(cluster):
    with pytest.raises(rayka.errors.ConfigError):
        rayka.gateway.start(port=70000, cluster=cluster)
    assert _gateways(cluster) == []


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_cli_gateway_serves_in_the_foreground_until_sigterm(ray_session, tmp_path):
    port = _free_port()
    env = dict(os.environ, RAYKA_CLUSTER=f"gwcli-{os.getpid()}", RAYKA_DATA_DIR=str(tmp_path / "data"))
    env.pop("RAY_ADDRESS", None)
    proc = subprocess.Popen([sys.executable, "-m", "rayka.cli", "--address", ray_session, "gateway",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _connects(port, 90.0), proc.stderr.read1(4096) if proc.poll() is not None else "no answer"
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=60)
    assert f"127.0.0.1:{port}".encode() in out, out + err
    assert proc.returncode == 143, err


def _api_versions_answered(port) -> bool:
    """An ApiVersions v0 request on a fresh connection gets its answer (correlation id 7)."""
    import struct

    frame = struct.pack(">hhih", 18, 0, 7, 1) + b"t"
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(struct.pack(">i", len(frame)) + frame)
        head = s.recv(8, socket.MSG_WAITALL)
    return len(head) == 8 and struct.unpack(">i", head[4:])[0] == 7


def test_a_gateway_killed_by_sigkill_comes_back_on_the_same_port(cluster):
    import signal

    started = rayka.gateway.start(port=0, cluster=cluster)
    try:
        _, _, port = started[0]
        [name] = _gateways(cluster)
        handle = _ray.get_actor(name, cluster.namespace)
        pid = ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=30)
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if ray.get(handle.__ray_call__.remote(lambda self: os.getpid()), timeout=10) != pid:
                    break
            except ray.exceptions.RayError:  # restarting
                time.sleep(0.2)
        assert _connects(port) and _api_versions_answered(port)
        assert ray.get(handle.address.remote(), timeout=30)[2] == port
    finally:
        rayka.gateway.stop(cluster=cluster)
