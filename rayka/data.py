"""Ray Data for topics: a topic as a ``ray.data.Dataset``, a Dataset written to a topic, and a
topic read as a stream of bounded Datasets (micro-batches) committed for a consumer group.

    import rayka.data
    ds = rayka.data.read_topic("clicks", start="2026-12-01T00:00:00Z")   # bounded, fixed now
    ds = ds.map_batches(enrich, batch_format="pyarrow")
    rayka.data.write_topic(ds, "clicks-enriched", key_column="user")     # retries write no duplicate
    with rayka.data.stream_topic("clicks", group_id="enricher") as stream:
        for batch in stream:                                               # one Dataset per micro-batch
            rayka.data.write_topic(batch.dataset.map_batches(enrich), "out", write_id=batch.id)

Importing this module does not import Ray Data; the first call does.
"""

from rayka.clients.ray_data_read import read_topic, topic_datasource
from rayka.clients.ray_data_stream import MicroBatch, TopicStream, stream_topic
from rayka.clients.ray_data_write import write_topic

__all__ = ["read_topic", "topic_datasource", "write_topic", "stream_topic", "TopicStream", "MicroBatch", "TopicDatasource",
           "TopicDatasink"]


def __getattr__(name: str):
    # The Ray Data classes are made (and Ray Data imported) on first use.
    if name == "TopicDatasource":
        from rayka.clients import ray_data_read

        return ray_data_read.TopicDatasource
    if name == "TopicDatasink":
        from rayka.clients import ray_data_write

        return ray_data_write.TopicDatasink
    raise AttributeError(f"module 'rayka.data' has no attribute {name!r}")
