"""The gateway's protocol core over the in-memory backend: ApiVersions, Metadata, Produce, Fetch,
ListOffsets, InitProducerId, version edges and errors (admin APIs: test_gateway_admin.py). Requests are built with
kafka-python's own request classes and answers decoded with its response classes."""

from __future__ import annotations

import asyncio
import struct
import time

import pytest
from gateway_client import call, decode, frame, kafka_batch, read_kafka_records, values_in
from gateway_fakes import FakeBackend
from kafka.protocol.consumer import FetchRequest, ListOffsetsRequest
from kafka.protocol.metadata import ApiVersionsRequest, MetadataRequest
from kafka.protocol.producer import InitProducerIdRequest, ProduceRequest

from rayka.gateway import apis
from rayka.gateway.errors import Code, UnsupportedApiError
from rayka.gateway.session import Connection, GatewayOptions

PD = ProduceRequest.TopicProduceData
PP = PD.PartitionProduceData
FT = FetchRequest.FetchTopic
FP = FT.FetchPartition
LT = ListOffsetsRequest.ListOffsetsTopic
LP = LT.ListOffsetsPartition


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def setup(partitions=2, **options):
    backend = FakeBackend()
    asyncio.run(backend.create_topic("t", partitions, 1, {}))
    return backend, Connection(backend, broker_id=0, options=GatewayOptions(**options))


def produce_req(version, parts, acks=-1, topic="t"):
    return ProduceRequest[version](transactional_id=None, acks=acks, timeout_ms=1000,
                                   topic_data=[PD(name=topic, partition_data=[PP(index=i, records=r)
                                                                              for i, r in parts])])


def fetch_req(version, parts, max_wait_ms=0, min_bytes=0, max_bytes=2**20, topic="t"):
    return FetchRequest[version](replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=min_bytes, max_bytes=max_bytes,
                                 isolation_level=0, session_id=0, session_epoch=-1,
                                 topics=[FT(topic=topic, partitions=[
                                     FP(partition=i, current_leader_epoch=-1, fetch_offset=o, log_start_offset=-1,
                                        partition_max_bytes=pmax) for i, o, pmax in parts])],
                                 forgotten_topics_data=[], rack_id="")


# -- ApiVersions


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_api_versions_lists_the_table(version):
    _, conn = setup()
    req = ApiVersionsRequest[version](client_software_name="t", client_software_version="1")
    resp = run(call(conn, req))
    assert resp.error_code == 0
    assert {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys} == apis.VERSIONS


def test_api_versions_above_offered_answers_v0_unsupported_version():
    _, conn = setup()
    req = ApiVersionsRequest[4](client_software_name="t", client_software_version="1")
    answer = run(conn.handle(frame(req, correlation_id=77)))
    # size, correlation id (a non-flexible header even though v4 is flexible), then the v0 body
    size, corr, err = struct.unpack_from(">iih", answer)
    assert (size, corr, err) == (len(answer) - 4, 77, Code.UNSUPPORTED_VERSION)
    resp = decode(req, answer)
    assert {k.api_key: (k.min_version, k.max_version) for k in resp.api_keys} == apis.VERSIONS


def test_api_versions_at_an_unknown_version_number_still_answers():
    _, conn = setup()
    # a version the codec has never heard of (librdkafka's probe may send a future one)
    data = struct.pack(">hhih", 18, 99, 5, 1) + b"x" + b"\x00" * 5
    answer = run(conn.handle(data))
    assert struct.unpack_from(">iih", answer)[1:] == (5, Code.UNSUPPORTED_VERSION)


# -- Metadata


