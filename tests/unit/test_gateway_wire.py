"""Framing and bad input: size prefixes, torn frames, pipelined requests answered in order over a
real socket (serve_connection), a closed connection that leaves others served, and a bounded fuzz
(fixed seed) over Connection.handle in which nothing but whole, checksummed batches reaches a log."""

from __future__ import annotations

import asyncio
import logging
import random
import struct

import pytest
from gateway_client import decode, frame, kafka_batch, read_kafka_records, values_in
from gateway_fakes import FakeBackend
from kafka.protocol.admin import CreateTopicsRequest, DescribeConfigsRequest, DescribeGroupsRequest
from kafka.protocol.consumer import (FetchRequest, HeartbeatRequest, JoinGroupRequest, ListOffsetsRequest,
                                     OffsetCommitRequest, SyncGroupRequest)
from kafka.protocol.metadata import ApiVersionsRequest, FindCoordinatorRequest, MetadataRequest
from kafka.protocol.producer import ProduceRequest

from rayka.gateway import wire
from rayka.gateway.errors import Code, FrameTooLargeError, ProtocolError
from rayka.gateway.session import Connection, GatewayOptions, serve_connection

PD = ProduceRequest.TopicProduceData
PP = PD.PartitionProduceData
FT = FetchRequest.FetchTopic
FP = FT.FetchPartition


def run(coro, timeout=30):
    return asyncio.run(asyncio.wait_for(coro, timeout))


def sized(data: bytes) -> bytes:
    return struct.pack(">i", len(data)) + data


def produce(values, acks=1, partition=0):
    return ProduceRequest[8](transactional_id=None, acks=acks, timeout_ms=1000,
                             topic_data=[PD(name="t", partition_data=[
                                 PP(index=partition, records=kafka_batch(values))])])


def fetch(offset=0, max_wait_ms=0):
    return FetchRequest[11](replica_id=-1, max_wait_ms=max_wait_ms, min_bytes=1, max_bytes=2**20, isolation_level=0,
                            session_id=0, session_epoch=-1, topics=[FT(topic="t", partitions=[
                                FP(partition=0, current_leader_epoch=-1, fetch_offset=offset, log_start_offset=-1,
                                   partition_max_bytes=2**20)])], forgotten_topics_data=[], rack_id="")


async def feed(data: bytes, eof=True, max_bytes=wire.MAX_REQUEST_BYTES):
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    if eof:
        reader.feed_eof()
    return await wire.read_frame(reader, max_bytes)


def test_read_frame():
    assert run(feed(sized(b"abcdefgh"))) == b"abcdefgh"
    assert run(feed(b"")) is None  # closed between frames
    with pytest.raises(FrameTooLargeError, match="outside"):
        run(feed(struct.pack(">i", 2**20 + 1) + b"x", max_bytes=2**20))
    with pytest.raises(FrameTooLargeError):
        run(feed(struct.pack(">i", -5)))
    with pytest.raises(FrameTooLargeError):
        run(feed(struct.pack(">i", 0)))
    with pytest.raises(ProtocolError, match="inside a request"):
        run(feed(struct.pack(">i", 100) + b"short"))
    with pytest.raises(ProtocolError, match="inside a size prefix"):
        run(feed(b"\x00\x00"))


def test_a_frame_over_100_mib_is_refused_before_it_is_read():
    # only the prefix is sent: the gateway must not wait for (or buffer) the 100 MiB
    with pytest.raises(FrameTooLargeError, match="104857600"):
        run(feed(struct.pack(">i", 100 * 2**20 + 1), eof=False))


def test_short_and_undecodable_frames():
    conn = Connection(FakeBackend(), broker_id=0)
    with pytest.raises(ProtocolError, match="shorter than a request header"):
        run(conn.handle(b"\x00\x03"))
    good = frame(MetadataRequest[8](topics=None))
    with pytest.raises(ProtocolError, match="does not decode"):
        run(conn.handle(good[:-3]))


