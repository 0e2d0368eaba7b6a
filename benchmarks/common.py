"""Shared pieces of the benchmarks: a result row, an RSS sampler, pacing, percentiles, tables."""

from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import ray

__all__ = ["Row", "RssSampler", "percentiles", "paced", "format_table", "markdown_table", "machine"]


@dataclass
class Row:
    """One measured line of a benchmark table."""

    system: str
    workload: str
    messages: int = 0
    seconds: float = 0.0
    value_bytes: int = 100
    p50_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    rss_driver_mb: float | None = None
    rss_server_mb: float | None = None
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.msgs_per_s * self.value_bytes / 1e6


class RssSampler:
    """Samples the peak RSS of this process and of processes whose command line matches."""

    def __init__(self, server_match: tuple[str, ...] = ("PartitionActor",), interval_s: float = 0.05):
        import psutil

        self._psutil = psutil
        self._match = server_match
        self._interval = interval_s
        self._stop = threading.Event()
        self.driver_peak = 0
        self.server_peak = 0
        self._thread = None
        self._servers = []

    def _find_servers(self):
        found = []
        for proc in self._psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            if any(m in cmd for m in self._match):
                found.append(proc)
        return found

    def _run(self):
        me = self._psutil.Process(os.getpid())
        refresh = 0.0
        while not self._stop.is_set():
            try:
                self.driver_peak = max(self.driver_peak, me.memory_info().rss)
            except self._psutil.Error:
                pass
            now = time.monotonic()
            if now > refresh:
                self._servers = self._find_servers()
                refresh = now + 1.0
            for proc in self._servers:
                try:
                    self.server_peak = max(self.server_peak, proc.memory_info().rss)
                except self._psutil.Error:
                    pass
            self._stop.wait(self._interval)

    def __enter__(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def fill(self, row: Row) -> Row:
        row.rss_driver_mb = self.driver_peak / 1e6
        row.rss_server_mb = self.server_peak / 1e6 if self.server_peak else None
        return row


def percentiles(latencies_ms) -> tuple[float | None, float | None, float | None]:
    if len(latencies_ms) == 0:
        return None, None, None
    arr = np.asarray(latencies_ms, dtype=np.float64)
    p50, p99, p999 = np.percentile(arr, [50, 99, 99.9])
    return float(p50), float(p99), float(p999)


def paced(rate_per_s: int, seconds: float, tick_s: float = 0.001):
    """Yield how many messages to send at each tick so the average rate is ``rate_per_s``."""
    start = time.perf_counter()
    sent = 0
    total = int(rate_per_s * seconds)
    while sent < total:
        now = time.perf_counter()
        due = min(total, int((now - start) * rate_per_s) + 1)
        if due > sent:
            yield due - sent
            sent = due
        else:
            time.sleep(tick_s / 2)
        if now - start > seconds * 3:  # a loop that cannot keep up still ends
            break


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _cells(rows: list[Row], ref_ceiling: float | None, ref_redis: dict[str, float]):
    header = ["system", "workload", "msg/s", "MB/s", "p50 ms", "p99 ms", "p99.9 ms",
              "RSS drv MB", "RSS srv MB", "x ceiling", "x Redis", "note"]
    out = [header]
    for r in rows:
        base = (ref_ceiling or {}).get(r.value_bytes)
        ceiling = r.msgs_per_s / base if base and r.system == "rayka" and r.seconds and r.p50_ms is None else None
        redis = ref_redis.get((r.extra.get("compare", ""), r.value_bytes))
        vs_redis = r.msgs_per_s / redis if redis and r.system == "rayka" and r.seconds and r.p50_ms is None else None
        out.append([
            r.system, r.workload + (f" [{r.value_bytes} B values]" if r.value_bytes != 100 else ""), _cell(r.msgs_per_s if r.seconds else None, ",.0f"),
            _cell(r.mb_per_s if r.seconds else None, ",.1f"), _cell(r.p50_ms, ".2f"), _cell(r.p99_ms, ".2f"),
            _cell(r.p999_ms, ".2f"), _cell(r.rss_driver_mb, ",.0f"), _cell(r.rss_server_mb, ",.0f"),
            _cell(ceiling, ".2f"), _cell(vs_redis, ".1f"), r.note,
        ])
    return out


def format_table(rows: list[Row], ref_ceiling=None, ref_redis=None) -> str:
    cells = _cells(rows, ref_ceiling, ref_redis or {})
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells)


def markdown_table(rows: list[Row], ref_ceiling=None, ref_redis=None) -> str:
    cells = _cells(rows, ref_ceiling, ref_redis or {})
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
    return "\n".join(lines)


def machine() -> str:
    import pyarrow
    import ray

    return (f"{os.cpu_count()} CPUs, {_mem_gb():.0f} GiB RAM, {platform.machine()}, Python "
            f"{platform.python_version()}, Ray {ray.__version__}, pyarrow {pyarrow.__version__}")


def _mem_gb() -> float:
    try:
        import psutil

        return psutil.virtual_memory().total / 2**30
    except ImportError:
        return 0.0


def settle(warm_gib: float = 1.5) -> None:
    """Put the machine in the same state before every row: dirty pages written back, and
    ``warm_gib`` of memory touched and freed.

    On these VMs memory the guest has not touched lately is slow to touch (measured
    0.44 GB/s against 13 GB/s once touched; the host reclaims idle guest memory), so a
    row that happens to write its files or object-store copies into cold pages runs
    2-3x slower than the row before it. Touching and freeing memory first gives every
    row, rayka's and its peers', the same warm pages to allocate from.
    """
    os.sync()
    warm = np.ones(int(warm_gib * 2**30), dtype=np.uint8)
    del warm


def gather_latencies(receive, sender, seconds: float) -> tuple[list[float], int | None, float]:
    """Collect end-to-end latencies until every record the ``sender`` task sent has arrived.

    ``receive()`` waits briefly for records and returns their send times (ns since the
    epoch; 0 marks a warm-up record, not counted); ``sender`` is the ObjectRef of the
    task sending them, which returns how many it sent. Bounded by ``seconds * 3 + 30``.
    Returns (latencies in ms, records sent or None if the sender never finished, seconds).
    """
    lat: list[float] = []
    sent = None
    t0 = time.perf_counter()
    deadline = time.monotonic() + seconds * 3 + 30
    while time.monotonic() < deadline:
        stamps = receive()
        if len(stamps):
            now = time.time_ns()
            stamps = stamps[stamps > 0]
            lat.extend(((now - stamps) / 1e6).tolist())
        if sent is None and ray.wait([sender], timeout=0)[0]:
            sent = ray.get(sender)
        if sent is not None and len(lat) >= sent:
            break
    return lat, sent, time.perf_counter() - t0
