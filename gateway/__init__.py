"""rayka.gateway: the Kafka wire protocol, mapped onto rayka (pure code, no Ray).

Kafka clients (librdkafka, the Java client, kafka-python, aiokafka, kcat) talk to a
gateway as to a broker. This package turns their requests into calls on a
:class:`~rayka.gateway.backend.Backend` (the coordinator and the partitions, batched)
and rayka's answers back into Kafka responses; RecordBatch v2 is decoded into rayka's
Arrow batches and encoded back. The TCP server that runs it is a thin Ray actor in
``rayka.actors.gateway``.
"""
