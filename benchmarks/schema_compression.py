"""Compression of stored batches, none / lz4 / zstd: ``python -m benchmarks.schema_compression``.

Two realistic data sets, each sent with ``Producer.send_table`` into a one-partition topic per
codec (topic config ``compression.type``; Ray ``num_cpus=2``, an embedded cluster of its own):

- *JSON click events*: an untyped topic, each value a ~300-byte JSON object (event and session
  ids, user id, event type, url, referrer, user agent, an ISO timestamp, a price), generated
  deterministically (seeded) from realistic vocabularies: repetitive, as real click streams are;
- *typed numeric rows*: a typed topic of int64 ids, float64 measurements and a timestamp column
  (a random walk and counters, not random noise that no codec could shrink).

Columns: bytes on disk (the sum of the topic's segment files after one copy of the data was
sent) and its ratio to ``none``; ``send_table`` throughput (MB/s of the table's Arrow bytes, rows/s)
and its ratio to ``none``. Each codec gets its cold first call reported on its own row, then
``repeats`` timed calls (the median), taken round robin over the codecs (none, lz4, zstd, none,
...) so that a slow spell of a shared machine falls on all of them alike; the throughput ratio
is the median of each round's ratio to that round's ``none`` call;
``benchmarks.common.settle()`` runs before each call.
The producer compresses the batches it ships with the topic's codec; the partition decompresses
them (to validate them) and stores the producer's compressed buffers as they came, compressing
only the columns it makes (offsets, and timestamps it fills in: ``partitions/reframe.py``).

Target (issue 13): zstd at least halves the click events on disk while ``send_table`` keeps at
least 70% of its uncompressed throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

__all__ = ["run_compression", "click_events", "numeric_rows", "main"]

CODECS = ("none", "lz4", "zstd")
CHUNK = 50_000
NUMERIC_SCHEMA = pa.schema([("user_id", pa.int64()), ("item_id", pa.int64()), ("price", pa.float64()),
                            ("temperature", pa.float64()), ("event_time", pa.timestamp("ms"))])
_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
]
_PAGES = ["/", "/search", "/cart", "/checkout", "/account", "/category/shoes", "/category/books",
          "/category/electronics", "/deals", "/help/shipping"]
_EVENTS = ["page_view", "click", "add_to_cart", "purchase", "scroll", "search"]
_REFERRERS = ["https://www.google.com/", "https://www.bing.com/", "https://news.ycombinator.com/", "", "https://t.co/x"]


def click_events(n: int, seed: int = 13) -> pa.Table:
    """``n`` JSON click events (about 300 bytes each) as an untyped topic's ``value`` column."""
    rng = random.Random(seed)
    t0 = 1_732_480_000_000
    values = []
    for i in range(n):
        page = rng.choice(_PAGES)
        url = f"https://shop.example.com{page}" + (f"/item/{rng.randrange(50_000)}" if rng.random() < 0.5 else "")
        ts = t0 + i * 37 + rng.randrange(1000)
        event = {
            "event_id": "%032x" % rng.getrandbits(128),
            "session_id": "s-%012x" % rng.getrandbits(48 if rng.random() < 0.1 else 20),
            "user_id": rng.randrange(200_000),
            "type": rng.choice(_EVENTS),
            "url": url,
            "referrer": rng.choice(_REFERRERS),
            "user_agent": rng.choice(_AGENTS),
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts / 1000)) + ".%03dZ" % (ts % 1000),
            "price": round(rng.lognormvariate(3, 1), 2) if rng.random() < 0.2 else None,
        }
        values.append(json.dumps(event, separators=(",", ":")).encode())
    return pa.table({"value": pa.array(values, pa.binary())})


def numeric_rows(n: int, seed: int = 13) -> pa.Table:
    """``n`` rows of the typed topic's ``NUMERIC_SCHEMA``: ids, a random-walk measurement,
    prices with two decimals, millisecond timestamps a few ms apart."""
    rng = np.random.default_rng(seed)
    return pa.table({
        "user_id": pa.array(rng.integers(0, 200_000, n)),
        "item_id": pa.array(rng.zipf(1.3, n) % 100_000),
        "price": pa.array(np.round(rng.lognormal(3, 1, n), 2)),
        "temperature": pa.array(20 + np.cumsum(rng.normal(0, 0.01, n))),
        "event_time": pa.array(1_732_480_000_000 + np.cumsum(rng.integers(0, 40, n)), pa.timestamp("ms")),
    }, schema=NUMERIC_SCHEMA)


