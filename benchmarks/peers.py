"""What a user would pick instead of rayka, measured the same way: the bare-actor ceiling,
ray.util.queue.Queue, and Redis Streams (redis-server from Debian, on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pyarrow as pa
import pyarrow.ipc as ipc
import ray

from benchmarks.common import Row, RssSampler, paced, percentiles
from rayka.partitions.records import log_schema

__all__ = ["ceiling", "ray_queue_single", "ray_queue_batched", "RedisPeer"]


@ray.remote(num_cpus=0)
class CeilingActor:
    """A bare actor appending pre-built Arrow batches to an IPC stream file: zero rayka overhead."""

    def __init__(self, path: str):
        self._sink = pa.OSFile(path, "wb")
        self._writer = ipc.new_stream(self._sink, log_schema())
        self._rows = 0

    def append(self, batch: pa.RecordBatch) -> int:
        self._writer.write_batch(batch)
        self._rows += batch.num_rows
        return self._rows

    def close(self) -> int:
        self._writer.close()
        self._sink.close()
        return self._rows


def prebuilt_batch(rows: int, value_bytes: int) -> pa.RecordBatch:
    import numpy as np

    now = time.time_ns() // 1_000_000
    return pa.RecordBatch.from_arrays(
        [pa.array(np.arange(rows, dtype=np.int64)), pa.array(np.full(rows, now, np.int64)),
         pa.nulls(rows, pa.binary()), pa.nulls(rows, log_schema().field("headers").type),
         pa.array([b"x" * value_bytes] * rows, pa.binary())],
        schema=log_schema(),
    )


def ceiling(total: int, value_bytes: int = 100, rows: int = 10_000, tmpdir: str | None = None) -> Row:
    """Bare actor, one call in flight, ``rows``-row batches: the throughput rayka could reach."""
    path = os.path.join(tmpdir or tempfile.gettempdir(), f"ceiling-{os.getpid()}.arrows")
    actor = CeilingActor.remote(path)
    batch = prebuilt_batch(rows, value_bytes)
    ray.get(actor.append.remote(batch))  # warm up
    calls = max(1, total // rows)
    with RssSampler(("CeilingActor",)) as rss:
        t0 = time.perf_counter()
        ref = None
        for _ in range(calls):
            nxt = actor.append.remote(batch)
            if ref is not None:
                ray.get(ref)
            ref = nxt
        ray.get(ref)
        dt = time.perf_counter() - t0
    ray.get(actor.close.remote())
    ray.kill(actor)
    os.unlink(path)
    return rss.fill(Row("ceiling", f"bare actor, {rows:,}-row batches", calls * rows, dt, value_bytes,
                        extra={"compare": "produce"}))


def ray_queue_single(total: int, value_bytes: int = 100) -> Row:
    from ray.util.queue import Queue

    q = Queue()
    value = b"x" * value_bytes
    q.put(value)
    q.get()
    t0 = time.perf_counter()
    deadline = t0 + 20
    n = 0
    while n < total and time.perf_counter() < deadline:
        q.put(value)
        n += 1
    dt = time.perf_counter() - t0
    q.shutdown()
    return Row("ray.util.queue", "put() per message", n, dt, value_bytes)


def ray_queue_batched(total: int, value_bytes: int = 100, batch: int = 1000) -> Row:
    from ray.util.queue import Queue

    q = Queue()
    items = [b"x" * value_bytes] * batch
    t0 = time.perf_counter()
    deadline = t0 + 30
    n = 0
    while n < total and time.perf_counter() < deadline:
        q.put_nowait_batch(items)
        n += batch
        if q.qsize() > 200_000:  # keep the queue actor's memory bounded: drain as a consumer would
            q.get_nowait_batch(q.qsize())
    dt = time.perf_counter() - t0
    q.shutdown()
    return Row("ray.util.queue", f"put_nowait_batch({batch})", n, dt, value_bytes)


class RedisPeer:
    """redis-server (Debian's package, installed if missing) on 127.0.0.1 with AOF everysec."""

    def __init__(self):
        self.proc = None
        self.error = None
        self.dir = tempfile.mkdtemp(prefix="rayka-redis-")
        self.port = _free_port()

    def start(self) -> bool:
        server = shutil.which("redis-server")
        if server is None:
            try:
                env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
                subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True, timeout=240, env=env)
                subprocess.run(["apt-get", "install", "-y", "-qq", "redis-server"], check=True,
                               capture_output=True, timeout=300, env=env)
            except (subprocess.SubprocessError, OSError) as exc:
                self.error = f"redis-server could not be installed: {exc}"
                return False
            server = shutil.which("redis-server")
            if server is None:
                self.error = "redis-server not found after install"
                return False
        try:
            import redis  # noqa: F401
        except ImportError:
            self.error = "python package redis missing (pip install -e '.[bench]')"
            return False
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--appendfsync", "everysec", "--dir", self.dir, "--save", "", "--protected-mode", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                self.client().ping()
                return True
            except Exception:  # noqa: BLE001 - not up yet
                time.sleep(0.05)
        self.error = "redis-server did not answer within 20 s"
        return False

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def produce(self, total: int, value_bytes: int = 100, pipeline: int = 1000) -> Row:
        r = self.client()
        r.delete("bench")
        value = b"x" * value_bytes
        with RssSampler(("redis-server",)) as rss:
            t0 = time.perf_counter()
            deadline = t0 + 60
            n = 0
            while n < total and time.perf_counter() < deadline:
                pipe = r.pipeline(transaction=False)
                for _ in range(pipeline):
                    pipe.xadd("bench", {"v": value})
                pipe.execute()
                n += pipeline
            dt = time.perf_counter() - t0
        return rss.fill(Row("redis", f"XADD, pipelined {pipeline}", n, dt, value_bytes, extra={"compare": "produce"}))

    def consume(self, count: int = 1000, value_bytes: int = 100) -> Row:
        r = self.client()
        r.xgroup_create("bench", "g", id="0", mkstream=True)
        t0 = time.perf_counter()
        deadline = t0 + 60
        n = 0
        while time.perf_counter() < deadline:
            resp = r.xreadgroup("g", "c1", {"bench": ">"}, count=count)
            if not resp:
                break
            ids = [mid for mid, _ in resp[0][1]]
            r.xack("bench", "g", *ids)
            n += len(ids)
        dt = time.perf_counter() - t0
        return Row("redis", f"XREADGROUP {count} + XACK", n, dt, value_bytes, extra={"compare": "consume"})

    def latency(self, rate: int, seconds: float, value_bytes: int = 100) -> Row:
        r = self.client()
        r.delete("lat")
        lat = []
        stop = threading.Event()

        def reader():
            rr = self.client()
            last = "$"
            while not stop.is_set():
                resp = rr.xread({"lat": last}, block=100, count=10_000)
                now = time.time_ns()
                for _, entries in resp or []:
                    for mid, fields in entries:
                        last = mid
                        lat.append((now - int(fields[b"t"])) / 1e6)

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        time.sleep(0.2)  # let XREAD with $ start before the first XADD
        pad = b"x" * max(0, value_bytes - 19)
        t0 = time.perf_counter()
        n = 0
        for burst in paced(rate, seconds):
            pipe = r.pipeline(transaction=False)
            for _ in range(burst):
                pipe.xadd("lat", {"t": str(time.time_ns()), "v": pad})
            pipe.execute()
            n += burst
        dt = time.perf_counter() - t0
        deadline = time.monotonic() + 10
        while len(lat) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        t.join(5)
        p50, p99, p999 = percentiles(lat)
        return Row("redis", f"end-to-end at {rate:,}/s", n, dt, value_bytes, p50, p99, p999,
                   note=f"{len(lat):,}/{n:,} received")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