class Server:
    """serve_connection on 127.0.0.1:0 inside the test's loop."""

    def __init__(self, backend, options=None):
        self.backend = backend
        self.options = options or GatewayOptions()

    async def __aenter__(self):
        async def client(r, w):
            await serve_connection(r, w, self.backend, broker_id=0, options=self.options)

        self.server = await asyncio.start_server(client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()

    async def connect(self):
        return await asyncio.open_connection("127.0.0.1", self.port)


async def read_answer(reader):
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    return struct.pack(">i", size) + await reader.readexactly(size)


async def closed(reader, timeout=5.0) -> bool:
    """Whether the server closed the connection (EOF) within ``timeout``."""
    try:
        return await asyncio.wait_for(reader.read(), timeout) == b""
    except ConnectionError:
        return True


def test_pipelined_requests_are_answered_in_order_and_handled_in_order():
    backend = FakeBackend()

    async def go():
        await backend.create_topic("t", 1, 1, {})
        async with Server(backend) as srv:
            reader, writer = await srv.connect()
            reqs = [(1, ApiVersionsRequest[3](client_software_name="x", client_software_version="1")),
                    (2, MetadataRequest[8](topics=None)), (3, produce([b"a"], acks=0)), (4, produce([b"b"])),
                    (5, fetch()), (6, FindCoordinatorRequest[3](key="g", key_type=0))]
            writer.write(b"".join(sized(frame(r, c)) for c, r in reqs))  # all in flight at once
            await writer.drain()
            answers = []
            for c, r in reqs:
                if c == 3:
                    continue  # acks=0: no answer
                answers.append((c, decode(r, await read_answer(reader))))
            writer.close()
            return answers

    answers = run(go())
    assert [resp.header.correlation_id for _, resp in answers] == [1, 2, 4, 5, 6]
    fetched = dict(answers)[5].responses[0].partitions[0].records
    assert [r[3] for r in read_kafka_records(fetched)] == [b"a", b"b"]  # both produces were handled first


@pytest.mark.parametrize("garbage", [
    b"\xff\xff\xff\xff",                               # negative size
    struct.pack(">i", 100 * 2**20 + 1),                # over socket.request.max.bytes
    struct.pack(">i", 12) + b"\x7f\x7f" + b"\x00" * 10,  # an api key nobody serves
    struct.pack(">i", 20) + b"\x00\x03\x00\x08" + b"\xff" * 16,  # Metadata that does not decode
    bytes(random.Random(7).getrandbits(8) for _ in range(64)),   # noise
])
def test_bad_input_closes_that_connection_with_a_log_line_and_others_are_served(garbage, caplog):
    backend = FakeBackend()

    async def go():
        await backend.create_topic("t", 1, 1, {})
        async with Server(backend) as srv:
            bad_r, bad_w = await srv.connect()
            good_r, good_w = await srv.connect()
            bad_w.write(garbage)
            await bad_w.drain()
            was_closed = await closed(bad_r)
            good_w.write(sized(frame(MetadataRequest[8](topics=None), 9)))
            await good_w.drain()
            resp = decode(MetadataRequest[8](topics=None), await read_answer(good_r))
            bad_w.close()
            good_w.close()
            return was_closed, resp

    with caplog.at_level(logging.INFO, logger="rayka.gateway"):
        was_closed, resp = run(go())
    assert was_closed
    assert resp.header.correlation_id == 9 and [t.name for t in resp.topics] == ["t"]
    assert "closing connection" in caplog.text or "lost" in caplog.text


def test_a_client_gone_mid_produce_writes_nothing(caplog):
    backend = FakeBackend()

    async def go():
        await backend.create_topic("t", 1, 1, {})
        async with Server(backend) as srv:
            reader, writer = await srv.connect()
            data = sized(frame(produce([b"half"])))
            writer.write(data[: len(data) // 2])
            await writer.drain()
            writer.close()
            await writer.wait_closed()
            # the server notices the torn frame; poll its log until it did (no sleep-and-hope)
            deadline = asyncio.get_running_loop().time() + 5
            while "inside a request" not in caplog.text and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)

    with caplog.at_level(logging.INFO, logger="rayka.gateway"):
        run(go())
    assert "inside a request" in caplog.text
    assert values_in(backend, "t", 0) == []


# -- fuzz

_HOLDING = {1, 11, 14}  # Fetch, JoinGroup, SyncGroup may legitimately be held by a mutated timeout


def _seeds():
    J = JoinGroupRequest
    T = OffsetCommitRequest.OffsetCommitRequestTopic
    LT = ListOffsetsRequest.ListOffsetsTopic
    CT = CreateTopicsRequest.CreatableTopic
    return [
        frame(CreateTopicsRequest[4](topics=[CT(name="new", num_partitions=2, replication_factor=1, assignments=[],
                                                configs=[])], timeout_ms=10, validate_only=False)),
        frame(SyncGroupRequest[3](group_id="g", generation_id=1, member_id="m", group_instance_id=None,
                                  assignments=[SyncGroupRequest.SyncGroupRequestAssignment(member_id="m",
                                                                                         assignment=b"\0\0")])),
        frame(HeartbeatRequest[3](group_id="g", generation_id=1, member_id="m", group_instance_id=None)),
        frame(DescribeGroupsRequest[4](groups=["g"], include_authorized_operations=False)),
        frame(DescribeConfigsRequest[2](resources=[DescribeConfigsRequest.DescribeConfigsResource(
            resource_type=2, resource_name="t", configuration_keys=None)], include_synonyms=False)),
        frame(ApiVersionsRequest[3](client_software_name="fuzz", client_software_version="1")),
        frame(MetadataRequest[8](topics=[MetadataRequest.MetadataRequestTopic(name="t")])),
        frame(MetadataRequest[1](topics=None)),
        frame(produce([b"v0", b"v1", b"v2"])),
        frame(ProduceRequest[3](transactional_id=None, acks=-1, timeout_ms=10, topic_data=[
            PD(name="t", partition_data=[PP(index=1, records=kafka_batch([b"w0"]))])])),
        frame(fetch()),
        frame(ListOffsetsRequest[5](replica_id=-1, isolation_level=0, topics=[LT(name="t", partitions=[
            LT.ListOffsetsPartition(partition_index=0, current_leader_epoch=-1, timestamp=-1)])])),
        frame(FindCoordinatorRequest[3](key="g", key_type=0)),
        frame(J[5](group_id="g", session_timeout_ms=100, rebalance_timeout_ms=100, member_id="",
                   group_instance_id=None, protocol_type="consumer",
                   protocols=[J.JoinGroupRequestProtocol(name="range", metadata=b"m")])),
        frame(OffsetCommitRequest[7](group_id="g", generation_id_or_member_epoch=-1, member_id="",
                                     group_instance_id=None, topics=[T(name="t", partitions=[
                                         T.OffsetCommitRequestPartition(partition_index=0, committed_offset=1,
                                                                        committed_leader_epoch=-1,
                                                                        committed_metadata="")])])),
    ]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    kind = rng.randrange(5)
    if kind == 0:  # flip a few bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif kind == 1:  # truncate
        b = b[: rng.randrange(len(b))]
    elif kind == 2:  # insert junk
        at = rng.randrange(len(b) + 1)
        b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif kind == 3:  # a length field blown up
        at = rng.randrange(max(1, len(b) - 4))
        b[at:at + 4] = struct.pack(">i", rng.choice([2**31 - 1, -2, 2**20, 65535]))
    else:  # noise after a valid header
        b = b[:8] + bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    return bytes(b)


def test_fuzz_connection_handle_fixed_seed():
    rng = random.Random(20261203)
    backend = FakeBackend()
    valid_values = {b"v0", b"v1", b"v2", b"w0"}
    outcomes = {"answer": 0, "none": 0, "closed": 0, "held": 0}

    async def go():
        await backend.create_topic("t", 2, 1, {})
        seeds = _seeds()
        for i in range(1000):
            data = _mutate(rng, rng.choice(seeds)) if i % 10 else bytes(rng.randrange(256)
                                                                        for _ in range(rng.randint(0, 40)))
            conn = Connection(backend, broker_id=0, options=GatewayOptions(group_poll_ms=5))
            key = struct.unpack_from(">h", data)[0] if len(data) >= 2 else -1
            try:
                answer = await asyncio.wait_for(conn.handle(data), 0.5)
            except ProtocolError:
                outcomes["closed"] += 1
                continue
            except asyncio.TimeoutError:
                assert key in _HOLDING, f"case {i}: api {key} hung on {data!r}"
                outcomes["held"] += 1
                continue
            if answer is None:
                outcomes["none"] += 1
                continue
            outcomes["answer"] += 1
            (size,) = struct.unpack_from(">i", answer)
            assert size == len(answer) - 4

    run(go(), timeout=120)
    print(outcomes)
    assert outcomes["closed"] > 100 and outcomes["answer"] > 50, outcomes
    stored = {v for p in range(2) for v in values_in(backend, "t", p)}
    assert stored <= valid_values, stored - valid_values  # only whole, checksummed batches were appended


def test_read_ahead_is_bounded_by_frames_and_bytes():
    from rayka.gateway.session import _ReadAhead

    async def go():
        ra = _ReadAhead(max_frames=3, max_bytes=100)
        await asyncio.wait_for(ra.room(), 1)
        await ra.put(b"x" * 60)
        await asyncio.wait_for(ra.room(), 1)
        await ra.put(b"y" * 60)  # 120 >= 100: no room for a third read
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(ra.room(), 0.05)
        first = await ra.get()
        ra.done(first)
        await asyncio.wait_for(ra.room(), 1)  # 60 left: room again
        await ra.put(None)  # the end always fits
        assert [await ra.get(), await ra.get()] == [b"y" * 60, None]

    run(go())


def test_an_internal_error_closes_the_connection_with_its_traceback_logged(caplog):
    class Broken(FakeBackend):
        async def brokers(self):
            raise RuntimeError("backend bug")

    async def go():
        async with Server(Broken()) as srv:
            reader, writer = await srv.connect()
            writer.write(sized(frame(MetadataRequest[8](topics=None))))
            await writer.drain()
            was_closed = await closed(reader)
            writer.close()
            return was_closed

    with caplog.at_level(logging.ERROR, logger="rayka.gateway"):
        assert run(go())
    assert "internal error" in caplog.text and "backend bug" in caplog.text


def test_bytes_after_a_request_body_are_ignored_as_librdkafka_sends_them():
    # librdkafka 2.16's all-topics Metadata v9, as captured from its admin client: one byte after
    # the body's tagged fields. Refusing it cut every librdkafka admin client off.
    captured = bytes.fromhex("0003000900000005000772646b61666b61000000000001000000")
    request = wire.parse_request(captured)
    assert (request.api_key, request.api_version, request.correlation_id) == (3, 9, 5)
    assert request.body.topics is None and request.client_id == "rdkafka"
    backend = FakeBackend()
    run(backend.create_topic("t", 2, 1, {}))
    answer = run(Connection(backend, broker_id=0).handle(captured))
    assert struct.unpack(">i", answer[:4])[0] == len(answer) - 4
    assert struct.unpack(">i", answer[4:8])[0] == 5  # the correlation id: answered, not closed
    with pytest.raises(ProtocolError):
        wire.parse_request(captured[:-4])  # a body cut short still does not decode


def _produce_frame(values, correlation_id, partition=0, records=None):
    req = produce(values, partition=partition)
    if records is not None:
        req.topic_data[0].partition_data[0].records = records
    return frame(req, correlation_id)


def _answers(answers):
    """Per answer: (correlation id, error code, base offset) of its one partition."""
    out = []
    for answer in answers:
        resp = decode(produce([b""]), answer)
        part = resp.responses[0].partition_responses[0]
        out.append((resp.header.correlation_id, part.error_code, part.base_offset))
    return out


def test_produce_requests_that_queued_up_are_appended_together_and_answered_each():
    backend = FakeBackend()
    run(backend.create_topic("t", 2, 1, {}))
    conn = Connection(backend, broker_id=0)
    good = [_produce_frame([b"r%d-%d" % (k, i) for i in range(3)], 10 + k) for k in range(5)]
    bad = bytearray(kafka_batch([b"torn"]))
    bad[-1] ^= 0xFF  # the CRC no longer matches
    torn = _produce_frame([b""], 20, records=bytes(bad))
    answers, error = run(conn.handle_run(good[:3] + [torn] + good[3:]))
    assert error is None
    assert _answers(answers) == [(10, 0, 0), (11, 0, 3), (12, 0, 6), (20, Code.CORRUPT_MESSAGE, -1),
                                       (13, 0, 9), (14, 0, 12)]
    appends = [c for c in backend.calls if c[0] == "append"]
    assert [(c[2], c[3]) for c in appends] == [(0, 15)]  # one append of the five requests' records
    assert values_in(backend, "t", 0) == [b"r%d-%d" % (k, i) for k in range(5) for i in range(3)]


def test_a_refused_append_of_a_run_is_retried_request_by_request():
    from gateway_fakes import POISON

    backend = FakeBackend()
    run(backend.create_topic("t", 1, 1, {}))
    conn = Connection(backend, broker_id=0)
    frames = [_produce_frame([b"a0", b"a1"], 1), _produce_frame([POISON], 2), _produce_frame([b"c0"], 3)]
    answers, error = run(conn.handle_run(frames))
    assert error is None
    assert _answers(answers) == [(1, 0, 0), (2, Code.INVALID_RECORD, -1), (3, 0, 2)]
    assert values_in(backend, "t", 0) == [b"a0", b"a1", b"c0"]  # nothing of the refused one, order kept


def test_a_frame_that_does_not_decode_ends_a_run_after_the_ones_before_it():
    backend = FakeBackend()
    run(backend.create_topic("t", 1, 1, {}))
    conn = Connection(backend, broker_id=0)
    broken = _produce_frame([b"x"], 2)[:-7]
    answers, error = run(conn.handle_run([_produce_frame([b"first"], 1), broken, _produce_frame([b"never"], 3)]))
    assert isinstance(error, ProtocolError)
    assert _answers(answers) == [(1, 0, 0)]
    assert values_in(backend, "t", 0) == [b"first"]
