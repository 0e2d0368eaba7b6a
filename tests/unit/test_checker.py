"""rayka.checker without Ray: histories and read-backs that must fail each way, and ones that pass."""

import subprocess
import sys

import pytest

from rayka import errors
from rayka.checker import CheckResult, History, check, is_definite, keyed_values, make_value, parse_value


def _produce(pairs, partition_of=lambda key: 0):
    """A history of ``pairs`` all acknowledged, and the log that holds them in order."""
    h = History()
    log: dict[int, list] = {}
    for key, value in pairs:
        h.invoke(value, key)
        p = partition_of(key)
        offset = len(log.setdefault(p, []))
        log[p].append((offset, key, value))
        h.ok(value, p, offset)
    return h, log


PAIRS = list(keyed_values(60, keys=3, seed=7))


def _by_key(key):
    return int(key[1:])


def test_a_clean_history_passes():
    h, log = _produce(PAIRS, lambda k: _by_key(k) % 2)
    r = check(h, log)
    assert r.ok and (r.sent, r.acknowledged, r.read) == (60, 60, 60)
    assert (r.lost, r.duplicated, r.reordered, r.wrong, r.unacknowledged_present, r.indeterminate) == (0,) * 6
    assert r.table().splitlines()[-1] == "OK"


def test_an_acknowledged_value_missing_is_lost():
    h, log = _produce(PAIRS)
    gone = log[0].pop(10)
    r = check(h, log)
    assert not r.ok and r.lost == 1 and r.examples["lost"] == (gone[2],)
    assert "lost" in r.table() and r.table().endswith("FAILED")


def test_an_acknowledged_value_at_another_offset_is_lost():
    h, log = _produce(PAIRS)
    # the log was truncated and rewritten: the value is there, but not where it was acknowledged
    log[0] = [(o + 1 if o >= 5 else o, k, v) for o, k, v in log[0]]
    r = check(h, log)
    assert r.lost == len(PAIRS) - 5 and r.duplicated == 0 and r.reordered == 0


def test_an_acknowledged_value_in_another_partition_is_lost():
    h, log = _produce(PAIRS)
    moved = log[0].pop()
    log[1] = [moved]
    assert check(h, log).lost == 1


def test_acks_0_offsets_only_ask_presence_in_the_partition():
    h = History()
    h.invoke(b"k0:000000", b"k0")
    h.ok(b"k0:000000", 2, -1)
    assert check(h, {2: [(41, b"k0", b"k0:000000")]}).ok
    assert check(h, {1: [(0, b"k0", b"k0:000000")]}).lost == 1


def test_a_value_present_twice_is_duplicated():
    h, log = _produce(PAIRS)
    log[0].append((len(log[0]), *log[0][3][1:]))
    r = check(h, log)
    assert not r.ok and r.duplicated == 1 and r.lost == 0 and r.reordered == 0


def test_an_unacknowledged_value_present_twice_is_still_duplicated():
    h, log = _produce(PAIRS[:5])
    h.invoke(b"k9:000000", b"k9")
    h.info(b"k9:000000", TimeoutError("no answer"))
    log[0] += [(5, b"k9", b"k9:000000"), (6, b"k9", b"k9:000000")]
    r = check(h, log)
    assert r.duplicated == 1 and r.unacknowledged_present == 1


def test_two_values_of_a_key_swapped_are_reordered():
    h, log = _produce(PAIRS)
    mine = [i for i, (_, k, _) in enumerate(log[0]) if k == b"k1"]
    a, b = mine[2], mine[5]
    # the values change places (keeping the offsets) and are acknowledged where they now are
    log[0][a], log[0][b] = (a, *log[0][b][1:]), (b, *log[0][a][1:])
    h2 = History()
    for key, value in PAIRS:
        h2.invoke(value, key)
    for offset, key, value in log[0]:
        h2.ok(value, 0, offset)
    r = check(h2, log)
    assert r.lost == 0 and r.reordered >= 1 and not r.ok
    assert r.examples["reordered"][0][0] == b"k1"


