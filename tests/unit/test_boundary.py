"""The typed boundary between clients and actors: message types and client stubs (no Ray started)."""

import concurrent.futures
import dataclasses
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest
import ray
from ray.exceptions import ActorUnschedulableError, GetTimeoutError, RayActorError, RayTaskError

from rayka.clients import stubs
from rayka.clients.group_commit import MemberState, OffsetCommits
from rayka.clients.types import TopicPartition
from rayka.errors import (CommitFailedError, CoordinatorUnavailableError, KafkaTimeoutError,
                          PartitionUnavailableError, UnknownMemberError, UnknownTopicError)
from rayka.messages import (AppendResult, ClusterInfo, FetchResponse, JoinResult, JoinStatus, LogBounds,
                            PartitionStats, TimeLookup)

ROOT = Path(__file__).resolve().parents[2]


# -- the seam itself ------------------------------------------------------------------------------


def _calls_in(pattern: str) -> dict[str, list[int]]:
    """Files of clients/ and rayka/ (by path from the repo root) where ``pattern`` is called."""
    found = {}
    for folder in ("clients", "rayka"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            lines = [n for n, line in enumerate(path.read_text().splitlines(), 1)
                     if re.search(pattern, line.split("#", 1)[0])]
            if lines:
                found[str(path.relative_to(ROOT))] = lines
    return found


def test_remote_calls_appear_in_clients_and_rayka_only_in_the_stubs_module():
    assert set(_calls_in(r"\.remote\(")) == {"clients/stubs.py"}


def test_ray_get_and_wait_appear_in_clients_and_rayka_only_in_the_stubs_module():
    assert set(_calls_in(r"\bray\.(get|wait)\(")) == {"clients/stubs.py"}


def test_the_message_module_imports_no_ray_and_no_arrow():
    code = "import sys, rayka.messages; print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- message types --------------------------------------------------------------------------------


SAMPLES = [
    FetchResponse(5, b"abc", 2, 7, 0, 9, b"schema"),
    AppendResult(10, 3, 1_700_000_000_000, 0),
    PartitionStats(0, 10, 4096, 1, "node", damaged_offsets=((3, 4),)),
    JoinResult(JoinStatus.OK, "m-1", 2, (("t", 0), ("t", 1)), rebalance=True),
    LogBounds(0, 10),
    TimeLookup(4, 1_700_000_000_000),
    ClusterInfo("default", "rayka", "/data"),
]


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_messages_survive_pickling_unchanged(message):
    assert pickle.loads(pickle.dumps(message, protocol=5)) == message


@pytest.mark.parametrize("message", [m for m in SAMPLES if dataclasses.is_dataclass(m)], ids=lambda m: type(m).__name__)
def test_dataclass_messages_are_frozen_and_slotted(message):
    field = dataclasses.fields(message)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(message, field, 1)
    assert not hasattr(message, "__dict__")


def test_a_fetch_response_keeps_arrow_buffers_out_of_band():
    """Large fetches reach the consumer zero-copy: pickling hands the buffers over as they are."""
    buffers = (pa.py_buffer(b"x" * 1000), pa.py_buffer(b"y" * 2000))
    seen = []
    data = pickle.dumps(FetchResponse(0, buffers, 3, 3, 0, 3), protocol=5, buffer_callback=seen.append)
    assert len(seen) == 2 and len(data) < 1000
    back = pickle.loads(data, buffers=seen)
    assert [b.to_pybytes() for b in back.payload] == [b.to_pybytes() for b in buffers]


def test_an_empty_fetch_response_has_unknown_bounds():
    empty = FetchResponse.empty(42, b"s")
    assert (empty.offset, empty.next_offset, empty.records, empty.payload, empty.schema) == (42, 42, 0, b"", b"s")
    assert empty.log_start_offset == empty.high_watermark == -1


def test_join_results_say_whether_they_hold_an_assignment():
    assert JoinResult(JoinStatus.OK, "m", 1).ok
    assert not JoinResult(JoinStatus.PENDING, "m", 1).ok
    assert AppendResult(10, 3, 0, 0).last_offset == 12


# -- Ray's errors become rayka's --------------------------------------------------------------------


def test_a_dead_actor_becomes_the_unavailable_error_of_its_kind():
    assert isinstance(stubs.unwrap(RayActorError()), PartitionUnavailableError)
    err = stubs.unwrap(RayActorError(), "coordinator")
    assert isinstance(err, CoordinatorUnavailableError) and err.retriable


def test_an_actor_whose_node_is_gone_is_unavailable_and_not_retriable():
    err = stubs.unwrap(ActorUnschedulableError("gone"))
    assert isinstance(err, PartitionUnavailableError) and not err.retriable and "node" in str(err)


def test_a_rayka_error_raised_in_an_actor_comes_out_as_itself():
    cause = UnknownTopicError("no topic 'x'")
    assert stubs.unwrap(RayTaskError("topic", "traceback", cause)) is cause


def _fake_ray_get(monkeypatch, answers):
    """``ray.get`` answering from ``answers`` in turn (an exception is raised)."""
    calls = []

    def get(ref, timeout=None):
        calls.append((ref, timeout))
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    monkeypatch.setattr(ray, "get", get)
    return calls


class _Method:
    def __init__(self, name, sent):
        self.name, self.sent = name, sent

    def remote(self, *args, **kwargs):
        self.sent.append((self.name, args, kwargs))
        return f"ref-{len(self.sent)}"


class _Handle:
    """An actor handle that records what was sent (``sent``)."""

    def __init__(self):
        self.sent = []

    def __getattr__(self, name):
        return _Method(name, self.sent)


def test_coordinator_calls_retry_while_it_restarts(monkeypatch):
    monkeypatch.setattr(stubs.time, "sleep", lambda s: None)
    _fake_ray_get(monkeypatch, [RayActorError(), RayActorError(), ["a", "b"]])
    handle = _Handle()
    assert stubs.CoordinatorClient(handle).list_topics() == ["a", "b"]
    assert [name for name, _, _ in handle.sent] == ["list_topics"] * 3


def test_coordinator_calls_give_up_at_their_deadline(monkeypatch):
    _fake_ray_get(monkeypatch, [RayActorError()])
    with pytest.raises(CoordinatorUnavailableError):
        stubs.CoordinatorClient(_Handle()).heartbeat("g", "m", 1, retry_s=0)


def test_a_bounded_coordinator_call_times_out_as_a_rayka_error(monkeypatch):
    calls = _fake_ray_get(monkeypatch, [GetTimeoutError()])
    with pytest.raises(KafkaTimeoutError, match="coordinator"):
        stubs.CoordinatorClient(_Handle()).commit_offsets("g", "m", 1, [("t", 0, 5)], retry_s=2.0, bounded=True)
    assert 0 < calls[0][1] <= 2.0


def test_topic_answers_partition_stubs(monkeypatch):
    _fake_ray_get(monkeypatch, [("meta", ["h0", "h1"])])
    meta, parts = stubs.CoordinatorClient(_Handle()).topic("t")
    assert meta == "meta" and [p.handle for p in parts] == ["h0", "h1"]
    assert all(isinstance(p, stubs.PartitionClient) for p in parts)


def test_partition_calls_are_pending_until_asked_for(monkeypatch):
    handle = _Handle()
    call = stubs.PartitionClient(handle).fetch(7, 100, 1 << 20, 500, True)
    assert handle.sent == [("fetch", (7, 100, 1 << 20, 500, True), {})]
    _fake_ray_get(monkeypatch, [RayActorError()])
    with pytest.raises(PartitionUnavailableError):
        call.result()


class _Ref:
    def __init__(self):
        self.fut = concurrent.futures.Future()

    def future(self):
        return self.fut


def test_on_done_hands_over_the_answer_or_the_rayka_error():
    seen = []
    ok, failed = _Ref(), _Ref()
    stubs.Pending(ok).on_done(lambda answer, error: seen.append((answer, error)))
    stubs.Pending(failed).on_done(lambda answer, error: seen.append((answer, error)))
    ok.fut.set_result(AppendResult(0, 1, 0, 0))
    failed.fut.set_exception(RayActorError())
    assert seen[0] == (AppendResult(0, 1, 0, 0), None)
    assert seen[1][0] is None and isinstance(seen[1][1], PartitionUnavailableError)


def test_gather_answers_each_call_on_its_own(monkeypatch):
    monkeypatch.setattr(ray, "wait", lambda refs, num_returns, timeout: (refs[:2], refs[2:]))
    _fake_ray_get(monkeypatch, [LogBounds(0, 5), RayActorError()])
    out = stubs.gather([stubs.Pending(r) for r in ("a", "b", "c")], timeout_s=1.0)
    assert out[0] == LogBounds(0, 5)
    assert isinstance(out[1], PartitionUnavailableError)
    assert isinstance(out[2], PartitionUnavailableError) and "within 1 s" in str(out[2])


# -- offset commits against the member state ----------------------------------------------------------


class _Coordinator:
    def __init__(self, fail=None):
        self.commits, self.fail = [], fail

    def commit_offsets(self, group_id, member_id, generation, offsets, *, retry_s, bounded):
        if self.fail is not None:
            raise self.fail
        self.commits.append((group_id, member_id, generation, offsets))


def _commits(coordinator, positions):
    member = MemberState()
    member.member_id, member.generation, member.subscribed = "m-1", 3, True
    member.owned = {TopicPartition("t", 0)}
    return member, OffsetCommits("g", coordinator, member, lambda: positions, default_api_timeout_ms=1000)


def test_a_commit_sends_the_positions_of_owned_partitions_only():
    coordinator = _Coordinator()
    _, commits = _commits(coordinator, {TopicPartition("t", 0): 5, TopicPartition("t", 1): 9})
    commits.commit(None, sync=True)
    assert coordinator.commits == [("g", "m-1", 3, [("t", 0, 5)])]


def test_a_commit_refused_for_an_unknown_member_drops_the_membership():
    member, commits = _commits(_Coordinator(fail=UnknownMemberError("gone")), {TopicPartition("t", 0): 5})
    with pytest.raises(CommitFailedError, match="no longer owns"):
        commits.commit(None, sync=True)
    assert member.member_id is None and member.generation == -1 and member.lost_reason is not None
    assert member.rejoin.is_set()


def test_a_member_out_of_the_group_does_not_ask_the_coordinator():
    coordinator = _Coordinator()
    member, commits = _commits(coordinator, {TopicPartition("t", 0): 5})
    member.lost_reason = "evicted"
    with pytest.raises(CommitFailedError, match="evicted"):
        commits.commit(None, sync=True)
    assert coordinator.commits == []