@pytest.mark.parametrize("version", sorted({0, 1, 4, 8, apis.VERSIONS[3][1]}))
def test_metadata_all_topics_brokers_and_leaders(version):
    backend, conn = setup(partitions=3)
    req = MetadataRequest[version](topics=[] if version == 0 else None, allow_auto_topic_creation=False)
    resp = run(call(conn, req))
    assert [(b.node_id, b.host, b.port) for b in resp.brokers] == [(0, "127.0.0.1", 9092)]
    [topic] = resp.topics
    assert (topic.name, topic.error_code) == ("t", 0)
    assert [(p.partition_index, p.leader_id, p.replica_nodes, p.isr_nodes) for p in topic.partitions] == [
        (i, 0, [0], [0]) for i in range(3)]
    if version >= 1:
        assert resp.controller_id == 0


def test_metadata_unknown_topic_and_auto_create():
    backend, conn = setup()
    req = MetadataRequest[8](topics=[MetadataRequest.MetadataRequestTopic(name="new")], allow_auto_topic_creation=True)
    [topic] = run(call(conn, req)).topics
    assert topic.error_code == Code.UNKNOWN_TOPIC_OR_PARTITION
    assert "new" not in backend.topics  # auto_create_topics is off by default
    backend, conn = setup(auto_create_topics=True, default_partitions=4)
    [topic] = run(call(conn, req)).topics
    assert (topic.error_code, len(topic.partitions)) == (0, 4)
    req = MetadataRequest[8](topics=[MetadataRequest.MetadataRequestTopic(name="other")],
                             allow_auto_topic_creation=False)
    [topic] = run(call(conn, req)).topics
    assert topic.error_code == Code.UNKNOWN_TOPIC_OR_PARTITION  # the client asked not to create
    req = MetadataRequest[8](topics=[MetadataRequest.MetadataRequestTopic(name="bad name!")],
                             allow_auto_topic_creation=True)
    [topic] = run(call(conn, req)).topics
    assert topic.error_code == Code.INVALID_TOPIC_EXCEPTION


@pytest.mark.parametrize("api_key", sorted(k for k in apis.VERSIONS if k != 18))
def test_versions_outside_the_offered_range_close_the_connection(api_key):
    _, conn = setup()
    lo, hi = apis.VERSIONS[api_key]
    for version in ([lo - 1] if lo > 0 else []) + [hi + 1]:
        # only the header is needed: the version is refused before the body is read
        with pytest.raises(UnsupportedApiError, match=f"v{version} is not served"):
            run(conn.handle(struct.pack(">hhih", api_key, version, 1, -1)))


def test_unknown_api_key_closes_the_connection():
    _, conn = setup()
    with pytest.raises(UnsupportedApiError, match="api key 4242"):
        run(conn.handle(struct.pack(">hhih", 4242, 0, 1, -1)))


# -- Produce


@pytest.mark.parametrize("version", sorted({3, 5, 8, apis.VERSIONS[0][1]}))
def test_produce_appends_and_answers_offsets(version):
    backend, conn = setup()
    req = produce_req(version, [(0, kafka_batch([b"a", b"b"], keys=[b"k", None], headers=[[("h", b"1")], []])),
                                (1, kafka_batch([b"c"]))])
    resp = run(call(conn, req))
    parts = {p.index: p for t in resp.responses for p in t.partition_responses}
    assert {i: (p.error_code, p.base_offset) for i, p in parts.items()} == {0: (0, 0), 1: (0, 0)}
    assert parts[0].log_append_time_ms == -1
    assert values_in(backend, "t", 0) == [b"a", b"b"]
    stored = backend.topics["t"][0].batches[0].to_pydict()
    assert stored["key"] == [b"k", None] and stored["headers"] == [[("h", b"1")], None]
    resp = run(call(conn, req))
    assert [p.base_offset for t in resp.responses for p in t.partition_responses] == [2, 1]


def test_produce_acks_0_has_no_answer_but_appends():
    backend, conn = setup()
    assert run(conn.handle(frame(produce_req(8, [(0, kafka_batch([b"x"]))], acks=0)))) is None
    assert values_in(backend, "t", 0) == [b"x"]


