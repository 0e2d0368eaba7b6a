"""ProducerConfig, ConsumerConfig and GroupConfig: every field checked, defaults as the README's
configuration section states them (the dataclasses are the single source of the defaults)."""

import dataclasses
import math
import pathlib
import re

import pytest

from rayka.clients.consumer_options import CONSUMER_OPTIONS, consumer_configs
from rayka.clients.producer_options import PRODUCER_OPTIONS, producer_config
from rayka.config import ConsumerConfig, GroupConfig, PartitionBudget, ProducerConfig, TopicConfig
from rayka.coordinator.assignment import ASSIGNOR_NAMES, ASSIGNORS
from rayka.errors import ConfigError

README = (pathlib.Path(__file__).parents[2] / "README.md").read_text()
MiB = 1024 * 1024


def test_acks_are_stored_as_their_code():
    assert [ProducerConfig(acks=a).acks for a in (0, "0", 1, "1", "all", -1)] == [0, 0, 1, 1, -1, -1]
    assert ProducerConfig().acks == 1


@pytest.mark.parametrize("cls, field, value, needle", [
    (ProducerConfig, "acks", 2, "0, 1 or 'all'"),
    (ProducerConfig, "acks", [1], "0, 1 or 'all'"),
    (ProducerConfig, "batch_size", -1, ">= 0"),
    (ProducerConfig, "buffer_memory", 1.5, "whole number of bytes"),
    (ProducerConfig, "linger_ms", math.inf, "finite number of milliseconds >= 0"),
    (ProducerConfig, "max_block_ms", True, "milliseconds"),
    (ProducerConfig, "delivery_timeout_ms", -5, ">= 0"),
    (ProducerConfig, "retry_backoff_ms", "100", "milliseconds"),
    (ProducerConfig, "idempotent", 1, "True or False"),
    (ProducerConfig, "value_serializer", "json", "callable"),
    (ConsumerConfig, "auto_offset_reset", "smallest", "'earliest', 'latest', 'none'"),
    (ConsumerConfig, "enable_auto_commit", "yes", "True or False"),
    (ConsumerConfig, "max_poll_records", 0, ">= 1"),
    (ConsumerConfig, "max_partition_fetch_records", 2.0, "whole number"),
    (ConsumerConfig, "consumer_timeout_ms", -1, "(or None)"),
    (ConsumerConfig, "key_deserializer", 3, "callable"),
    (ConsumerConfig, "on_partitions_unavailable", "print", "callable"),
    (GroupConfig, "group_id", "", "non-empty str"),
    (GroupConfig, "session_timeout_ms", 99, ">= 100"),
    (GroupConfig, "heartbeat_interval_ms", -1, ">= 0"),
    (GroupConfig, "max_poll_interval_ms", float("nan"), "milliseconds"),
    (GroupConfig, "partition_assignment_strategy", "sticky", "one of"),
    (GroupConfig, "group_instance_id", 7, "non-empty str"),
    (GroupConfig, "listener", object(), "ConsumerRebalanceListener"),
    (GroupConfig, "default_api_timeout_ms", -1, ">= 0"),
])
def test_every_field_is_checked_naming_it_and_its_range(cls, field, value, needle):
    kwargs = {"group_id": "g"} if cls is GroupConfig else {}
    with pytest.raises(ConfigError, match=field) as e:
        cls(**{**kwargs, field: value})
    assert needle in str(e.value)


def test_the_configs_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ProducerConfig().linger_ms = 1


def test_builders_refuse_unknown_keywords_with_the_kafka_equivalent():
    with pytest.raises(ConfigError, match="delivery_timeout_ms"):
        producer_config({"retries": 5})
    with pytest.raises(ConfigError, match="did you mean 'linger_ms'"):
        producer_config({"lingr_ms": 5})
    with pytest.raises(ConfigError, match="max_partition_fetch_bytes"):
        consumer_configs({"fetch_max_bytes": 1})
    with pytest.raises(ConfigError, match="need a group_id"):
        consumer_configs({"session_timeout_ms": 1000})
    config, group = consumer_configs({"group_id": "g", "max_poll_records": 7, "session_timeout_ms": 1000})
    assert config.max_poll_records == 7 and group == GroupConfig(group_id="g", session_timeout_ms=1000)
    assert consumer_configs({}) == (ConsumerConfig(), None)
    assert set(PRODUCER_OPTIONS) == {f.name for f in dataclasses.fields(ProducerConfig)} | {"cluster"}
    assert len(CONSUMER_OPTIONS) == len(set(CONSUMER_OPTIONS))


