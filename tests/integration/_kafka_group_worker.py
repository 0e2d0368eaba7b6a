"""A confluent-kafka group consumer in its own process, for the gateway's group test.

``python _kafka_group_worker.py BOOTSTRAP GROUP TOPIC OUT_FILE``: consumes in the group,
appends ``partition offset value`` for each record to OUT_FILE (flushed) *before* it
commits that record's offset synchronously (at-least-once: a SIGKILL between the two
shows up as a record processed twice, never as one lost). A line ``leave`` on stdin
makes it close the consumer (LeaveGroup) and exit; it is otherwise ended by a signal.
"""

import os
import select
import sys

from confluent_kafka import Consumer, KafkaException, TopicPartition


def main() -> None:
    bootstrap, group, topic, out_path = sys.argv[1:5]
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
        "auto.offset.reset": "earliest", "session.timeout.ms": 3000, "heartbeat.interval.ms": 500,
        "partition.assignment.strategy": "range", "broker.address.family": "v4",
    })
    consumer.subscribe([topic])
    with open(out_path, "a", buffering=1) as out:
        print("ready", flush=True)
        while True:
            ready, _, _ = select.select([sys.stdin], [], [], 0)
            if ready and sys.stdin.readline().strip() == "leave":
                break
            msgs = consumer.consume(num_messages=200, timeout=0.2)
            good = [m for m in msgs if m.error() is None]
            if not good:
                continue
            for m in good:
                out.write(f"{m.partition()} {m.offset()} {m.value().decode()}\n")
            out.flush()
            os.fsync(out.fileno())
            last = {}
            for m in good:
                last[m.partition()] = m.offset() + 1
            try:
                consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in last.items()], asynchronous=False)
            except KafkaException:  # a rebalance took them: their new owner reads them again
                pass
    consumer.close()
    print("left", flush=True)


if __name__ == "__main__":
    main()
