"""Reads from the nearest replica (KIP-392) without Ray: which replica a consumer reads from,
when a follower may serve reads and up to where, the consumer's fallback to the leader, and
``client_rack`` checks."""

import time

import pyarrow as pa
import pytest

import rayka
from rayka.clients.consumer_options import consumer_configs
from rayka.clients.fetcher import Fetcher, PartitionState
from rayka.clients.read_replicas import ReadReplicas
from rayka.clients.types import TopicPartition
from rayka.clock import ManualClock
from rayka.config import TopicConfig
from rayka.coordinator.election import PartitionState as State, alter_partition
from rayka.coordinator.read_replica import LOCAL, preferred_read_replica
from rayka.errors import ConfigError, NotLeaderError, OffsetOutOfRangeError
from rayka.messages import FetchResponse
from rayka.partitions.follower_role import FollowerRole
from rayka.partitions.leader_role import LeaderRole, serve_replica_fetch
from rayka.partitions.replicated_log import ReplicaLog

NODES = {0: "n0", 1: "n1", 2: "n2"}
ZONES = {"n0": "east", "n1": "west", "n2": "west"}


def state(leader=0, isr=(0, 1, 2), replicas=(0, 1, 2)):
    return State(replicas=replicas, leader=leader, leader_epoch=3, isr=isr, partition_epoch=5)


# -- the choice (coordinator/read_replica.py) -----------------------------------------------------------


def test_without_client_rack_the_leader_is_read():
    assert preferred_read_replica(state(leader=2), NODES, None, node_id="n1") == 2


def test_local_picks_the_in_sync_follower_on_the_consumers_node():
    assert preferred_read_replica(state(), NODES, LOCAL, node_id="n1") == 1
    assert preferred_read_replica(state(), NODES, LOCAL, node_id="n2") == 2


def test_local_picks_the_leader_when_it_is_on_the_consumers_node_or_none_is():
    assert preferred_read_replica(state(leader=1), NODES, LOCAL, node_id="n1") == 1
    assert preferred_read_replica(state(), NODES, LOCAL, node_id="elsewhere") == 0


def test_a_follower_out_of_the_isr_is_never_chosen():
    assert preferred_read_replica(state(isr=(0, 2)), NODES, LOCAL, node_id="n1") == 0


def test_no_leader_means_no_choice():
    assert preferred_read_replica(state(leader=None, isr=(1,)), NODES, LOCAL, node_id="n1") is None


def test_a_replica_whose_node_is_not_recorded_is_not_near():
    assert preferred_read_replica(state(), {0: "n0", 1: None, 2: "n2"}, LOCAL, node_id="n1") == 0


def test_a_zone_picks_an_in_sync_replica_in_it_the_leader_first():
    assert preferred_read_replica(state(), NODES, "east", node_id="x", zones=ZONES) == 0
    assert preferred_read_replica(state(), NODES, "west", node_id="x", zones=ZONES) in (1, 2)
    assert preferred_read_replica(state(leader=2), NODES, "west", node_id="x", zones=ZONES) == 2
    assert preferred_read_replica(state(), NODES, "north", node_id="x", zones=ZONES) == 0
    assert preferred_read_replica(state(), NODES, "west", node_id="x", zones={}) == 0


def test_in_a_zone_a_replica_on_the_consumers_own_node_comes_first_and_others_spread():
    assert preferred_read_replica(state(), NODES, "west", node_id="n2", zones=ZONES) == 2
    assert preferred_read_replica(state(), NODES, "west", node_id="n1", zones=ZONES) == 1
    picks = {preferred_read_replica(state(), NODES, "west", node_id=f"m{i}", zones=ZONES) for i in range(20)}
    assert picks == {1, 2}  # consumers of the zone on other nodes spread over its replicas


# -- client_rack as an option ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, "", "  ", " west", True, ["local"]])
def test_bad_client_rack_values_are_refused_before_connecting(value):
    with pytest.raises(ConfigError, match="client_rack"):
        rayka.Consumer("t", client_rack=value)


def test_the_option_and_the_choice_agree_on_local():
    from rayka.client_config import CLIENT_RACK_LOCAL

    assert CLIENT_RACK_LOCAL == LOCAL


def test_client_rack_values_are_kept():
    assert consumer_configs({})[0].client_rack is None
    assert consumer_configs({"client_rack": "local"})[0].client_rack == "local"
    assert consumer_configs({"client_rack": "west"})[0].client_rack == "west"