def test_order_is_per_key_and_per_partition():
    # keys interleave freely; the same key in two partitions (explicit partitions) is two orders
    h = History()
    log = {0: [], 1: []}
    for seq, (p, key) in enumerate([(0, b"a"), (1, b"a"), (0, b"b"), (0, b"a"), (1, b"a")]):
        value = make_value(key.decode(), seq)
        h.invoke(value, key)
    values = list(h.ops())
    # partition 1 holds a's second and fifth values; partition 0 a's first and fourth, and b's
    log[0] = [(0, b"b", values[2]), (1, b"a", values[0]), (2, b"a", values[3])]
    log[1] = [(0, b"a", values[1]), (1, b"a", values[4])]
    for p, recs in log.items():
        for o, _, v in recs:
            h.ok(v, p, o)
    assert check(h, log).ok


def test_a_value_never_sent_is_wrong():
    h, log = _produce(PAIRS)
    log[0].append((len(log[0]), b"k0", b"k0:999999"))
    r = check(h, log)
    assert not r.ok and r.wrong == 1 and r.examples["wrong"] == (b"k0:999999",)


def test_a_value_with_another_key_than_it_was_sent_with_is_wrong():
    h, log = _produce(PAIRS)
    o, _, v = log[0][0]
    log[0][0] = (o, b"other", v)
    assert check(h, log).wrong == 1


@pytest.mark.parametrize("present", [True, False])
def test_indeterminate_values_may_be_present_or_absent(present):
    h, log = _produce(PAIRS[:10])
    for i, (outcome, value) in enumerate([("info", b"k5:000000"), (None, b"k5:000001")]):
        h.invoke(value, b"k5")
        if outcome:
            h.info(value, RuntimeError("RayActorError: the actor died"))
        if present:
            log[0].append((10 + i, b"k5", value))
    r = check(h, log)
    assert r.ok and r.indeterminate == 2 and r.lost == 0
    assert r.unacknowledged_present == (2 if present else 0)


def test_a_failed_value_present_is_allowed_and_counted_apart():
    h, log = _produce(PAIRS[:3])
    h.invoke(b"k7:000000", b"k7")
    h.fail(b"k7:000000", errors.RecordTooLargeError("too big"))
    log[0].append((3, b"k7", b"k7:000000"))
    r = check(h, log)
    assert r.ok and r.failed == 1 and r.unacknowledged_present == 1 and r.failed_present == 1
    assert "failed definitely" in r.table()


def test_error_routes_definite_errors_to_fail_and_the_rest_to_info():
    assert is_definite(errors.RecordTooLargeError("x")) and is_definite(errors.InvalidRecordError("x"))
    for unknown in (errors.PartitionUnavailableError("x"), errors.KafkaTimeoutError("x"),
                    errors.NotEnoughReplicasError("x"), RuntimeError("RayActorError")):
        assert not is_definite(unknown)
    h = History()
    for v in (b"a", b"b"):
        h.invoke(v)
    h.error(b"a", errors.RecordTooLargeError("x"))
    h.error(b"b", errors.PartitionUnavailableError("x"))
    ops = h.ops()
    assert (ops[b"a"].state, ops[b"b"].state) == ("fail", "info")
    assert ops[b"a"].error.startswith("RecordTooLargeError")


def test_an_ack_after_info_upgrades_it_and_a_later_outcome_does_not_undo_an_ack():
    h = History()
    h.invoke(b"v", b"k")
    h.info(b"v", TimeoutError())
    h.ok(b"v", 0, 4)
    h.fail(b"v", errors.RecordTooLargeError("late"))
    assert h.ops()[b"v"].state == "ok"
    assert check(h, {0: []}).lost == 1


def test_history_refuses_misuse():
    h = History()
    h.invoke(b"v")
    with pytest.raises(ValueError, match="invoked twice"):
        h.invoke(b"v")
    with pytest.raises(ValueError, match="never invoked"):
        h.ok(b"w", 0, 0)
    with pytest.raises(ValueError, match="offset 3 of partition 0 twice"):
        check(h, {0: [(3, None, b"v"), (3, None, b"x")]})


class _Future:
    def __init__(self):
        self.callbacks, self.errbacks = [], []

    def add_callback(self, fn):
        self.callbacks.append(fn)
        return self

    def add_errback(self, fn):
        self.errbacks.append(fn)
        return self


def test_track_wires_a_futures_callbacks():
    from rayka.clients.types import RecordMetadata

    h = History()
    good, bad = _Future(), _Future()
    h.track(b"g", b"k", good)
    h.track(b"b", b"k", bad)
    good.callbacks[0](RecordMetadata("t", 1, 7, 0))
    bad.errbacks[0](errors.PartitionUnavailableError("gone"))
    ops = h.ops()
    assert (ops[b"g"].state, ops[b"g"].partition, ops[b"g"].offset, ops[b"b"].state) == ("ok", 1, 7, "info")


