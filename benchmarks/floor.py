"""The latency floor: what three bare Ray actors in rayka's shape reach on this machine.

A producer actor sends timestamped 100-byte records at a fixed rate to a broker
actor (one call in flight, everything that arrived meanwhile in the next call, as
rayka's producer batches), and the driver long-polls the broker (a fetch waits on
a condition until records arrive, in its own concurrency group, as a partition
actor's does). No Arrow, no files, no checksums: the two actor hops and the
batching wait alone. rayka's end-to-end rows are read against this one.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import ray

from benchmarks.common import Row, gather_latencies, paced, percentiles

__all__ = ["latency_floor"]

_RECORD = 100


@ray.remote(num_cpus=0, concurrency_groups={"append": 1, "fetch": 8})
class _Broker:
    def __init__(self):
        self._chunks: list[bytes] = []
        self._cv = threading.Condition()

    @ray.method(concurrency_group="append")
    def append(self, payload: bytes) -> int:
        with self._cv:
            self._chunks.append(payload)
            self._cv.notify_all()
            return len(self._chunks)

    @ray.method(concurrency_group="fetch")
    def fetch(self, index: int, wait_s: float) -> list[bytes]:
        with self._cv:
            if len(self._chunks) <= index:
                self._cv.wait(wait_s)
            return self._chunks[index:]


@ray.remote(num_cpus=0)
class _Sender:
    def run(self, broker, rate: int, seconds: float) -> int:
        pending: list[bytes] = []
        cv = threading.Condition()
        done = False

        def ship() -> None:
            while True:
                with cv:
                    while not pending and not done:
                        cv.wait()
                    if not pending:
                        return
                    payload = b"".join(pending)
                    pending.clear()
                ray.get(broker.append.remote(payload))

        shipper = threading.Thread(target=ship, daemon=True)
        shipper.start()
        pad = b"x" * (_RECORD - 8)
        for stamp, duration in ((False, 1.0), (True, seconds)):  # one second of warm-up first
            for burst in paced(rate, duration):
                with cv:
                    for _ in range(burst):
                        pending.append((time.time_ns() if stamp else 0).to_bytes(8, "little") + pad)
                    cv.notify()
        with cv:
            done = True
            cv.notify()
        shipper.join()
        return int(rate * seconds)


def latency_floor(rate: int, seconds: float) -> Row:
    """End-to-end latency of the bare three-actor pipeline at ``rate`` records/s."""
    broker, sender = _Broker.remote(), _Sender.remote()
    ray.get(broker.fetch.remote(0, 0.0))
    ref = sender.run.remote(broker, rate, seconds)
    index = 0

    def receive():
        nonlocal index
        chunks = ray.get(broker.fetch.remote(index, 0.2))
        index += len(chunks)
        # The first 8 bytes of every 100-byte record: strided views, no copy.
        return np.concatenate([np.ndarray((len(c) // _RECORD,), dtype="<i8", buffer=c, strides=(_RECORD,))
                               for c in chunks] or [np.empty(0, "<i8")])

    lat, sent, dt = gather_latencies(receive, ref, seconds)
    ray.kill(broker)
    ray.kill(sender)
    p50, p99, p999 = percentiles(lat)
    return Row("floor", f"bare actors, end-to-end at {rate:,}/s", len(lat), dt, _RECORD, p50, p99, p999,
               note=f"3 bare actors in rayka's shape; {len(lat):,}/{sent or 0:,} received")
