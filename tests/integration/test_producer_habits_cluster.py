"""The producer on a real cluster: bad arguments spare their batch, callbacks have run when
flush() returns, keyless records spread evenly, and send_table's typed-topic advice works."""

import time

import pandas as pd
import pyarrow as pa
import pytest

import rayka
from rayka.errors import InvalidRecordError, SchemaMismatchError

from rayka.testing import consume_all


def test_bad_arguments_are_refused_in_send_and_spare_the_batch(cluster, admin):
    admin.create_topic("mixed", partitions=2)
    acked = {}
    with rayka.Producer(linger_ms=200) as p:
        futures = {}
        for i in range(100):
            futures[b"v%d" % i] = p.send("mixed", value=b"v%d" % i, partition=i % 2)
            if i % 25 == 0:  # the bad sends of issue 7, in the middle of the good ones' batches
                for bad in (dict(timestamp_ms="x"), dict(timestamp_ms=2**70), dict(headers="notalist"),
                            dict(partition=True)):
                    with pytest.raises(InvalidRecordError, match=next(iter(bad))):
                        p.send("mixed", value=b"bad", **bad)
        for value, fut in futures.items():
            fut.add_callback(lambda md, value=value: acked.__setitem__(value, (md.partition, md.offset)))
        p.flush(timeout=60)
        assert len(acked) == 100  # every callback ran before flush returned
    consumer = rayka.Consumer("mixed", auto_offset_reset="earliest")
    records = consume_all(consumer, 100)
    consumer.close()
    assert {r.value: (r.partition, r.offset) for r in records} == acked
    assert len(records) == 100 and b"bad" not in {r.value for r in records}
    assert {r.partition for r in records} == {0, 1}


def test_keyless_records_spread_evenly_over_partitions(cluster, admin):
    admin.create_topic("spread", partitions=4)
    with rayka.Producer() as p:
        for i in range(100_000):
            p.send("spread", value=b"value-%d" % i)
        p.flush(timeout=120)
        metrics = p.metrics()
    ends = [part.log_end_offset for part in admin.describe_topic("spread").partitions]
    assert sum(ends) == 100_000 and metrics["records_sent"] == 100_000 and metrics["errors"] == 0
    assert all(abs(e - 25_000) <= 5_000 for e in ends), ends


def test_send_table_typed_topic_advice_works_as_written(cluster, admin):
    admin.create_topic("plain", partitions=1)
    df = pd.DataFrame({"sym": ["A", "B", "C"], "px": [1.0, 2.0, 3.5]})
    with rayka.Producer() as p:
        with pytest.raises(SchemaMismatchError, match=r"schema=pa\.Schema\.from_pandas\(df, preserve_index=False\)"):
            p.send_table("plain", df)
        admin.create_topic("prices", partitions=1, schema=pa.Schema.from_pandas(df, preserve_index=False))
        p.send_table("prices", df).result(timeout=30)
    c = rayka.Consumer("prices", auto_offset_reset="earliest")
    deadline = time.monotonic() + 30
    tables = []
    while sum(t.num_rows for t in tables) < 3 and time.monotonic() < deadline:
        tables.append(c.poll_batch(timeout_ms=500))
    c.close()
    table = pa.concat_tables(tables)
    assert table.select(["sym", "px"]).to_pandas().equals(df)
