"""Records: Produce, Fetch (long-poll), ListOffsets, InitProducerId.

Produce decodes every partition's RecordBatch v2 bytes (``gateway.records``) before
appending anything, so a request whose bytes do not decode leaves no half of itself in
a log; a partition's batches are appended in order, partitions concurrently. An
idempotent batch (producer id >= 0) is appended as producer ``kafka:<pid>:<epoch>``
with its base sequence, which the partition checks like a rayka producer's.

Fetch asks every partition at once without waiting; when that is fewer than
``min_bytes`` it long-polls the partitions that had nothing, concurrently, and answers
once ``min_bytes`` are there or ``max_wait_ms`` passed (each partition not answered by
then keeps its first, empty answer and its bounds).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import pyarrow as pa

from kafka.protocol.consumer import FetchResponse, ListOffsetsResponse
from kafka.protocol.producer import ProduceResponse

from .. import records
from ...partitions.producer_state import kafka_producer_id
from ... import errors as E
from ..stored import stored_batches
from .common import Code, error_code, error_message, response

__all__ = ["produce", "produce_run", "fetch", "list_offsets", "init_producer_id"]

log = logging.getLogger("rayka.gateway")

_PTopic = ProduceResponse.TopicProduceResponse
_PPart = _PTopic.PartitionProduceResponse
_FTopic = FetchResponse.FetchableTopicResponse
_FPart = _FTopic.PartitionData
_LTopic = ListOffsetsResponse.ListOffsetsTopicResponse
_LPart = _LTopic.ListOffsetsPartitionResponse
_INVALID_REQUIRED_ACKS = 21
_EARLIEST, _LATEST, _MAX_TIMESTAMP = -2, -1, -3
_EMPTY_FETCH_WAIT_MS_MAX = 30_000
#: The longest a Fetch waits for min_bytes, whatever max_wait_ms a client asks (fetch.wait.max.ms
#: is 500 ms in librdkafka and the Java client).
MAX_WAIT_MS = 30_000
#: A Fetch's long poll asks each partition for at most this long at a time.
LONG_POLL_SLICE_MS = 250


class _Refused(Exception):
    """A partition's produce refused before any append: its code and message."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


async def _topics(conn, names) -> dict:
    """name -> TopicMeta or the exception its lookup raised (None: no such topic)."""
    names = list(dict.fromkeys(names))

    async def one(name):
        try:
            return await conn.backend.topic(name)
        except E.RaykaError as exc:
            return exc

    return dict(zip(names, await asyncio.gather(*(one(n) for n in names))))


def _check_partition(name, meta, partition):
    if isinstance(meta, Exception):
        raise _Refused(error_code(meta, "looking up a topic"), error_message(meta))
    if meta is None:
        raise _Refused(Code.UNKNOWN_TOPIC_OR_PARTITION, f"topic {name!r} does not exist")
    if not 0 <= partition < len(meta.partitions):
        raise _Refused(Code.UNKNOWN_TOPIC_OR_PARTITION,
                       f"topic {name!r} has no partition {partition} (it has {len(meta.partitions)})")


def _decode_partition(name, meta, partition, data):
    """The decoded batches of one partition's records, or _Refused."""
    _check_partition(name, meta, partition)
    if meta.typed:
        raise _Refused(Code.INVALID_RECORD, f"topic {name!r} has a value schema: it takes rayka's typed "
                                            "producer, not Kafka bytes")
    if data is None:
        raise _Refused(Code.INVALID_RECORD, "null records")
    try:
        batches = records.decode_batches(data)
    except E.RaykaError as exc:  # CorruptRecordError (CORRUPT_MESSAGE), RecordTooLargeError (inflated past limits)
        raise _Refused(error_code(exc, f"decoding records for {name}-{partition}"), error_message(exc)) from None
    for b in batches:
        if b.transactional or b.control:
            raise _Refused(Code.INVALID_RECORD, "transactional batches are not supported by the gateway")
    return batches


def _refused_as_a_whole(body) -> bool:
    """Bad acks or a transactional id: the whole Produce is refused."""
    return body.acks not in (0, 1, -1) or body.transactional_id is not None


