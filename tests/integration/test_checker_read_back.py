"""rayka.checker against a real log (one replica): a recorded producer loop checks clean, and the
checker sees an acknowledgement the log does not hold."""

import rayka
from rayka.checker import History, check, keyed_values, read_back


def test_a_recorded_produce_loop_reads_back_and_checks_clean(cluster, admin):
    admin.create_topic("checked", partitions=3)
    history = History()
    with rayka.Producer(cluster=cluster, acks="all", linger_ms=1) as p:
        for key, value in keyed_values(1_500, keys=6, seed=3):
            history.send(p, "checked", value, key)
        history.send(p, "checked", b"x" * (2 * 1024 * 1024), b"k0:big")  # refused before sending
        p.flush(timeout=30)
    log = read_back("checked", cluster=cluster, timeout_s=30)
    assert sorted(log) == [0, 1, 2] and sum(map(len, log.values())) == 1_500
    result = check(history, log)
    assert result.ok, result.table()
    assert (result.acknowledged, result.failed, result.read, result.unacknowledged_present) == (1_500, 1, 1_500, 0)

    # An acknowledgement the log does not back (as a lost write would look) fails the check.
    history.invoke(b"k0:ghost", b"k0")
    history.ok(b"k0:ghost", 0, 10_000)
    assert check(history, log).lost == 1
