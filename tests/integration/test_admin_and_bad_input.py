"""Topic administration, and every bad input getting a clear rayka error with nothing written."""

import os
import time
from pathlib import Path

import pyarrow as pa
import pytest

import rayka
from rayka import TopicPartition
from rayka.errors import (
    ConfigError,
    InvalidTopicError,
    OffsetOutOfRangeError,
    RecordTooLargeError,
    TopicExistsError,
    UnknownPartitionError,
    UnknownTopicError,
)

from rayka.testing import consume_all, wait_for


def _tree(root: Path) -> set:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_create_list_describe_add_partitions_delete(cluster, admin):
    desc = admin.create_topic("clicks", partitions=3, config={"retention.ms": 3_600_000})
    assert desc.num_partitions == 3 and desc.config["retention.ms"] == 3_600_000
    assert "clicks" in admin.list_topics()
    assert all(p.log_start_offset == 0 and p.log_end_offset == 0 and p.leader for p in desc.partitions)
    with rayka.Producer() as p:
        p.send("clicks", value=b"x", partition=2).result(timeout=10)
    assert [p.log_end_offset for p in admin.describe_topic("clicks").partitions] == [0, 0, 1]
    grown = admin.add_partitions("clicks", total=5)
    assert grown.num_partitions == 5
    with rayka.Producer() as p:
        assert p.send("clicks", value=b"y", partition=4).result(timeout=10).offset == 0
    topic_dir = Path(cluster.data_dir, "topics", "clicks")
    assert sorted(os.listdir(topic_dir)) == ["0", "1", "2", "3", "4"]
    admin.delete_topic("clicks")
    assert "clicks" not in admin.list_topics()
    assert not topic_dir.exists()
    with pytest.raises(UnknownTopicError):
        admin.describe_topic("clicks")


@pytest.fixture(scope="module")
def refusing(ray_session, tmp_path_factory):
    """(directory, Admin) of one rayka cluster for the bad names: each is refused before
    anything is created, so they need no fresh cluster each (one costs ~0.7 s to start)."""
    from rayka.testing import embedded_cluster

    root = tmp_path_factory.mktemp("bad-names")
    with embedded_cluster(root) as cluster:
        yield root, rayka.Admin(cluster)


@pytest.mark.parametrize("name", ["../x", "a/b", "", "x" * 250, ".", "..", "/etc", "a b", "ü"])
def test_invalid_topic_names_are_refused_without_touching_the_file_system(refusing, name):
    root, admin = refusing
    before = _tree(root)
    with pytest.raises(InvalidTopicError) as info:
        admin.create_topic(name, partitions=1)
    assert "topic name" in str(info.value)
    assert _tree(root) == before
    assert name not in admin.list_topics()


def test_topic_name_of_249_chars_is_fine(cluster, admin):
    admin.create_topic("t" * 249, partitions=1)
    assert "t" * 249 in admin.list_topics()


def test_duplicate_topic_bad_partitions_and_config_are_refused(cluster, admin):
    admin.create_topic("dup", partitions=2)
    with pytest.raises(TopicExistsError):
        admin.create_topic("dup", partitions=2)
    with pytest.raises(ConfigError, match="partitions"):
        admin.create_topic("zero", partitions=0)
    with pytest.raises(ConfigError, match="unknown topic config"):
        admin.create_topic("cfg", partitions=1, config={"retention.mss": 5})
    with pytest.raises(ConfigError, match="replication_factor"):
        admin.create_topic("rf", partitions=1, replication_factor=17)  # 1..16
    with pytest.raises(ConfigError, match="larger total"):
        admin.add_partitions("dup", total=1)
    assert sorted(admin.list_topics()) == ["dup"]


def test_unknown_topic_and_partition_errors(cluster, admin):
    admin.create_topic("known", partitions=2)
    with rayka.Producer() as p:
        with pytest.raises(UnknownTopicError, match="create it"):
            p.send("unknown", value=b"x")
        with pytest.raises(UnknownPartitionError, match="0..1"):
            p.send("known", value=b"x", partition=7)
    with pytest.raises(UnknownTopicError):
        rayka.Consumer("unknown")
    c = rayka.Consumer()
    with pytest.raises(UnknownPartitionError):
        c.assign([TopicPartition("known", 2)])
    with pytest.raises(UnknownPartitionError, match="not assigned"):
        c.seek(TopicPartition("known", 0), 0)


