"""Producer and group-consumer processes for test_runtime.py, on the embedded default.

Usage:
  _runtime_worker.py produce TOPIC COUNT GATE       send COUNT unique values, the second half
                                                    once GATE exists; print "half", "acked N"
  _runtime_worker.py consume TOPIC GROUP OUT STOP   consume as a group member until STOP exists

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


if __name__ == "__main__":
    {"produce": produce, "consume": consume}[sys.argv[1]](*sys.argv[2:])