def _refusal(conn, request):
    """The answer to a Produce refused as a whole (None for an acks=0 one)."""
    body = request.body
    acks = body.acks
    if acks not in (0, 1, -1):
        return _produce_answer(request, [(t.name, [(p.index, _INVALID_REQUIRED_ACKS, -1, -1, -1,
                                                    f"acks must be 0, 1 or -1, got {acks}")
                                                   for p in t.partition_data]) for t in body.topic_data])
    msg = "transactional producers are not supported by the gateway"
    if acks == 0:
        log.warning("gateway: acks=0 produce from %s refused: %s", conn.peer, msg)
        return None
    return _produce_answer(request, [(t.name, [(p.index, Code.INVALID_REQUEST, -1, -1, -1, msg)
                                               for p in t.partition_data]) for t in body.topic_data])


async def _plan(conn, request) -> tuple[dict, list]:
    """``(metas, [(topic, partition, decoded batches or _Refused)])``: every partition decoded
    before any append starts (a partition whose bytes do not decode is refused alone)."""
    body = request.body
    metas = await _topics(conn, [t.name for t in body.topic_data])
    plan = []
    for t in body.topic_data:
        for p in t.partition_data:
            try:
                plan.append((t.name, p.index, _decode_partition(t.name, metas[t.name], p.index, p.records)))
            except _Refused as exc:
                plan.append((t.name, p.index, exc))
    return metas, plan


async def produce(conn, request):
    """Append each partition's batches; no answer for acks=0."""
    if _refused_as_a_whole(request.body):
        return _refusal(conn, request)
    return await _finish_one(conn, request, *await _plan(conn, request))


def _produce_results(conn, request, plan, results):
    if request.body.acks == 0:
        for (name, index, _), res in zip(plan, results):
            if res[1]:
                log.warning("gateway: acks=0 produce to %s-%d from %s failed: %s", name, index, conn.peer, res[5])
        return None
    by_topic: dict[str, list] = {}
    for (name, _, _), res in zip(plan, results):
        by_topic.setdefault(name, []).append(res)
    return _produce_answer(request, list(by_topic.items()))


async def produce_run(conn, requests: list) -> list:
    """Answers (None for acks=0) to Produce ``requests`` that queued up on one connection, in
    their order, with each partition's plain batches of all of them in one append.

    A connection's produce requests are answered one after another, and each waits for its
    partitions' appends; a client that sends more requests than that allows (librdkafka: one
    per ``linger.ms``) would queue. So what queued is appended together, in request order, and
    each request is answered with its own records' offsets. Idempotent batches (each has its
    sequence), requests with different acks, and anything refused as a whole go the one-by-one way."""
    if len(requests) == 1 or len({r.body.acks for r in requests}) > 1 or any(_refused_as_a_whole(r.body)
                                                                           for r in requests):
        return [await produce(conn, r) for r in requests]
    plans = [await _plan(conn, r) for r in requests]
    if any(b.producer_id >= 0 for _, plan in plans for _, _, work in plan if not isinstance(work, _Refused)
           for b in work):
        return [await _finish_one(conn, r, metas, plan) for r, (metas, plan) in zip(requests, plans)]
    acks = requests[0].body.acks
    spots: dict[tuple[str, int], list[tuple[int, int]]] = {}  # partition -> [(request, plan index)]
    for k, (_, plan) in enumerate(plans):
        for j, (name, index, work) in enumerate(plan):
            if not isinstance(work, _Refused):
                spots.setdefault((name, index), []).append((k, j))
    results = [[None] * len(plan) for _, plan in plans]
    for k, (_, plan) in enumerate(plans):
        for j, (_, index, work) in enumerate(plan):
            if isinstance(work, _Refused):
                results[k][j] = _refused_entry(index, work)

    async def append_together(key, where):
        name, index = key
        meta = plans[where[0][0]][0].get(name)
        works = [plans[k][1][j][2] for k, j in where]
        batches = [b.batch for work in works for b in work if b.batch.num_rows]
        if len(where) > 1 and batches:
            try:
                res = await conn.backend.append(name, index, pa.concat_batches(batches), None, -1, acks)
            except E.RaykaError:
                pass  # one request's records may be at fault: each on its own, in order, below
            else:
                append_time = res.log_append_time_ms if _log_append_time(meta) else -1
                base = res.base_offset
                for (k, j), work in zip(where, works):
                    rows = sum(b.batch.num_rows for b in work)
                    results[k][j] = (index, 0, base if rows else -1, append_time if rows else -1,
                                     res.log_start_offset if rows else -1, None)
                    base += rows
                return
        for (k, j), work in zip(where, works):
            results[k][j] = await _append_partition(conn, meta, name, index, work, acks)

    await asyncio.gather(*(append_together(key, where) for key, where in spots.items()))
    return [_produce_results(conn, r, plan, res) for r, (_, plan), res in zip(requests, plans, results)]