def test_kafka_spellings_of_client_rack_point_to_the_option():
    with pytest.raises(ConfigError, match="use client_rack="):
        consumer_configs({"client.rack": "local"})
    with pytest.raises(ConfigError, match="Consumer option"):
        rayka.Producer(client_rack="local")


# -- a follower's reads (partitions/follower_role.py) ----------------------------------------------------


class Pair:
    """Replica 0 leads, replicas 1 and 2 follow in-process; one millisecond clock for all."""

    def __init__(self, tmp_path, lag_ms=1000):
        self.clock = ManualClock()
        self.lag_ms = lag_ms
        self.logs = [ReplicaLog(tmp_path / f"r{r}", config=TopicConfig()) for r in range(3)]
        self.state = State.initial([0, 1, 2])
        self.logs[0].begin_epoch(0)
        self.leader = LeaderRole(self.state, 0, 0, 0, min_insync_replicas=1, lag_time_max_ms=lag_ms, clock=self.clock)
        self.followers = {r: FollowerRole(self.logs[r], self.state, r, self.fetch, max_wait_ms=0, clock=self.clock)
                          for r in (1, 2)}

    def fetch(self, request):
        return serve_replica_fetch(self.logs[0], self.leader, request)

    def append(self, *values):
        self.logs[0].append(pa.table({"value": pa.array(list(values), pa.binary())}), leader_epoch=0)
        self.leader.on_append(self.logs[0].log_end_offset)

    def close(self):
        for plog in self.logs:
            plog.close()


@pytest.fixture
def pair(tmp_path):
    p = Pair(tmp_path)
    yield p
    p.close()


def test_a_followers_hw_never_passes_the_leaders(pair):
    f1, f2 = pair.followers[1], pair.followers[2]
    for i in range(6):
        pair.append(b"v%d" % i, b"w%d" % i)
        for f in (f1, f2, f1) if i % 2 else (f2, f1):
            f.step()
            assert f.high_watermark <= pair.leader.high_watermark
            assert f.high_watermark <= pair.logs[f.replica_id].log_end_offset
    f1.step(), f2.step(), f1.step()
    assert f1.high_watermark == pair.leader.high_watermark == 12


def test_a_follower_serves_reads_only_while_in_the_leaders_isr_and_heard_from(pair):
    f1, f2 = pair.followers[1], pair.followers[2]
    pair.append(b"a")
    f1.step(), f2.step()
    assert f1.may_serve_reads(pair.lag_ms) and f2.may_serve_reads(pair.lag_ms)
    pair.clock.advance(1500)  # replica 2 stops fetching; replica 1 goes on
    f1.step()
    assert not f2.may_serve_reads(pair.lag_ms)  # not heard from its leader within the lag bound
    request = pair.leader.isr_request()
    pair.state = alter_partition(pair.state, request)
    pair.leader.isr_committed(pair.state)
    assert pair.state.isr == (0, 1)
    f2.step()  # it hears again, and hears that it left the ISR
    assert not f2.may_serve_reads(pair.lag_ms)
    assert f1.may_serve_reads(pair.lag_ms)
    f1.stop()
    assert not f1.may_serve_reads(pair.lag_ms)


def test_a_new_follower_role_serves_nothing_until_its_leader_answers(pair):
    pair.append(b"a", b"b")
    f1 = pair.followers[1]
    assert f1.may_serve_reads(pair.lag_ms) and f1.high_watermark == 0  # a read waits: nothing below HW 0
    f1.step()
    assert f1.high_watermark == 0  # the leader's HW was still 0 when it answered (replica 2 lacks them)
    pair.followers[2].step(), pair.followers[2].step()  # copies them, then reports it has them
    f1.step()
    assert f1.high_watermark == 2


@pytest.mark.parametrize("reads", [True, False])
def test_a_follower_serving_reads_learns_a_new_hw_at_once_not_after_the_long_poll(pair, reads):
    pair.append(b"a")
    f1, f2 = pair.followers[1], pair.followers[2]
    f1.step(), f2.step(), f2.step()  # both copied it; only replica 2 has said so
    assert pair.leader.high_watermark == 0
    waiting = FollowerRole(pair.logs[1], pair.state, 1, pair.fetch, max_wait_ms=800, clock=pair.clock)
    if reads:
        waiting.note_read()  # a consumer read there: its fetches carry the HW it knows
    started = time.monotonic()
    waiting.step()  # says it has offset 0: the leader's HW moves to 1 with this very fetch
    took = time.monotonic() - started
    assert waiting.high_watermark == 1
    if reads:
        assert took < 0.5, took  # answered at once: the HW moved past what it knew
    else:
        assert took >= 0.7, took  # nothing new in the log: the long-poll runs out first


