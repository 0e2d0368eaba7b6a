"""The gateway's cluster and admin handlers over the in-memory backend: FindCoordinator,
CreateTopics, DeleteTopics, CreatePartitions, DescribeConfigs; the error-code table; options."""

from __future__ import annotations

import asyncio
import logging

import pytest
from gateway_client import call
from gateway_fakes import FakeBackend
from kafka.protocol.admin import (CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest,
                                  DescribeConfigsRequest)
from kafka.protocol.metadata import FindCoordinatorRequest

from rayka import errors as E
from rayka.gateway import apis
from rayka.gateway.errors import Code, ProtocolError, error_code
from rayka.gateway.session import Connection, GatewayOptions


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def setup(partitions=2, **options):
    backend = FakeBackend()
    asyncio.run(backend.create_topic("t", partitions, 1, {}))
    return backend, Connection(backend, broker_id=0, options=GatewayOptions(**options))


# -- FindCoordinator


@pytest.mark.parametrize("version", [0, 1, 3])
def test_find_coordinator_is_this_broker(version):
    _, conn = setup()
    resp = run(call(conn, FindCoordinatorRequest[version](key="g", key_type=0)))
    assert (resp.error_code, resp.node_id, resp.host, resp.port) == (0, 0, "127.0.0.1", 9092)
    if version >= 1:
        resp = run(call(conn, FindCoordinatorRequest[version](key="tx", key_type=1)))
        assert resp.error_code == Code.COORDINATOR_NOT_AVAILABLE


def test_find_coordinator_v4_batched_keys():
    _, conn = setup()
    resp = run(call(conn, FindCoordinatorRequest[4](key_type=0, coordinator_keys=["a", "b"])))
    assert [(c.key, c.node_id, c.port, c.error_code) for c in resp.coordinators] == [("a", 0, 9092, 0),
                                                                                      ("b", 0, 9092, 0)]


# -- topic admin


@pytest.mark.parametrize("version", sorted({0, 4, apis.VERSIONS[19][1]}))
def test_create_topics(version):
    backend, conn = setup()
    CT = CreateTopicsRequest.CreatableTopic
    cfg = CT.CreatableTopicConfig

    def topic(name, parts, rf=1, configs=()):
        return CT(name=name, num_partitions=parts, replication_factor=rf, assignments=[],
                  configs=[cfg(name=k, value=v) for k, v in configs])

    req = CreateTopicsRequest[version](topics=[topic("a", 3, configs=[("retention.ms", "1000")]), topic("t", 1),
                                               topic("bad/name", 1), topic("z", 0), topic("d", -1, rf=-1),
                                               topic("r", 1, rf=3)],
                                       timeout_ms=1000, validate_only=False)
    resp = run(call(conn, req))
    codes = {t.name: t.error_code for t in resp.topics}
    assert codes == {"a": 0, "t": Code.TOPIC_ALREADY_EXISTS, "bad/name": Code.INVALID_TOPIC_EXCEPTION,
                     "z": Code.INVALID_PARTITIONS, "d": 0, "r": Code.INVALID_REPLICATION_FACTOR}
    assert len(backend.topics["a"]) == 3 and len(backend.topics["d"]) == 1
    assert ("create_topic", "a", 3, 1, {"retention.ms": "1000"}) in backend.calls
    if version >= 5:  # what was created, as the topic now is
        a = next(t for t in resp.topics if t.name == "a")
        assert (a.num_partitions, a.replication_factor) == (3, 1)
        assert {c.name: c.value for c in a.configs}["retention.ms"] == "1000"


@pytest.mark.parametrize("version", sorted({0, 3, apis.VERSIONS[20][1]}))
def test_delete_topics(version):
    backend, conn = setup()
    resp = run(call(conn, DeleteTopicsRequest[version](topic_names=["t", "nope"], timeout_ms=1000)))
    assert {r.name: r.error_code for r in resp.responses} == {"t": 0, "nope": Code.UNKNOWN_TOPIC_OR_PARTITION}
    assert "t" not in backend.topics