class _Producer:
    def __init__(self):
        self.futures = []

    def send(self, topic, value, key=None, partition=None):
        if value == b"huge":
            raise errors.RecordTooLargeError("refused before sending")
        self.futures.append(_Future())
        return self.futures[-1]


def test_send_records_a_send_that_raises_and_tracks_one_that_returns():
    from rayka.clients.types import RecordMetadata

    h, p = History(), _Producer()
    assert isinstance(h.send(p, "t", b"huge", b"k"), errors.RecordTooLargeError)
    fut = h.send(p, "t", b"fine", b"k", partition=2)
    fut.callbacks[0](RecordMetadata("t", 2, 0, 0))
    ops = h.ops()
    assert (ops[b"huge"].state, ops[b"fine"].state, ops[b"fine"].seq) == ("fail", "ok", 1)
    assert check(h, {2: [(0, b"k", b"fine")]}).ok


def test_failover_time_is_the_first_ack_of_a_value_sent_after_the_mark():
    now = [0.0]
    h = History(clock=lambda: now[0])
    h.invoke(b"before", b"k")
    now[0] = 0.25
    t = h.mark("leader node removed")
    now[0] = 0.5
    h.invoke(b"after-0", b"k")
    h.invoke(b"after-1", b"k")
    now[0] = 2.0
    h.ok(b"before", 0, 0)  # in flight when the node went: not evidence of the new leader
    now[0] = 3.25
    h.ok(b"after-1", 0, 1)
    assert h.first_ok_after(t) == 3.0 and h.first_ok_after(t, partition=1) is None
    assert h.marks() == [("leader node removed", 0.25)]
    r = check(h, {0: [(0, b"k", b"before"), (1, b"k", b"after-1")]}, failover_s=h.first_ok_after(t))
    assert r.ok and "failover time" in r.table() and "3.00s" in r.table()


def test_unavailability_is_the_longest_gap_without_an_ack_since_the_mark():
    now = [0.0]
    h = History(clock=lambda: now[0])
    for i, (invoked, acked) in enumerate([(0.0, 0.1), (0.9, 1.02), (0.95, 1.04), (1.1, 3.5), (3.6, 3.7)]):
        now[0] = invoked
        h.invoke(b"v%d" % i, b"k")
        now[0] = acked
        h.ok(b"v%d" % i, 0, i)
    # mark at 1.0; acks at 1.02 and 1.04 (the old leader's tail), then none until 3.5
    assert h.unavailable_s(1.0) == pytest.approx(2.46)
    assert h.unavailable_s(1.0, partition=3) is None and h.unavailable_s(4.0) is None
    assert h.unavailable_s(3.55) == pytest.approx(0.15)  # from the mark to the first ack after it
    assert h.last_ok_s() == 3.7 and h.last_ok_s(partition=1) is None
    assert h.first_ok_after(1.0) == pytest.approx(2.5)  # the first ack of a value invoked after the mark


def test_values_round_trip_and_are_unique():
    assert make_value(3, 17) == b"k3:000017" and parse_value(b"k3:000017") == ("k3", 17)
    padded = make_value("user", 5, size=100)
    assert len(padded) == 100 and parse_value(padded) == ("user", 5) and parse_value("k1:000002") == ("k1", 2)
    with pytest.raises(ValueError):
        parse_value(b"hello")
    with pytest.raises(ValueError):
        make_value("a:b", 1)
    pairs = list(keyed_values(500, keys=5, seed=1))
    assert len({v for _, v in pairs}) == 500 and pairs == list(keyed_values(500, keys=5, seed=1))
    for key, value in pairs:
        name, _ = parse_value(value)
        assert name.encode() == key
    seqs = [parse_value(v)[1] for k, v in pairs if k == b"k2"]
    assert seqs == list(range(len(seqs)))


def test_result_is_frozen():
    r = check(History(), {})
    assert isinstance(r, CheckResult) and r.ok and r.sent == 0
    with pytest.raises(AttributeError):
        r.lost = 3


def test_the_checker_loads_no_ray():
    probe = "import rayka.checker, sys; assert 'ray' not in sys.modules, 'ray was imported'"
    subprocess.run([sys.executable, "-c", probe], check=True)
