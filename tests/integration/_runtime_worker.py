"""Producer and group-consumer processes for test_runtime.py, on the embedded default.

Usage:
  _runtime_worker.py produce TOPIC COUNT GATE       send COUNT unique values, the second half
                                                    once GATE exists; print "half", "acked N"
  _runtime_worker.py consume TOPIC GROUP OUT STOP   consume as a group member until STOP exists
  _runtime_worker.py outlive TOPIC                  produce and consume until the runtime is stopped
                                                    under it; print one JSON line of what it saw

Both call ``rayka.connect()`` with no address: they attach to (or start) the shared
local runtime of $RAYKA_DATA_DIR. The consumer appends every value to OUT (flushed
before its offsets are committed) and prints "assigned P,.." / "revoked P,.." lines
as its rebalance listener hears them.
"""

import os
import sys
import time

import rayka


class Listener(rayka.ConsumerRebalanceListener):
    def on_partitions_assigned(self, assigned):
        print("assigned " + ",".join(str(tp.partition) for tp in sorted(assigned)), flush=True)

    def on_partitions_revoked(self, revoked):
        print("revoked " + ",".join(str(tp.partition) for tp in sorted(revoked)), flush=True)


def produce(topic, count, gate):
    rayka.connect()
    count = int(count)
    with rayka.Producer(linger_ms=2) as p:
        futures = []
        for i in range(count):
            if i == count // 2:
                p.flush()
                print("half", flush=True)
                deadline = time.monotonic() + 90
                while not os.path.exists(gate):  # the test opens the gate once the group rebalanced
                    if time.monotonic() > deadline:
                        raise SystemExit("the gate never opened")
                    time.sleep(0.05)
            futures.append(p.send(topic, value=b"v-%d" % i))
        p.flush()
        acked = sum(1 for f in futures if f.result(timeout=60) is not None)
    print(f"acked {acked}", flush=True)


def consume(topic, group, out_path, stop_path):
    rayka.connect()
    c = rayka.Consumer(group_id=group, auto_offset_reset="earliest", enable_auto_commit=False,
                       session_timeout_ms=6000, heartbeat_interval_ms=500)
    c.subscribe([topic], listener=Listener())
    deadline = time.monotonic() + 100
    with open(out_path, "a") as out:
        while not os.path.exists(stop_path):
            if time.monotonic() > deadline:
                raise SystemExit("consumer ran for 100 s without being told to stop")
            records = c.poll(timeout_ms=100)
            for r in records:
                out.write(r.value.decode() + "\n")
            out.flush()
            if records:
                c.commit()
    c.close()
    print("closed", flush=True)


def outlive(topic):
    """Produce unique values and poll in a group until a call fails (the test stops the runtime
    under this process), then check that the process lives on past Ray's lost-head deadline,
    reconnect (a new runtime on the same data dir) and read every acknowledged value back."""
    import json

    rayka.connect()
    acked, failed = {}, []

    def on_ack(value, md):
        acked[value] = (md.partition, md.offset)

    producer = rayka.Producer(linger_ms=1)
    consumer = rayka.Consumer(topic, group_id="outlive", auto_offset_reset="earliest")
    deadline = time.monotonic() + 90
    error, i = None, 0
    try:
        while time.monotonic() < deadline:
            for _ in range(50):
                value = b"o-%d" % i
                i += 1
                producer.send(topic, value=value).add_callback(lambda md, v=value: on_ack(v, md)).add_errback(
                    lambda exc: failed.append(type(exc).__name__))
            consumer.poll(timeout_ms=20)
            if len(acked) >= 500 and not os.environ.get("OUTLIVE_READY"):
                os.environ["OUTLIVE_READY"] = "1"
                print("ready", flush=True)
    except rayka.errors.RaykaError as exc:
        error = exc
    failed_at = time.monotonic()
    producer.close(timeout=10)
    consumer.close()
    # Ray ends a process whose head is gone after RAY_gcs_rpc_server_reconnect_timeout_s (the
    # test sets 3 s): still here at twice that means this process left Ray in time.
    alive_until = failed_at + 2 * float(os.environ["RAY_gcs_rpc_server_reconnect_timeout_s"])
    while time.monotonic() < alive_until:
        time.sleep(0.1)
    rayka.connect()
    reader = rayka.Consumer(topic, auto_offset_reset="earliest")
    seen, reads_deadline = {}, time.monotonic() + 60
    while len(seen) < len(acked) and time.monotonic() < reads_deadline:
        for r in reader.poll(timeout_ms=500):
            seen.setdefault(r.value, []).append((r.partition, r.offset))
    reader.close()
    wrong = [v.decode() for v, where in acked.items() if seen.get(v) != [where]]
    print(json.dumps({"error": type(error).__name__, "message": str(error), "acked": len(acked),
                      "errbacks": sorted(set(failed)), "wrong": wrong[:10], "read": len(seen),
                      "stopped_with": sys.argv[-1]}), flush=True)


if __name__ == "__main__":
    {"produce": produce, "consume": consume, "outlive": outlive}[sys.argv[1]](*sys.argv[2:])
