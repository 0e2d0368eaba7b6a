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

from rayka import errors
from rayka.clients.admin import Admin
from rayka.clients.connection import Cluster, connect
from rayka.clients.consumer import Consumer
from rayka.clients.group import ConsumerRebalanceListener
from rayka.clients.producer import Producer
from rayka.clients.types import (
    GroupDescription,
    OffsetAndMetadata,
    OffsetAndTimestamp,
    PartitionDescription,
    Record,
    RecordMetadata,
    TopicDescription,
    TopicPartition,
)
from rayka.config import TopicConfig

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
    "TopicConfig",
    "TopicDescription",
    "TopicPartition",
    "connect",
    "errors",
    "__version__",
]