def _segment_bytes(data_dir: Path, topic: str) -> int:
    return sum(p.stat().st_size for p in (data_dir / "topics" / topic).rglob("*.arrows"))


def _send(producer, topic: str, table: pa.Table) -> float:
    t0 = time.perf_counter()
    futures = [producer.send_table(topic, table.slice(s, CHUNK)) for s in range(0, table.num_rows, CHUNK)]
    for f in futures:
        f.result()
    return time.perf_counter() - t0


def run_compression(click_rows: int = 200_000, numeric_rows_n: int = 1_000_000, repeats: int = 5,
                    quick: bool = False) -> list[dict]:
    """Rows of the compression table (see the module's docstring)."""
    import rayka
    from benchmarks.common import settle as _settle
    from rayka.testing import embedded_cluster

    settle = (lambda: _settle(0.5)) if quick else _settle
    sets = {"JSON click events": (click_events(click_rows), None),
            "typed numeric rows": (numeric_rows(numeric_rows_n), NUMERIC_SCHEMA)}
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="rayka-compress-") as tmp, embedded_cluster(tmp) as cluster:
        admin = rayka.Admin(cluster)
        for data_name, (table, schema) in sets.items():
            topics = {codec: f"{data_name.split()[0].lower()}-{codec}" for codec in CODECS}
            for codec, topic in topics.items():
                admin.create_topic(topic, partitions=1, schema=schema, config={"compression.type": codec})
            cold, disk, warm = {}, {}, {codec: [] for codec in CODECS}
            with rayka.Producer(cluster=cluster) as producer:
                for codec, topic in topics.items():
                    settle()
                    cold[codec] = _send(producer, topic, table)
                    disk[codec] = _segment_bytes(Path(cluster.data_dir), topic)
                # Round robin: on a shared machine a slow spell then hits every codec alike,
                # not only the one whose calls it happens to fall on.
                for _ in range(repeats):
                    for codec, topic in topics.items():
                        settle()
                        warm[codec].append(_send(producer, topic, table))
            ref: dict | None = None
            for codec in CODECS:
                seconds = statistics.median(warm[codec])
                row = {"data": data_name, "codec": codec, "rows": table.num_rows, "disk_bytes": disk[codec],
                       "cold_s": cold[codec], "seconds": seconds, "mb_per_s": table.nbytes / seconds / 1e6,
                       "rows_per_s": table.num_rows / seconds}
                ref = ref or row
                row["disk_ratio"] = disk[codec] / ref["disk_bytes"]
                # Each call against the none call of its round: the median of those ratios.
                row["speed_ratio"] = statistics.median(n / c for n, c in zip(warm["none"], warm[codec]))
                rows.append(row)
    return rows


def verdict(rows: list[dict]) -> str:
    """The issue's target, met or not, from the click-event zstd row."""
    z = next(r for r in rows if r["data"] == "JSON click events" and r["codec"] == "zstd")
    ok = z["disk_ratio"] <= 0.5 and z["speed_ratio"] >= 0.7
    return (f"target (zstd halves click events on disk, send_table keeps >= 70%): disk x{z['disk_ratio']:.2f}, "
            f"throughput {z['speed_ratio']:.0%} of none: {'met' if ok else 'NOT met'}")


def format_rows(rows: list[dict]) -> str:
    header = ["data", "codec", "rows", "disk MB", "vs none", "cold s", "MB/s", "rows/s", "vs none"]
    cells = [header] + [[r["data"], r["codec"], f"{r['rows']:,}", f"{r['disk_bytes'] / 1e6:,.1f}",
                         f"{r['disk_ratio']:.2f}", f"{r['cold_s']:.2f}", f"{r['mb_per_s']:,.1f}",
                         f"{r['rows_per_s']:,.0f}", f"{r['speed_ratio']:.0%}"] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells)


def main(argv=None) -> int:
    from benchmarks.common import machine

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--click-rows", type=int, default=200_000)
    parser.add_argument("--numeric-rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5, help="timed send_table calls after the cold one")
    parser.add_argument("--quick", action="store_true", help="less memory warming between rows")
    args = parser.parse_args(argv)
    print(f"machine: {machine()}", flush=True)
    rows = run_compression(args.click_rows, args.numeric_rows, args.repeats, args.quick)
    print(format_rows(rows), flush=True)
    print(verdict(rows), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