async def _finish_one(conn, request, metas, plan):
    results = await asyncio.gather(*(_append_partition(conn, metas.get(n), n, i, work, request.body.acks)
                                     for n, i, work in plan))
    return _produce_results(conn, request, plan, results)


def _refused_entry(index, refused):
    return index, refused.code, -1, -1, -1, str(refused)


async def _append_partition(conn, meta, name, index, work, acks):
    """``(index, code, base_offset, log_append_time_ms, log_start_offset, message)``."""
    if isinstance(work, _Refused):
        return _refused_entry(index, work)
    first = None
    if len(work) > 1 and all(b.producer_id < 0 for b in work):
        # Kafka appends a partition's batches of one request together: one append, so a failure
        # leaves none of them written (idempotent batches go one by one: each has its sequence).
        work = [dataclasses.replace(work[0], batch=pa.concat_batches([b.batch for b in work]))]
    try:
        for b in work:
            if b.producer_id >= 0 and b.producer_epoch < 0:
                raise E.InvalidProducerEpochError(f"batch of producer {b.producer_id} has epoch "
                                                  f"{b.producer_epoch}: an idempotent batch needs its epoch")
            pid = kafka_producer_id(b.producer_id, b.producer_epoch) if b.producer_id >= 0 else None
            res = await conn.backend.append(name, index, b.batch, pid, b.base_sequence if pid else -1, acks)
            first = first or res
    except E.RaykaError as exc:
        return index, error_code(exc, f"appending to {name}-{index}"), -1, -1, -1, error_message(exc)
    if first is None:
        return index, 0, -1, -1, -1, None
    append_time = first.log_append_time_ms if _log_append_time(meta) else -1
    return index, 0, first.base_offset, append_time, first.log_start_offset, None


def _log_append_time(meta) -> bool:
    """Whether the topic stamps records with the broker's time (Kafka's LogAppendTime)."""
    return str(meta.config.get("message.timestamp.type", "CreateTime")) == "LogAppendTime"


def _produce_answer(request, topics):
    return response(request, throttle_time_ms=0, responses=[
        _PTopic(name=name, partition_responses=[
            _PPart(index=i, error_code=code, base_offset=base, log_append_time_ms=t, log_start_offset=start,
                   record_errors=[], error_message=msg)
            for i, code, base, t, start, msg in parts])
        for name, parts in topics])


def _size(answer) -> int:
    payload = answer.payload
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return len(payload)
    return sum(buf.size for buf in payload)


