"""What opening a partition costs with its checks: the index check of a sealed segment at open,
and recovery of an active segment with damage (a hole found by scanning forward, no Ray).

    .venv/bin/python -m benchmarks.recovery_open [--batches 16000]

Prints one table: median of 5 opens of each case, after a warm-up open.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from rayka.config import TopicConfig
from rayka.partitions import recovery
from rayka.partitions.log import PartitionLog


def _fill(directory: Path, batches: int, cfg: TopicConfig, roll: bool) -> None:
    log = PartitionLog(directory, config=cfg)
    value = b"x" * 4000
    for _ in range(batches):
        log.append(pa.table({"value": pa.array([value], pa.binary())}))
    if roll:
        log.roll()
    log.close()


def _open_ms(directory: Path, cfg: TopicConfig, before=None) -> float:
    times = []
    for _ in range(6):
        if before is not None:
            before()
        start = time.perf_counter()
        log = PartitionLog(directory, config=cfg)
        times.append((time.perf_counter() - start) * 1000)
        log.close()
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=16000)
    args = parser.parse_args()
    cfg = TopicConfig(index_interval_bytes=4096, segment_bytes=1 << 30)
    root = Path(tempfile.mkdtemp(prefix="rayka-open-"))
    rows = []
    try:
        sealed = root / "sealed"
        _fill(sealed, args.batches, cfg, roll=True)
        entries = (next(sealed.glob("*.index")).stat().st_size) // 16
        rows.append((f"sealed segment, {entries} index entries, checked", _open_ms(sealed, cfg)))
        real = recovery.index_problem
        recovery.index_problem = lambda *a: None
        try:
            rows.append((f"sealed segment, {entries} index entries, unchecked", _open_ms(sealed, cfg)))
        finally:
            recovery.index_problem = real

        active = root / "active"
        _fill(active, args.batches, cfg, roll=False)
        segment = next(active.glob("*.arrows"))
        intact = segment.read_bytes()

        def crash():
            segment.write_bytes(intact)
            (active / ".clean_shutdown").unlink(missing_ok=True)

        rows.append((f"unclean open, {len(intact) / 2**20:.0f} MiB active segment, intact", _open_ms(active, cfg, crash)))
        data = bytearray(intact)
        middle = data.index(b"rayka:v2", len(data) // 2)
        data[middle - 200 : middle + 16] = b"\0" * 216  # framing and header of a batch mid-file
        pristine = bytes(data)

        def damage_and_crash():
            segment.write_bytes(pristine)
            (active / ".clean_shutdown").unlink(missing_ok=True)

        mib = len(pristine) / 2**20
        rows.append((f"unclean open, {mib:.0f} MiB active segment, one damaged batch", _open_ms(active, cfg, damage_and_crash)))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    width = max(len(r[0]) for r in rows)
    print(f"{'case'.ljust(width)}  open ms (median of 5)")
    for name, ms in rows:
        print(f"{name.ljust(width)}  {ms:10.1f}")


if __name__ == "__main__":
    main()
