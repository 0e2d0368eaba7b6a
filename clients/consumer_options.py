"""The Consumer's keywords into one :class:`~rayka.config.ConsumerConfig` (and a
:class:`~rayka.config.GroupConfig` with a ``group_id``), checked when it is created: ConfigError
naming the option, before it connects (a bad value must not start a runtime first, nor fail
later inside a poll)."""

from __future__ import annotations

from typing import Any

from rayka.clients.kafka_names import unknown_option_error
from rayka.clients.serializers import deserializer
from rayka.client_config import schema_version_for
from rayka.config import ConsumerConfig, GroupConfig, option_names
from rayka.errors import ConfigError

__all__ = ["CONSUMER_OPTIONS", "GROUP_OPTIONS", "consumer_configs", "pushed_schema", "reader_schema"]

#: The keywords only a Consumer with a group_id takes.
GROUP_OPTIONS = tuple(n for n in option_names(GroupConfig) if n != "group_id")
#: Every keyword Consumer takes.
CONSUMER_OPTIONS = ("group_id",) + option_names(ConsumerConfig) + ("cluster",) + GROUP_OPTIONS


def consumer_configs(options: dict[str, Any]) -> tuple[ConsumerConfig, GroupConfig | None]:
    """``options`` (the Consumer's keywords but ``cluster``) as its ConsumerConfig and, with a
    ``group_id``, its GroupConfig. An unknown keyword (a Kafka setting such as
    ``bootstrap_servers``) is refused naming the rayka equivalent; group options without a
    group_id are refused too."""
    unknown = sorted(set(options) - set(CONSUMER_OPTIONS))
    if unknown:
        raise unknown_option_error("Consumer", unknown[0], CONSUMER_OPTIONS)
    group_id = options.get("group_id")
    group_options = {k: v for k, v in options.items() if k in GROUP_OPTIONS}
    if group_options and group_id is None:
        raise ConfigError(f"options {sorted(group_options)} need a group_id")
    own = {k: v for k, v in options.items() if k != "group_id" and k not in GROUP_OPTIONS}
    if own.get("allow_pickle", False) not in (True, False):
        raise ConfigError(f"allow_pickle must be True or False, got {own['allow_pickle']!r}")
    for name in ("key_deserializer", "value_deserializer"):
        if name in own:  # a format name ("json", ...) becomes its Deserializer; "pickle" only when allowed
            own[name] = deserializer(name, own[name], own.get("allow_pickle", False))
    config = ConsumerConfig(**own)
    group = None if group_id is None else GroupConfig(group_id=group_id, **group_options)
    return config, group


def pushed_schema(value_schema, columns, flt):
    """The schema a Consumer's pushed-down fetches of a topic of ``value_schema`` answer in, or
    ConfigError when ``columns`` or ``flt`` do not apply to the topic.

    With ``columns`` / ``filter`` the partitions read and ship only those columns and the
    records the filter keeps (partitions/pushdown.py); positions and commits still move past
    the records dropped. ``poll_batch`` has topic, partition, then ``offset`` (always: positions
    are tracked from it) and the columns asked, in order. ``poll`` Records have None for a field
    not asked for; ``value`` is a dict of the value columns asked (a typed topic), the ``value``
    bytes if asked (an untyped one), else None.
    """
    from rayka.partitions.pushdown import Pushdown
    from rayka.partitions.records import log_schema

    return Pushdown.of(log_schema(value_schema), columns, flt).schema


def reader_schema(topic: str, meta, chosen, known: dict, refreshed):
    """The value schema a consumer reads typed ``topic`` in (None: untyped); its version is remembered
    in ``known`` (topic -> version, what its fetches name): ``chosen`` (the ``schema_version``
    option: an int, or a dict topic -> int) if given, else the topic's latest, looked up afresh
    (``refreshed()``: its metadata from the coordinator); so is a version above those ``meta`` knows;
    one the topic does not have raises UnknownSchemaVersionError naming those it has."""
    if meta.value_schema is None:
        return None
    version = known.get(topic)
    if version is None:
        version = schema_version_for(chosen, topic)
        if version is None:
            meta = refreshed()  # the topic's latest now, not the one this process cached
            version = meta.schema_version
    if version > meta.schema_version:
        meta = refreshed()  # registered since the metadata was cached
    schema = meta.schema_for(version)
    known[topic] = version
    return schema