# -- the consumer's side: choose, read, fall back (clients/read_replicas.py, fetcher.py) ----------------


class Call:
    def __init__(self, answer):
        self.answer = answer

    def result(self, timeout_s=None):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


class Replica:
    """A PartitionClient stand-in answering every fetch with ``answer`` (a FetchResponse or an error)."""

    def __init__(self, replica_id, answer=None):
        self.replica_id, self.answer, self.fetches = replica_id, answer, []

    def fetch(self, offset, max_records, max_bytes, max_wait_ms, with_schema, replica_read=False):
        self.fetches.append((offset, replica_read))
        if self.answer is not None:
            return Call(self.answer)
        schema = pa.schema([("offset", pa.int64())])
        return Call(FetchResponse(offset, b"", 0, offset, 0, offset, schema.serialize().to_pybytes(),
                                  self.replica_id))


class Meta:
    topic_id = "id"

    def __init__(self, partition_state):
        self._state = partition_state

    def state(self, p):
        return self._state

    def replica_nodes_of(self, p):
        return dict(NODES)


class FakeCluster:
    cluster_name, namespace, attachment = "c", "rayka", None

    def __init__(self, meta, leader):
        self.meta, self.leader, self.calls = meta, leader, 0

    def topic(self, name, refresh=False, timeout_s=None, max_age_s=None):
        self.calls += 1
        return self.meta, [self.leader]


class Replicas(ReadReplicas):
    def __init__(self, cluster, followers, **kw):
        super().__init__(cluster, LOCAL, **kw)
        self._node_id = "n1"
        self._by_id = followers

    def _follower(self, meta, partition, replica):
        return self._by_id.get(replica)


def fetcher_reading(follower, leader, max_age_s=30.0):
    cluster = FakeCluster(Meta(state()), leader)
    f = Fetcher(max_wait_ms=0, max_partition_records=10, max_partition_bytes=1 << 20, max_buffered_records=100,
                on_out_of_range=lambda s, e: pytest.fail(f"a reset from {e!r}"),
                read_replicas=Replicas(cluster, {1: follower}, max_age_s=max_age_s))
    tp = TopicPartition("t", 0)
    s = f.states[tp] = PartitionState(tp, leader)
    s.position = s.fetch_offset = 5
    return f, s, cluster


def round_trip(fetcher, s):
    fetcher.send()
    call, s.inflight = s.inflight, None
    return fetcher._absorb(s, call)


def test_local_reads_go_to_the_follower_on_this_node_and_say_who_answered():
    follower, leader = Replica(1), Replica(0)
    f, s, _ = fetcher_reading(follower, leader)
    round_trip(f, s)
    assert follower.fetches == [(5, True)] and leader.fetches == []
    assert s.read_replica == 1 and s.served_by == 1


@pytest.mark.parametrize("error", [
    NotLeaderError("not in sync"),
    OffsetOutOfRangeError("outside", log_start_offset=0, log_end_offset=3),
])
def test_a_follower_that_cannot_serve_sends_the_partition_to_the_leader_until_the_next_choice(error):
    follower, leader = Replica(1, error), Replica(0)
    f, s, cluster = fetcher_reading(follower, leader, max_age_s=60.0)
    round_trip(f, s)  # refused by the follower: no reset, no backoff, no unavailable mark
    assert s.read_handle is None and s.read_replica == 0 and s.unavailable is None and s.retry_at == 0
    assert f.metrics.read_replica_fallbacks == 1
    calls = cluster.calls
    for _ in range(3):
        round_trip(f, s)
    assert follower.fetches == [(5, True)]  # no ping-pong: the leader until the choice is made again
    assert leader.fetches == [(5, False)] * 3 and s.served_by == 0 and cluster.calls == calls
    s.rechoose_at = 0.0  # the choice's age ran out
    follower.answer = None
    round_trip(f, s)
    assert follower.fetches[-1] == (5, True) and s.served_by == 1