def test_record_over_max_message_bytes_rejects_the_batch_with_nothing_appended(cluster, admin):
    admin.create_topic("small", partitions=1, config={"max.message.bytes": 1000})
    with rayka.Producer() as p:
        with pytest.raises(RecordTooLargeError, match="max.message.bytes"):
            p.send("small", value=b"x" * 1001)
        p.send("small", value=b"x" * 900).result(timeout=10)
        table = pa.table({"value": [b"ok"] * 10 + [b"x" * 5000] + [b"ok"] * 10})
        with pytest.raises(RecordTooLargeError, match="nothing of the batch was appended"):
            p.send_table("small", table, partition=0).result(timeout=10)
    assert admin.describe_topic("small").partitions[0].log_end_offset == 1


def test_default_max_message_bytes_is_one_mebibyte(cluster, admin):
    admin.create_topic("mib", partitions=1)
    with rayka.Producer() as p:
        p.send("mib", value=b"x" * (1024 * 1024 - 100)).result(timeout=10)
        with pytest.raises(RecordTooLargeError):
            p.send("mib", value=b"x" * (1024 * 1024 + 1))


def test_wrong_value_and_key_types_name_the_serializer_to_set(cluster, admin):
    admin.create_topic("types", partitions=1)
    with rayka.Producer() as p:
        with pytest.raises(TypeError, match="value_serializer"):
            p.send("types", value="a str")
        with pytest.raises(TypeError, match="key_serializer"):
            p.send("types", value=b"ok", key=42)
        with pytest.raises(TypeError, match="encode"):
            p.send_table("types", pa.table({"value": ["strings"]}))
    with rayka.Producer(value_serializer=str.encode, key_serializer=str.encode) as p:
        p.send("types", value="now fine", key="k").result(timeout=10)
    c = rayka.Consumer("types", auto_offset_reset="earliest", value_deserializer=bytes.decode)
    assert [r.value for r in consume_all(c, 1)] == ["now fine"]


def test_offset_past_the_end_raises_naming_the_valid_range(cluster, admin):
    admin.create_topic("range", partitions=1)
    with rayka.Producer() as p:
        for i in range(10):
            p.send("range", value=b"%d" % i)
    tp = TopicPartition("range", 0)
    c = rayka.Consumer(auto_offset_reset="none")
    c.assign([tp])
    c.seek(tp, 50)
    with pytest.raises(OffsetOutOfRangeError, match=r"0\.\.10") as info:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            c.poll(timeout_ms=200)
    assert info.value.log_start_offset == 0 and info.value.log_end_offset == 10


def test_offset_below_log_start_after_retention_raises_or_resets(cluster, admin):
    admin.create_topic("retained", partitions=1,
                       config={"segment.bytes": 4096, "retention.bytes": 8192})
    with rayka.Producer(linger_ms=0) as p:
        for i in range(200):
            p.send("retained", value=b"%03d" % i + b"." * 200).result(timeout=10)
    start = wait_for(lambda: admin.describe_topic("retained").partitions[0].log_start_offset,
                     what="retention to delete old segments")
    assert start > 0
    tp = TopicPartition("retained", 0)
    strict = rayka.Consumer(auto_offset_reset="none")
    strict.assign([tp])
    strict.seek(tp, 0)
    # Retention may delete more segments meanwhile (its tick goes on): the error names the range then.
    with pytest.raises(OffsetOutOfRangeError, match=r"valid offsets are \d+\.\.200") as info:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            strict.poll(timeout_ms=200)
    assert info.value.log_start_offset >= start and f"{info.value.log_start_offset}..200" in str(info.value)
    lenient = rayka.Consumer(auto_offset_reset="earliest")
    lenient.assign([tp])
    lenient.seek(tp, 0)
    got = consume_all(lenient, 200 - start, timeout_s=20)
    assert got[0].offset >= start and got[-1].offset == 199