@pytest.mark.parametrize("version", sorted({0, 1, apis.VERSIONS[37][1]}))
def test_create_partitions(version):
    backend, conn = setup(partitions=2)
    CPT = CreatePartitionsRequest.CreatePartitionsTopic
    req = CreatePartitionsRequest[version](topics=[CPT(name="t", count=5, assignments=None),
                                                   CPT(name="nope", count=2, assignments=None)],
                                           timeout_ms=1000, validate_only=False)
    resp = run(call(conn, req))
    assert {r.name: r.error_code for r in resp.results} == {"t": 0, "nope": Code.UNKNOWN_TOPIC_OR_PARTITION}
    assert len(backend.topics["t"]) == 5
    resp = run(call(conn, CreatePartitionsRequest[version](topics=[CPT(name="t", count=3, assignments=None)],
                                                           timeout_ms=1000, validate_only=False)))
    assert resp.results[0].error_code == Code.INVALID_PARTITIONS


@pytest.mark.parametrize("version", sorted({0, 1, 2, apis.VERSIONS[32][1]}))
def test_describe_configs(version):
    backend, conn = setup()
    backend.meta_extra["t"]["config"] = {"cleanup.policy": "delete"}
    R = DescribeConfigsRequest.DescribeConfigsResource
    req = DescribeConfigsRequest[version](resources=[R(resource_type=2, resource_name="t", configuration_keys=None),
                                                     R(resource_type=2, resource_name="t",
                                                       configuration_keys=["retention.ms"]),
                                                     R(resource_type=2, resource_name="nope", configuration_keys=None),
                                                     R(resource_type=4, resource_name="0", configuration_keys=None)],
                                          include_synonyms=False, include_documentation=False)
    r_all, r_one, r_none, r_broker = run(call(conn, req)).results
    assert {c.name: c.value for c in r_all.configs} == {"retention.ms": "604800000", "cleanup.policy": "delete"}
    assert [c.name for c in r_one.configs] == ["retention.ms"]
    assert r_none.error_code == Code.UNKNOWN_TOPIC_OR_PARTITION
    assert (r_broker.error_code, r_broker.configs) == (0, [])


# -- error codes


@pytest.mark.parametrize("exc, code", [
    (E.UnknownTopicError("x"), 3), (E.UnknownPartitionError("x"), 3), (E.OffsetOutOfRangeError("x"), 1),
    (E.RecordTooLargeError("x"), 10), (E.InvalidTopicError("x"), 17), (E.CorruptRecordError("x"), 2),
    (E.CoordinatorUnavailableError("x"), 14), (E.NotLeaderError("x"), 6), (E.FencedLeaderEpochError("x"), 74),
    (E.RebalanceInProgressError("x"), 27), (E.IllegalGenerationError("x"), 22), (E.UnknownMemberError("x"), 25),
    (E.CommitFailedError("x"), 22), (E.OutOfOrderSequenceError("x"), 45), (E.DuplicateSequenceError("x"), 46),
    (E.TopicExistsError("x"), 36), (E.NotEnoughReplicasError("x"), 19), (E.KafkaTimeoutError("x"), 7),
    (E.InconsistentGroupProtocolError("x"), 23), (E.UnknownGroupError("x"), 69), (E.GroupNotEmptyError("x"), 68),
    (ProtocolError("x"), 42), (E.DiskFullError("x"), 56), (E.PartitionUnavailableError("x"), 6),
    (E.FencedInstanceIdError("x"), 82),
    (E.InvalidProducerEpochError("x"), 47),
    (E.GroupMaxSizeReachedError("x"), 81),
    (E.InvalidReplicationFactorError("x"), 38),  # a ConfigError, whose own code is INVALID_CONFIG
])
def test_error_codes(exc, code):
    assert error_code(exc) == code


def test_unexpected_error_is_unknown_server_error_with_a_log_line(caplog):
    with caplog.at_level(logging.ERROR, logger="rayka.gateway"):
        assert error_code(RuntimeError("boom"), "in a test") == Code.UNKNOWN_SERVER_ERROR
    assert "boom" in caplog.text and "in a test" in caplog.text


def test_gateway_options_are_checked():
    with pytest.raises(E.ConfigError, match="default_partitions"):
        GatewayOptions(default_partitions=0)
    with pytest.raises(E.ConfigError, match="max_request_bytes"):
        GatewayOptions(max_request_bytes=10)