async def fetch(conn, request):
    """Stored batches from each asked partition, long-polling up to ``max_wait_ms`` for
    ``min_bytes``; per-partition and total ``max_bytes`` hold past the first batch."""
    body = request.body
    asked = [(t.topic, p.partition, p.fetch_offset, p.partition_max_bytes) for t in body.topics for p in t.partitions]
    # v9+: the leader epoch the client last saw (-1: unchecked); an older one is FENCED_LEADER_EPOCH.
    epochs = [p.current_leader_epoch if request.api_version >= 9 else -1 for t in body.topics for p in t.partitions]
    metas = await _topics(conn, [a[0] for a in asked])
    answers: list = [None] * len(asked)
    pending = []
    for i, (name, index, offset, _) in enumerate(asked):
        meta = metas[name]
        try:
            _check_partition(name, meta, index)
            if meta.typed:
                raise _Refused(Code.INVALID_RECORD, f"topic {name!r} has a value schema: not served as Kafka bytes")
        except _Refused as exc:
            answers[i] = exc
            continue
        pending.append(i)

    async def ask(i, offset, wait_ms):
        name, index, _, max_bytes = asked[i]
        try:
            return await conn.backend.fetch(name, index, offset, max(1, max_bytes), wait_ms, epochs[i])
        except E.RaykaError as exc:
            return exc

    wait_ms = min(max(0, body.max_wait_ms), MAX_WAIT_MS)
    deadline = time.monotonic() + wait_ms / 1000
    if not asked and body.min_bytes > 0:
        # Nothing asked (a client keeping its fetch loop alive): no data can come, so wait as Kafka
        # does rather than answer at once into a busy loop.
        await asyncio.sleep(min(wait_ms, _EMPTY_FETCH_WAIT_MS_MAX) / 1000)
    for i, a in zip(pending, await asyncio.gather(*(ask(i, asked[i][2], 0) for i in pending))):
        answers[i] = a
    # Until min_bytes are there (an error answers at once, as Kafka does), wait for records on
    # every asked partition from where its answer ended, in slices of LONG_POLL_SLICE_MS.
    while pending and not any(isinstance(answers[i], Exception) for i in pending):
        left_ms = int((deadline - time.monotonic()) * 1000)
        if sum(_size(answers[i]) for i in pending) >= body.min_bytes or left_ms <= 0:
            break
        resume = {i: answers[i].next_offset if answers[i].records else asked[i][2] for i in pending}
        for i, a in await _records_coming(ask, resume, min(left_ms, LONG_POLL_SLICE_MS)):
            if isinstance(a, Exception) or not answers[i].records:
                answers[i] = a  # asked from the fetch offset itself: the whole answer
            else:  # more behind what it had: read the partition again from the fetch offset
                answers[i] = await ask(i, asked[i][2], 0)
    return await _fetch_answer(request, asked, metas, answers, body.max_bytes)


async def _records_coming(ask, resume: dict[int, int], wait_ms: int) -> list:
    """Long-poll each partition ``i`` from ``resume[i]`` for up to ``wait_ms``; ``(i, answer)`` of
    those that got records or failed, as soon as one did ([] when the wait passed with none).

    The waits still running are cancelled here, but the partition calls behind them run on
    until their own ``wait_ms``: a slice bounds how long an abandoned wait holds a partition's
    fetch thread (a client gone, or another partition answered first)."""
    tasks = {asyncio.ensure_future(ask(i, offset, wait_ms)): i for i, offset in resume.items()}
    found: list = []
    try:
        while tasks and not found:
            done, _ = await asyncio.wait(tasks, timeout=wait_ms / 1000 + 5, return_when=asyncio.FIRST_COMPLETED)
            if not done:
                break  # the backend did not end its wait: answer with what there is
            for task in done:
                i = tasks.pop(task)
                a = task.result()
                if isinstance(a, Exception) or a.records:
                    found.append((i, a))
    finally:
        for task in tasks:
            task.cancel()
    return found


