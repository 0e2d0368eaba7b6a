"""Spark reads rayka topics: the PySpark 4 data source "rayka".

    import rayka, rayka.spark
    rayka.connect()                      # or any connection rayka.connect() makes
    rayka.spark.register(spark)          # the workers attach to this same cluster
    df = spark.read.format("rayka").option("topic", "clicks").load()
    stream = spark.readStream.format("rayka").option("topic", "clicks").load()

Options (Kafka's source names where they mean the same): ``startingOffsets`` /
``endingOffsets`` (``earliest``, ``latest`` or JSON ``{"0": 10, "1": 20}``),
``startingTimestamp`` / ``endingTimestamp`` (ms or ISO 8601), ``maxRecordsPerPartition``,
``maxOffsetsPerTrigger`` (streaming), ``columns`` (comma-separated), and the connection:
``address``, ``cluster``, ``namespace``, ``dataDir``. Columns: ``partition``, ``offset``,
``timestamp_ms``, ``key``, ``headers``, then ``value`` or a typed topic's columns. Needs the
``spark`` extra (``pip install 'rayka[spark]'``); ``import rayka`` alone never loads PySpark.
"""

from __future__ import annotations

__all__ = ["register", "PUSHDOWN_CONF"]

#: The Spark setting without which Spark refuses a Python source that takes filters.
PUSHDOWN_CONF = "spark.sql.python.filterPushdown.enabled"


def register(spark, cluster=None) -> None:
    """Register the data source "rayka" with the SparkSession ``spark``.

    Its Python workers attach to ``cluster`` (default: this process's current rayka
    connection, made with ``rayka.connect()`` if there is none): the Ray address, rayka
    cluster name, namespace and data dir travel with the source, so a read needs no more
    than ``.option("topic", ...)``. Also turns on Spark's filter pushdown for Python data
    sources (:data:`PUSHDOWN_CONF`), which Spark requires of a source that takes filters.
    """
    from rayka.clients.connection import current
    from rayka.clients.spark_source import source_for

    spark.dataSource.register(source_for(cluster or current()))
    spark.conf.set(PUSHDOWN_CONF, "true")