def test_produce_errors_per_partition_and_nothing_of_a_corrupt_batch_is_written():
    backend, conn = setup()
    good = kafka_batch([b"ok"])
    corrupt = bytearray(kafka_batch([b"bad"]))
    corrupt[-1] ^= 0xFF  # the CRC-32C no longer matches
    req = ProduceRequest[8](transactional_id=None, acks=1, timeout_ms=1000, topic_data=[
        PD(name="t", partition_data=[PP(index=0, records=bytes(corrupt)), PP(index=1, records=good),
                                     PP(index=7, records=good)]),
        PD(name="nope", partition_data=[PP(index=0, records=good)])])
    resp = run(call(conn, req))
    codes = {(t.name, p.index): p.error_code for t in resp.responses for p in t.partition_responses}
    assert codes == {("t", 0): Code.CORRUPT_MESSAGE, ("t", 1): 0, ("t", 7): Code.UNKNOWN_TOPIC_OR_PARTITION,
                     ("nope", 0): Code.UNKNOWN_TOPIC_OR_PARTITION}
    msg = {(t.name, p.index): p.error_message for t in resp.responses for p in t.partition_responses}
    assert "CRC" in msg[("t", 0)]
    assert values_in(backend, "t", 0) == [] and values_in(backend, "t", 1) == [b"ok"]


def test_produce_to_a_typed_topic_is_refused():
    backend, conn = setup()
    backend.meta_extra["t"]["typed"] = True
    resp = run(call(conn, produce_req(8, [(0, kafka_batch([b"x"]))])))
    [p] = resp.responses[0].partition_responses
    assert p.error_code == Code.INVALID_RECORD and "value schema" in p.error_message
    assert values_in(backend, "t", 0) == []


def test_produce_bad_acks_and_transactional():
    _, conn = setup()
    [p] = run(call(conn, produce_req(8, [(0, kafka_batch([b"x"]))], acks=2))).responses[0].partition_responses
    assert p.error_code == 21  # INVALID_REQUIRED_ACKS
    req = produce_req(8, [(0, kafka_batch([b"x"]))])
    req.transactional_id = "tx"
    [p] = run(call(conn, req)).responses[0].partition_responses
    assert p.error_code == Code.INVALID_REQUEST


def test_idempotent_produce_carries_the_kafka_producer_and_duplicates_keep_their_offsets():
    backend, conn = setup()

    async def go():
        init = await call(conn, InitProducerIdRequest[1](transactional_id=None, transaction_timeout_ms=1000))
        assert init.error_code == 0
        pid, epoch = init.producer_id, init.producer_epoch
        first = kafka_batch([b"a", b"b"], producer_id=pid, epoch=epoch, sequence=0)
        r1 = await call(conn, produce_req(8, [(0, first)]))
        r2 = await call(conn, produce_req(8, [(0, first)]))  # a retry of the same batch
        r3 = await call(conn, produce_req(8, [(0, kafka_batch([b"c"], producer_id=pid, epoch=epoch, sequence=5))]))
        return pid, epoch, r1, r2, r3

    pid, epoch, r1, r2, r3 = run(go())
    assert [c[4:6] for c in backend.calls if c[0] == "append"][0] == (f"kafka:{pid}:{epoch}", 0)
    p1, p2, p3 = (r.responses[0].partition_responses[0] for r in (r1, r2, r3))
    assert (p1.error_code, p1.base_offset) == (0, 0) and (p2.error_code, p2.base_offset) == (0, 0)
    assert p3.error_code == Code.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert values_in(backend, "t", 0) == [b"a", b"b"]


# -- Fetch


def _fill(conn, values_per_batch, partition=0):
    async def go():
        for vals in values_per_batch:
            await call(conn, produce_req(8, [(partition, kafka_batch(vals))]))
    run(go())


