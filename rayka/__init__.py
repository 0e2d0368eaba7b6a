"""rayka: a Kafka-style distributed log for Python on Ray.

Partitions are Ray actors that own Arrow IPC segment files; a coordinator actor
keeps topic metadata; producers and consumers talk to partition actors
directly and move whole Arrow record batches.

    import rayka
    rayka.connect()                                   # embedded: local Ray, ~/.rayka/data
    rayka.Admin().create_topic("clicks", partitions=4)
    with rayka.Producer() as p:
        p.send("clicks", value=b"hello", key=b"user-1")
    c = rayka.Consumer("clicks", auto_offset_reset="earliest")
    print(c.poll_batch(timeout_ms=1000).to_pandas())
"""

# Everything loads on first use (PEP 562): a process that only needs part of rayka, above all
# each partition actor (one process per partition), does not import the producer, consumer,
# group and tqdm code (see benchmarks/partition_cost.py); ``import rayka.partitions`` and the
# other pure packages load no Ray; and ``import rayka`` alone, the CLI's floor
# (benchmarks/cli_latency.py), loads nothing but this file.
_LAZY = {
    "errors": None,  # the submodule rayka.errors
    "data": None,  # the submodule rayka.data (Ray Data loads on its first call)
    "spark": None,  # the submodule rayka.spark (PySpark loads when register() is called)
    "TopicConfig": "rayka.config",
    "Admin": "rayka.clients.admin",
    "Cluster": "rayka.clients.connection",
    "connect": "rayka.clients.connection",
    "Consumer": "rayka.clients.consumer",
    "ConsumerRebalanceListener": "rayka.clients.group",
    "Producer": "rayka.clients.producer",
    "GroupDescription": "rayka.clients.types",
    "OffsetAndMetadata": "rayka.clients.types",
    "OffsetAndTimestamp": "rayka.clients.types",
    "PartitionDescription": "rayka.clients.types",
    "Record": "rayka.clients.types",
    "RecordMetadata": "rayka.clients.types",
    "SchemaVersion": "rayka.clients.types",
    "TopicDescription": "rayka.clients.types",
    "TopicPartition": "rayka.clients.types",
    "read_topic": "rayka.clients.topic_read",
    "export_topic": "rayka.clients.export",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'rayka' has no attribute {name!r}")
    module = _LAZY[name]
    import importlib

    if module is None:
        value = importlib.import_module(f"rayka.{name}")
    else:
        value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "Admin",
    "Cluster",
    "Consumer",
    "ConsumerRebalanceListener",
    "GroupDescription",
    "OffsetAndMetadata",
    "OffsetAndTimestamp",
    "PartitionDescription",
    "Producer",
    "Record",
    "RecordMetadata",
    "SchemaVersion",
    "TopicConfig",
    "TopicDescription",
    "TopicPartition",
    "connect",
    "errors",
    "export_topic",
    "read_topic",
    "__version__",
]
