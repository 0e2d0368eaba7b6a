"""A refused record fails alone and early; it never blocks or half-writes what comes after."""

import pyarrow as pa
import pytest

import rayka
from rayka.clients import producer as producer_module
from rayka.errors import RecordTooLargeError, SchemaMismatchError

from rayka.testing import consume_all


def _ends(admin, topic):
    return [p.log_end_offset for p in admin.describe_topic(topic).partitions]


def test_send_table_with_one_oversize_record_is_refused_whole_on_every_partition(cluster, admin):
    admin.create_topic("wide", partitions=4, config={"max.message.bytes": 1000})
    table = pa.table({"value": [b"ok"] * 60 + [b"x" * 5000] + [b"ok"] * 39})
    with rayka.Producer() as p:
        with pytest.raises(RecordTooLargeError, match="max.message.bytes"):
            p.send_table("wide", table)
        assert _ends(admin, "wide") == [0, 0, 0, 0]
        keyed = pa.table({"value": [b"ok"] * 99 + [b"x" * 5000], "key": [b"k%d" % i for i in range(100)]})
        with pytest.raises(RecordTooLargeError):
            p.send_table("wide", keyed)
        assert _ends(admin, "wide") == [0, 0, 0, 0]
        p.send_table("wide", pa.table({"value": [b"ok"] * 100})).result(timeout=30)
    assert sum(_ends(admin, "wide")) == 100


def test_a_batch_the_partition_refuses_does_not_block_later_sends(cluster, admin, monkeypatch):
    """The partition's own check (the last line of defence) refuses a batch: the idempotent
    producer must not leave a hole in its sequence that makes every later batch fail."""
    admin.create_topic("guard", partitions=1, config={"max.message.bytes": 1000})
    monkeypatch.setattr(producer_module, "prepare_batch", lambda *a, **k: None)  # skip the client check
    with rayka.Producer() as p:
        p.send("guard", value=b"before").result(timeout=10)  # the partition now knows this producer
        with pytest.raises(RecordTooLargeError, match="nothing of the batch was appended"):
            p.send_table("guard", pa.table({"value": [b"ok", b"x" * 5000]}), partition=0).result(timeout=10)
        assert _ends(admin, "guard") == [1]
        metas = [p.send("guard", value=b"after-%d" % i).result(timeout=10) for i in range(3)]
        p.send_table("guard", pa.table({"value": [b"bulk"] * 5}), partition=0).result(timeout=10)
    assert [m.offset for m in metas] == [1, 2, 3]
    assert _ends(admin, "guard") == [9]
    c = rayka.Consumer("guard", auto_offset_reset="earliest")
    assert [r.value for r in consume_all(c, 9)] == [b"before", b"after-0", b"after-1", b"after-2"] + [b"bulk"] * 5
    c.close()


def test_typed_value_that_does_not_fit_raises_in_send_and_spares_its_batch(cluster, admin):
    admin.create_topic("trades", partitions=1,
                       schema=pa.schema([("sym", pa.string()), ("px", pa.float64())]))
    with rayka.Producer(linger_ms=50) as p:
        good = p.send("trades", value={"sym": "A", "px": 1.5})
        with pytest.raises(SchemaMismatchError, match="'px'"):
            p.send("trades", value={"sym": "B", "px": "not a price"})
        with pytest.raises(SchemaMismatchError, match="does not have"):
            p.send("trades", value={"sym": "C", "px": 2.0, "qty": 3})
        also_good = p.send("trades", value={"sym": "D", "px": None})
        assert good.result(timeout=10).offset == 0
        assert also_good.result(timeout=10).offset == 1
    c = rayka.Consumer("trades", auto_offset_reset="earliest")
    assert [r.value["sym"] for r in consume_all(c, 2)] == ["A", "D"]
    c.close()


def test_bytes_like_keys_and_values_are_sent_as_bytes(cluster, admin):
    admin.create_topic("bytesish", partitions=3)
    with rayka.Producer() as p:
        a = p.send("bytesish", value=bytearray(b"v1"), key=bytearray(b"user-1")).result(timeout=10)
        b = p.send("bytesish", value=memoryview(b"v2"), key=memoryview(b"user-1")).result(timeout=10)
        c = p.send("bytesish", value=b"v3", key=b"user-1").result(timeout=10)
    assert a.partition == b.partition == c.partition  # one key, one partition, whatever its type
    consumer = rayka.Consumer("bytesish", auto_offset_reset="earliest")
    records = consume_all(consumer, 3)
    assert sorted((r.key, r.value) for r in records) == [(b"user-1", b"v1"), (b"user-1", b"v2"),
                                                        (b"user-1", b"v3")]
    consumer.close()


def test_cli_produce_exits_non_zero_when_an_append_fails(cluster, admin, monkeypatch):
    """`rayka produce` must not print "produced N" and exit 0 when the partition refused records."""
    from click.testing import CliRunner

    from rayka import cli

    admin.create_topic("cli-guard", partitions=1, config={"max.message.bytes": 100})
    real_topic = producer_module._Topic

    class LaxTopic(real_topic):  # the client believes any size is fine; the partition knows better
        def __init__(self, *args):
            super().__init__(*args)
            self.max_message_bytes = 10**9

    monkeypatch.setattr(producer_module, "_Topic", LaxTopic)
    stdin = b"short\n" + b"x" * 500 + b"\n"
    result = CliRunner().invoke(cli.cli, ["--cluster", cluster.cluster_name, "produce", "cli-guard"],
                                input=stdin, standalone_mode=False)
    assert isinstance(result.exception, cli.ProduceFailed), result.output
    assert "were not written" in str(result.exception) and "max.message.bytes" in str(result.exception)
    assert "produced 2 record(s)" not in result.output