@pytest.mark.parametrize("version", sorted({4, 7, 11, apis.VERSIONS[1][1]}))
def test_fetch_returns_records_with_offsets_keys_headers(version):
    backend, conn = setup()
    run(call(conn, produce_req(8, [(0, kafka_batch([b"a", b"b"], keys=[b"k1", b"k2"],
                                                    headers=[[("x", b"1")], [("y", b"2"), ("z", b"")]]))])))
    resp = run(call(conn, fetch_req(version, [(0, 0, 2**20), (1, 0, 2**20)])))
    parts = {p.partition_index: p for t in resp.responses for p in t.partitions}
    assert (parts[0].error_code, parts[0].high_watermark) == (0, 2)
    assert parts[0].log_start_offset == (0 if version >= 5 else -1)  # -1: the field's default before v5
    recs = read_kafka_records(parts[0].records)
    assert [(o, k, v, h) for o, _, k, v, h in recs] == [(0, b"k1", b"a", [("x", b"1")]),
                                                         (1, b"k2", b"b", [("y", b"2"), ("z", b"")])]
    assert recs[0][1] == 1_700_000_000_000
    assert (parts[1].high_watermark, parts[1].records) == (0, b"")


def test_fetch_inside_a_batch_returns_the_whole_batch_and_one_batch_past_max_bytes():
    backend, conn = setup()
    _fill(conn, [[b"a", b"b", b"c"], [b"d" * 1000], [b"e"]])
    resp = run(call(conn, fetch_req(11, [(0, 1, 2**20)])))
    recs = read_kafka_records(resp.responses[0].partitions[0].records)
    assert [r[0] for r in recs] == [0, 1, 2, 3, 4]  # offset 1 is inside the first batch: all of it
    resp = run(call(conn, fetch_req(11, [(0, 3, 10)], max_bytes=10)))  # smaller than the batch at 3
    recs = read_kafka_records(resp.responses[0].partitions[0].records)
    assert [r[0] for r in recs] == [3]


def test_fetch_total_max_bytes_leaves_later_partitions_for_the_next_fetch():
    backend, conn = setup()
    _fill(conn, [[b"x" * 500]], partition=0)
    _fill(conn, [[b"y" * 500]], partition=1)
    resp = run(call(conn, fetch_req(11, [(0, 0, 2**20), (1, 0, 2**20)], max_bytes=600)))
    sizes = [len(p.records) for p in resp.responses[0].partitions]
    assert sizes[0] > 500 and sizes[1] == 0
    assert resp.responses[0].partitions[1].high_watermark == 1


def test_fetch_long_poll_answers_when_data_arrives():
    backend, conn = setup()

    async def go():
        async def later():
            await asyncio.sleep(0.05)
            await backend.append("t", 1, _input_batch([b"late"]), None, -1, 1)

        t0 = time.monotonic()
        task = asyncio.ensure_future(later())
        resp = await call(conn, fetch_req(11, [(0, 0, 2**20), (1, 0, 2**20)], max_wait_ms=5000, min_bytes=1))
        await task
        return resp, time.monotonic() - t0

    resp, took = run(go())
    parts = {p.partition_index: p for p in resp.responses[0].partitions}
    assert [r[3] for r in read_kafka_records(parts[1].records)] == [b"late"]
    assert parts[0].records == b"" and parts[0].high_watermark == 0
    assert took < 4.0


def test_fetch_long_poll_waits_max_wait_when_nothing_comes():
    backend, conn = setup()

    async def go():
        t0 = time.monotonic()
        resp = await call(conn, fetch_req(11, [(0, 0, 2**20)], max_wait_ms=300, min_bytes=1))
        return resp, time.monotonic() - t0

    resp, took = run(go())
    assert resp.responses[0].partitions[0].records == b"" and 0.25 <= took < 3