def test_assignor_names_are_the_assignors():
    assert ASSIGNOR_NAMES == tuple(ASSIGNORS) == ("range", "roundrobin", "cooperative-sticky")


# -- the README's configuration section against the dataclasses -------------------------------------

def _value(text: str):
    """A README default ("5 s", "32 MiB", "16384 bytes", "500,000", "True", '"latest"') as a value."""
    text = text.strip()
    if text in ("True", "False"):
        return text == "True"
    if re.fullmatch(r'"[^"]*"|`[^`]*`', text):
        return text[1:-1]
    m = re.fullmatch(r"(-?[\d,_.]+)\s*(MiB|s|days|bytes|ms)?(?:\s*\(.*\))?", text)
    if m is None:
        return None
    number = float(m.group(1).replace(",", "").replace("_", ""))
    scale = {"MiB": MiB, "s": 1000, "days": 24 * 3600 * 1000, None: 1, "bytes": 1, "ms": 1}[m.group(2)]
    value = number * scale
    return int(value) if value == int(value) else value


def _paragraph_defaults(start: str, end: str) -> dict:
    """``name`` -> the README's default from "`name` (default; more)" in the paragraph."""
    body = README[README.index(start):]
    body = body[:body.index(end)]
    found = {}
    for name, inside in re.findall(r"`(\w+)`\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)", body):
        parts = [p for p in re.split(r"[;,]", inside) if "by default" in p] or inside.split(";")[:1]
        found[name] = _value(parts[0].replace("by default", ""))
    return found


@pytest.mark.parametrize("cls, start, end", [
    (ProducerConfig, "\nProducer: `acks`", "\nConsumer: "),
    (ConsumerConfig, "\nConsumer: `group_id`", "Kafka settings rayka has no use for"),
    (GroupConfig, "With a `group_id` also:", "Kafka settings rayka has no use for"),
])
def test_readme_client_defaults_match_the_dataclasses(cls, start, end):
    documented = _paragraph_defaults(start, end)
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    checked = 0
    for name, default in defaults.items():
        body = README[README.index(start):]
        assert f"`{name}`" in body[:body.index(end)], f"README's configuration section does not list {name}"
        if default is None or name not in documented or documented[name] is None:
            continue  # no value documented (a callable, or a rule such as "a third of the session")
        assert documented[name] == default, f"README says {name} defaults to {documented[name]!r}, it is {default!r}"
        checked += 1
    assert checked >= 3


def _table_defaults(header: str) -> dict:
    rows = README[README.index(header):].split("\n\n")[0].splitlines()[2:]
    return {cells[0].strip("` "): cells[-2].strip() for cells in (r.strip("|").split("|") for r in rows)}


def test_readme_topic_config_table_matches_topic_config():
    table = _table_defaults("| key | default | meaning |")
    assert set(table) == set(TopicConfig().to_dict())
    for key, default in TopicConfig().to_dict().items():
        text = table[key].split("(")[0]
        assert _value(text) == default, f"README says {key} defaults to {table[key]!r}, it is {default!r}"


def test_readme_partition_budget_table_matches_partition_budget():
    table = _table_defaults("| key | environment | default | meaning |")
    assert set(table) == set(PartitionBudget().to_dict())
    for key, default in PartitionBudget().to_dict().items():
        text = table[key].split("(")[0]
        assert (_value(text) if default is not None else text.strip()) == (default if default is not None else "none")


@pytest.mark.parametrize("options", [
    {"group_id": "g", "partition_assignment_strategy": "sticky"},
    {"group_id": "", "auto_offset_reset": "earliest"},
    {"group_id": "g", "session_timeout_ms": 10},
])
def test_group_options_are_checked_before_the_consumer_connects(options):
    import rayka

    # conftest makes any Ray start fail: the check must come first
    with pytest.raises(ConfigError, match="partition_assignment_strategy|group_id|session_timeout_ms"):
        rayka.Consumer("t", **options)
