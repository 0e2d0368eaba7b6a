"""RecordBatch v2 codec speed: records/s for decode and encode of 100k 100-byte records.

``python -m benchmarks.gateway_codec`` prints one table: warm decode and encode, uncompressed
and lz4 (one batch of 100k records, and the same records as 100 batches of 1,000 and 1,000 of
100, as clients send them: the per-batch cost shows), then the first call in a fresh process: with numba's on-disk cache empty (the
compile, paid once per machine) and with it filled (every later process). Takes ~15 s.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

N = 100_000
VALUE_BYTES = 100


def make_batch(n: int = N, value_bytes: int = VALUE_BYTES, seed: int = 0) -> pa.RecordBatch:
    """n records in rayka's stored layout: 8-byte keys, random values, no headers."""
    from rayka.partitions.records import HEADERS_TYPE, log_schema

    rng = np.random.default_rng(seed)
    values = rng.integers(0, 256, n * value_bytes, dtype=np.uint8)
    value_off = np.arange(0, (n + 1) * value_bytes, value_bytes, dtype=np.int32)
    keys = np.frombuffer(np.arange(n, dtype=np.int64).tobytes(), np.uint8)
    key_off = np.arange(0, (n + 1) * 8, 8, dtype=np.int32)
    cols = [
        pa.array(np.arange(n, dtype=np.int64)),
        pa.array(1_700_000_000_000 + np.arange(n, dtype=np.int64) // 100),
        pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(key_off), pa.py_buffer(keys)]),
        pa.nulls(n, HEADERS_TYPE),
        pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(value_off), pa.py_buffer(values)]),
    ]
    return pa.RecordBatch.from_arrays(cols, schema=log_schema(None))


def _best(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _first_call(cache_dir: str) -> float:
    """Seconds for import + one encode + one decode in a fresh process using ``cache_dir``."""
    code = ("import time; t=time.perf_counter();"
            "from rayka.gateway.records import encode_batch, decode_batches;"
            "from benchmarks.gateway_codec import make_batch;"
            "decode_batches(encode_batch(make_batch(10)));"
            "print(time.perf_counter()-t)")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    """Print the table."""
    from rayka.gateway.records import decode_batches, encode_batches

    batch = make_batch()
    rows = []
    for codec in (None, "lz4"):
        for size in (N, 1000, 100):
            parts = [batch.slice(i, size) for i in range(0, N, size)]
            wire = encode_batches(parts, compression=codec)
            decode_batches(wire)  # warm
            label = f"{N // size}x{size}"
            rows.append((f"decode {label}", codec, _best(lambda: decode_batches(wire), 5)))
            rows.append((f"encode {label}", codec, _best(lambda: encode_batches(parts, compression=codec), 5)))
    print(f"{'operation':<18} {'codec':<6} {'ms':>8} {'records/s':>12}")
    for name, codec, secs in rows:
        print(f"{name:<18} {codec or 'none':<6} {secs * 1e3:8.1f} {N / secs:12,.0f}")
    with tempfile.TemporaryDirectory() as cache:
        cold = _first_call(cache)
        cached = _first_call(cache)
    print(f"first call in a fresh process (import + encode + decode): "
          f"{cold:.2f} s with numba's cache empty, {cached:.2f} s with it filled")


if __name__ == "__main__":
    main()
