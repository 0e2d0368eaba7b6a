"""Kafka habits of the consumer that need no Ray: OffsetAndMetadata commits kept per partition
(through a restart of the offsets log), and Kafka settings refused with their rayka equivalent."""

import pytest

import rayka
from rayka import OffsetAndMetadata
from rayka.clients.group_commit import _checked
from rayka.coordinator.clock import ManualClock
from rayka.coordinator.group_coordinator import GroupCoordinator
from rayka.coordinator.offset_store import OffsetStore
from rayka.errors import ConfigError


def test_commit_metadata_is_stored_per_partition_and_survives_a_reopen(tmp_path):
    path = tmp_path / "o.jsonl"
    gc = GroupCoordinator(OffsetStore(path), ManualClock(), lambda: {"t": 2})
    a = gc.join("g", None, None, ["t"], 1000, 5000, (), "range")
    gc.commit("g", a.member_id, a.generation, [("t", 0, 10, "batch 7"), ("t", 1, 4)])
    assert gc.fetch("g", [("t", 0), ("t", 1)]) == [10, 4]
    assert gc.fetch("g", [("t", 0), ("t", 1)], with_metadata=True) == [(10, "batch 7"), (4, "")]
    again = GroupCoordinator(OffsetStore(path), ManualClock(), lambda: {"t": 2})
    assert again.fetch("g", [("t", 0), ("t", 1)], with_metadata=True) == [(10, "batch 7"), (4, "")]
    with pytest.raises(ConfigError, match="metadata"):
        gc.commit("g", a.member_id, a.generation, [("t", 0, 11, 5)])
    assert gc.fetch("g", [("t", 0)], with_metadata=True) == [(10, "batch 7")]  # nothing half-written


def test_commit_offsets_are_checked_with_a_clear_error():
    tp = rayka.TopicPartition("t", 0)
    assert _checked({tp: 5, ("t", 1): OffsetAndMetadata(6, "m")}) == {
        tp: 5, rayka.TopicPartition("t", 1): OffsetAndMetadata(6, "m")}
    for bad in (-1, "5", 1.5, True, OffsetAndMetadata(-2, ""), OffsetAndMetadata(3, b"bytes"),
                OffsetAndMetadata(3, "x" * 5000)):
        with pytest.raises(ConfigError, match="t-0"):
            _checked({tp: bad})
    with pytest.raises(ConfigError, match="dict"):
        _checked([(tp, 5)])


@pytest.mark.parametrize("name, hint", [
    ("bootstrap_servers", r"rayka\.connect\(address=\.\.\.\)"),
    ("fetch_min_bytes", "fetch_max_wait_ms"),
    ("fetch_max_bytes", "max_partition_fetch_bytes"),
    ("security_protocol", "token authentication"),
    ("ssl_anything", "token authentication"),
    ("compression_type", "compression.type"),
    ("isolation_level", "no transactions"),
    ("enable_auto_comit", "did you mean 'enable_auto_commit'"),
])
def test_kafka_settings_are_refused_with_the_rayka_equivalent(name, hint):
    # Refused before anything connects: no Ray here (the unit conftest forbids ray.init).
    with pytest.raises(ConfigError, match=hint) as info:
        rayka.Consumer("t", **{name: "x"})
    assert repr(name) in str(info.value)
    assert not isinstance(info.value, TypeError)


@pytest.mark.parametrize("kwargs, hint", [
    ({"bootstrap_servers": "localhost:9092"}, r"rayka\.connect\(address=\.\.\.\)"),
    ({"request_timeout_ms": 5}, "timeout_s"),
    ({"security_protocol": "SSL"}, "token authentication"),
    ({"clustr": None}, "did you mean 'cluster'"),
])
def test_admin_refuses_kafka_settings_with_the_rayka_equivalent(kwargs, hint):
    with pytest.raises(ConfigError, match=hint) as info:
        rayka.Admin(**kwargs)
    assert repr(next(iter(kwargs))) in str(info.value) and not isinstance(info.value, TypeError)
    with pytest.raises(ConfigError, match="rayka.connect"):
        rayka.Admin("localhost:9092")


@pytest.mark.parametrize("kind", ["Producer", "Consumer", "Admin"])
def test_one_table_of_kafka_names_answers_every_client(kind):
    from rayka.clients import kafka_names

    for name in ("bootstrap_servers", "compression_type", "security_protocol"):
        error = kafka_names.unknown_option_error(kind, name, ["x"])
        assert "Kafka setting" in str(error) and kind in str(error)
    # The Java spelling of a known option names it.
    assert "use linger_ms=" in str(kafka_names.unknown_option_error(kind, "linger.ms", ["linger_ms"]))
