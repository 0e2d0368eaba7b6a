"""The Producer's keywords into one :class:`~rayka.config.ProducerConfig`, checked when the
Producer is created: ConfigError naming the option, before any thread or connection exists."""

from __future__ import annotations

from typing import Any

from rayka.clients.kafka_names import refuse_unknown
from rayka.clients.serializers import serializer
from rayka.config import ProducerConfig, option_names

__all__ = ["PRODUCER_OPTIONS", "producer_config"]

#: Every keyword Producer takes: its config's fields, and the cluster to use.
PRODUCER_OPTIONS = option_names(ProducerConfig) + ("cluster",)


def producer_config(options: dict[str, Any]) -> ProducerConfig:
    """``options`` (the Producer's keywords but ``cluster``) as a ProducerConfig; a keyword that
    is not an option (a Kafka setting such as ``bootstrap_servers``) is refused naming what to
    use instead. ``key_serializer`` / ``value_serializer`` take a callable or a name of
    rayka.clients.serializers.FORMATS."""
    refuse_unknown("Producer", {k: v for k, v in options.items() if k not in PRODUCER_OPTIONS}, PRODUCER_OPTIONS)
    options = dict(options)
    for name in ("key_serializer", "value_serializer"):
        if name in options:  # a format name ("json", ...) becomes its Serializer
            options[name] = serializer(name, options[name])
    return ProducerConfig(**options)