async def _fetch_answer(request, asked, metas, answers, max_bytes):
    # Error entries carry empty records, never null: librdkafka refuses a null record set
    # ("invalid MessageSetSize -1"), and Kafka brokers send an empty one.
    by_topic: dict[str, list] = {}
    total = 0
    for (name, index, offset, part_max), a in zip(asked, answers):
        if isinstance(a, _Refused):
            entry = _FPart(partition_index=index, error_code=a.code, high_watermark=-1, last_stable_offset=-1,
                           log_start_offset=-1, aborted_transactions=None, preferred_read_replica=-1, records=b"")
        elif isinstance(a, E.OffsetOutOfRangeError):
            entry = _FPart(partition_index=index, error_code=Code.OFFSET_OUT_OF_RANGE,
                           high_watermark=a.log_end_offset, last_stable_offset=a.log_end_offset,
                           log_start_offset=a.log_start_offset, aborted_transactions=None,
                           preferred_read_replica=-1, records=b"")
        elif isinstance(a, Exception):
            entry = _FPart(partition_index=index, error_code=error_code(a, f"fetching {name}-{index}"),
                           high_watermark=-1, last_stable_offset=-1, log_start_offset=-1,
                           aborted_transactions=None, preferred_read_replica=-1, records=b"")
        else:
            data = b""
            try:
                batches = stored_batches(a) if a.records else []
                data = records.encode_batches(batches, log_append_time=_log_append_time(metas[name])) \
                    if batches else b""
                code = 0
            except E.RaykaError as exc:
                code = error_code(exc, f"encoding {name}-{index}")
            # At least one batch per response, even past max_bytes (else a large batch would never
            # be served); past that, a partition over the total waits for the next fetch.
            if total and total + len(data) > max_bytes:
                data = b""
            total += len(data)
            entry = _FPart(partition_index=index, error_code=code, high_watermark=a.high_watermark,
                           last_stable_offset=a.high_watermark, log_start_offset=a.log_start_offset,
                           aborted_transactions=[], preferred_read_replica=-1, records=bytes(data))
        by_topic.setdefault(name, []).append(entry)
    return response(request, throttle_time_ms=0, error_code=0, session_id=0,
                    responses=[_FTopic(topic=n, partitions=parts) for n, parts in by_topic.items()])


async def list_offsets(conn, request):
    """Earliest (-2), latest (-1) or the first offset at or after a timestamp, per partition."""
    body = request.body
    metas = await _topics(conn, [t.name for t in body.topics])

    async def one(name, p):
        try:
            _check_partition(name, metas[name], p.partition_index)
            ts = p.timestamp
            if ts in (_EARLIEST, _LATEST):
                bounds = await conn.backend.offsets(name, p.partition_index)
                offset = bounds.log_start_offset if ts == _EARLIEST else bounds.log_end_offset
                return _LPart(partition_index=p.partition_index, error_code=0, timestamp=-1, offset=offset,
                              leader_epoch=-1)
            if ts < 0:
                raise _Refused(Code.INVALID_REQUEST, f"timestamp {ts} is not served (-1 latest, -2 earliest)")
            found = await conn.backend.offset_for_time(name, p.partition_index, ts)
            if found is None:  # no record at or after ts: Kafka answers -1, -1
                return _LPart(partition_index=p.partition_index, error_code=0, timestamp=-1, offset=-1,
                              leader_epoch=-1)
            return _LPart(partition_index=p.partition_index, error_code=0, timestamp=found.timestamp_ms,
                          offset=found.offset, leader_epoch=-1)
        except _Refused as exc:
            code = exc.code
        except E.RaykaError as exc:
            code = error_code(exc, f"listing offsets of {name}-{p.partition_index}")
        return _LPart(partition_index=p.partition_index, error_code=code, timestamp=-1, offset=-1, leader_epoch=-1)

    topics = []
    for t in body.topics:
        parts = await asyncio.gather(*(one(t.name, p) for p in t.partitions))
        topics.append(_LTopic(name=t.name, partitions=list(parts)))
    return response(request, throttle_time_ms=0, topics=topics)


async def init_producer_id(conn, request):
    """A fresh producer id and epoch for an idempotent producer (not transactions)."""
    if request.body.transactional_id is not None:
        return response(request, throttle_time_ms=0, error_code=Code.INVALID_REQUEST, producer_id=-1,
                        producer_epoch=-1)
    try:
        pid, epoch = await conn.backend.init_producer_id()
    except E.RaykaError as exc:
        return response(request, throttle_time_ms=0, error_code=error_code(exc, "in InitProducerId"),
                        producer_id=-1, producer_epoch=-1)
    return response(request, throttle_time_ms=0, error_code=0, producer_id=pid, producer_epoch=epoch)