def test_fetch_errors():
    backend, conn = setup()
    _fill(conn, [[b"a"]])
    resp = run(call(conn, fetch_req(11, [(0, 5, 2**20), (9, 0, 2**20)])))
    parts = {p.partition_index: p for p in resp.responses[0].partitions}
    assert (parts[0].error_code, parts[0].log_start_offset, parts[0].high_watermark) == (
        Code.OFFSET_OUT_OF_RANGE, 0, 1)
    assert parts[9].error_code == Code.UNKNOWN_TOPIC_OR_PARTITION
    [p] = run(call(conn, fetch_req(11, [(0, 0, 100)], topic="nope"))).responses[0].partitions
    assert p.error_code == Code.UNKNOWN_TOPIC_OR_PARTITION


def _input_batch(values):
    import pyarrow as pa

    from rayka.partitions.records import input_schema
    n = len(values)
    return pa.RecordBatch.from_arrays([pa.array([1] * n, pa.int64()), pa.array([None] * n, pa.binary()),
                                       pa.array([None] * n, input_schema().field("headers").type),
                                       pa.array(values, pa.binary())], schema=input_schema())


# -- ListOffsets, InitProducerId


@pytest.mark.parametrize("version", sorted({1, 5, apis.VERSIONS[2][1]}))
def test_list_offsets_earliest_latest_and_by_time(version):
    backend, conn = setup()
    run(call(conn, produce_req(8, [(0, kafka_batch([b"a", b"b", b"c"], timestamps=[100, 200, 300]))])))

    def ask(ts, partition=0, topic="t"):
        req = ListOffsetsRequest[version](replica_id=-1, isolation_level=0, topics=[
            LT(name=topic, partitions=[LP(partition_index=partition, current_leader_epoch=-1, timestamp=ts)])])
        p = run(call(conn, req)).topics[0].partitions[0]
        return p.error_code, p.offset, p.timestamp

    assert ask(-2) == (0, 0, -1)
    assert ask(-1) == (0, 3, -1)
    assert ask(150) == (0, 1, 200)
    assert ask(999) == (0, -1, -1)
    assert ask(-1, partition=5)[0] == Code.UNKNOWN_TOPIC_OR_PARTITION
    assert ask(-1, topic="nope")[0] == Code.UNKNOWN_TOPIC_OR_PARTITION


@pytest.mark.parametrize("version", sorted({0, 1, apis.VERSIONS[22][1]}))
def test_init_producer_id(version):
    _, conn = setup()
    resp = run(call(conn, InitProducerIdRequest[version](transactional_id=None, transaction_timeout_ms=1000)))
    assert resp.error_code == 0 and resp.producer_id >= 0 and resp.producer_epoch == 0
    resp = run(call(conn, InitProducerIdRequest[version](transactional_id="tx", transaction_timeout_ms=1000)))
    assert resp.error_code == Code.INVALID_REQUEST


def test_fetch_of_no_partitions_waits_max_wait():
    _, conn = setup()

    async def go():
        t0 = time.monotonic()
        req = FetchRequest[11](replica_id=-1, max_wait_ms=200, min_bytes=1, max_bytes=2**20, isolation_level=0,
                               session_id=0, session_epoch=-1, topics=[], forgotten_topics_data=[], rack_id="")
        resp = await call(conn, req)
        return resp, time.monotonic() - t0

    resp, took = run(go())
    assert resp.responses == [] and 0.15 <= took < 3


def test_produce_to_a_log_append_time_topic_answers_the_append_time():
    backend, conn = setup()
    backend.meta_extra["t"]["config"] = {"message.timestamp.type": "LogAppendTime"}
    before = int(time.time() * 1000)
    [p] = run(call(conn, produce_req(8, [(0, kafka_batch([b"x"]))]))).responses[0].partition_responses
    assert p.error_code == 0 and p.log_append_time_ms >= before
    [p] = run(call(conn, produce_req(8, [(1, kafka_batch([b"x"]))], topic="t"))).responses[0].partition_responses
    backend.meta_extra["t"]["config"] = {}
    [p] = run(call(conn, produce_req(8, [(0, kafka_batch([b"y"]))]))).responses[0].partition_responses
    assert p.log_append_time_ms == -1


def test_produce_several_batches_of_a_partition_are_one_append():
    backend, conn = setup()
    records = kafka_batch([b"a", b"b"]) + kafka_batch([b"c"])
    [p] = run(call(conn, produce_req(8, [(0, records)]))).responses[0].partition_responses
    assert (p.error_code, p.base_offset) == (0, 0)
    assert [c[3] for c in backend.calls if c[0] == "append"] == [3]
    assert values_in(backend, "t", 0) == [b"a", b"b", b"c"]


def test_produce_acks_0_never_answers_even_when_refused():
    _, conn = setup()
    req = produce_req(8, [(0, kafka_batch([b"x"]))], acks=0)
    req.transactional_id = "tx"
    assert run(conn.handle(frame(req))) is None
    assert run(conn.handle(frame(produce_req(8, [(0, b"junk")], acks=0)))) is None


def test_fetch_waits_for_min_bytes_even_when_some_records_are_there():
    backend, conn = setup()
    _fill(conn, [[b"early"]], partition=0)

    async def go():
        async def later():
            await asyncio.sleep(0.1)
            await backend.append("t", 0, _input_batch([b"L" * 3000]), None, -1, 1)

        t0 = time.monotonic()
        task = asyncio.ensure_future(later())
        resp = await call(conn, fetch_req(11, [(0, 0, 2**20), (1, 0, 2**20)], max_wait_ms=5000, min_bytes=2000))
        await task
        return resp, time.monotonic() - t0

    resp, took = run(go())
    parts = {p.partition_index: p for p in resp.responses[0].partitions}
    assert [r[3] for r in read_kafka_records(parts[0].records)] == [b"early", b"L" * 3000]
    assert 0.09 <= took < 4.0


def test_fetch_long_poll_asks_each_partition_in_slices():
    backend, conn = setup()
    t0 = time.monotonic()
    resp = run(call(conn, fetch_req(11, [(0, 0, 2**20), (1, 0, 2**20)], max_wait_ms=1200, min_bytes=1)))
    took = time.monotonic() - t0
    waits = [c[4] for c in backend.calls if c[0] == "fetch"]
    assert resp.responses[0].partitions[0].records == b"" and 1.1 <= took < 5
    # An abandoned wait (the client gone, or another partition answered) holds a partition's
    # fetch thread at most one slice: never the client's whole max_wait_ms.
    assert max(waits) <= 250 and len([w for w in waits if w > 0]) >= 8


def test_fetch_answers_an_error_at_once_without_waiting_for_min_bytes():
    backend, conn = setup()
    _fill(conn, [[b"a"]], partition=0)
    t0 = time.monotonic()
    resp = run(call(conn, fetch_req(11, [(0, 7, 2**20), (1, 0, 2**20)], max_wait_ms=3000, min_bytes=1)))
    took = time.monotonic() - t0
    parts = {p.partition_index: p for p in resp.responses[0].partitions}
    assert parts[0].error_code == 1 and parts[0].high_watermark == 1  # OFFSET_OUT_OF_RANGE, with the range
    assert took < 1.0


def test_fetch_with_an_older_leader_epoch_is_fenced():
    backend, conn = setup()
    _fill(conn, [[b"a"]], partition=0)
    backend.leader_epoch = 3  # a new leader since the client read the metadata
    req = fetch_req(11, [(0, 0, 2**20)])
    req.topics[0].partitions[0].current_leader_epoch = 2
    resp = run(call(conn, req))
    assert resp.responses[0].partitions[0].error_code == Code.FENCED_LEADER_EPOCH
    req.topics[0].partitions[0].current_leader_epoch = 3
    resp = run(call(conn, req))
    assert resp.responses[0].partitions[0].error_code == 0 and resp.responses[0].partitions[0].records
