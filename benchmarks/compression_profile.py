"""Where a compressed ``send_table`` chunk's time goes: ``python -m benchmarks.compression_profile``.

One chunk (default 50,000 rows, as ``benchmarks.schema_compression`` sends them) of each data
set of that benchmark, every step of its way timed in-process, without Ray (the best of
``--runs``, as the machine is shared): the client's check (``prepare_batch``) and IPC write
(``to_ipc``, where it compresses), then the partition's read of the stream (where it
decompresses: ``reframe.read_produced``), its ``prepare_batch`` and offset stamping, and its
encode of the stored message two ways: ``codec.encode_batch`` (compressing every column again,
what the partition did before) and ``reframe.encode_stored`` (what it does now: the producer's
compressed buffers kept, only the columns the partition made compressed; under
``reframe.REUSE_MIN_BYTES`` it compresses again, as that is cheaper there), both with the CRC.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.schema_compression import NUMERIC_SCHEMA, click_events, numeric_rows

__all__ = ["profile", "main"]


def _best(fn, runs: int):
    best, out = float("inf"), None
    for _ in range(runs):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best * 1e3, out


def profile(rows: int = 50_000, runs: int = 15) -> list[dict]:
    """One dict per data set and codec: the milliseconds of each step (see the module docstring)."""
    from rayka.clients.accumulator import to_ipc
    from rayka.config import TopicConfig
    from rayka.partitions import codec, reframe
    from rayka.partitions.records import log_schema, prepare_batch, stamp_offsets

    scratch = codec.EncodeBuffer()
    max_bytes = TopicConfig().max_message_bytes  # the default topic's: its record-size check
    out = []
    for data, table, value_schema in (("JSON click events", click_events(rows), None),
                                      ("typed numeric rows", numeric_rows(rows), NUMERIC_SCHEMA)):
        schema = log_schema(value_schema)
        schema_size = len(codec.schema_message(schema))
        for kind in ("none", "lz4", "zstd"):
            options = codec.write_options(kind)
            row = {"data": data, "codec": kind, "MB": table.nbytes / 1e6}
            row["client check"], _ = _best(
                lambda: prepare_batch(table, schema, now_ms=0, max_message_bytes=max_bytes), runs)
            row["client to_ipc"], wire = _best(lambda: to_ipc(table, options), runs)
            row["wire MB"] = (wire.size if hasattr(wire, "size") else len(wire)) / 1e6
            row["read"], produced = _best(lambda: reframe.read_produced(wire), runs)
            received = produced.batch if isinstance(produced, reframe.ProducedBatch) else produced
            row["prepare"], prepared = _best(
                lambda: prepare_batch(received, schema, now_ms=1, max_message_bytes=max_bytes), runs)
            row["stamp"], stamped = _best(lambda: stamp_offsets(prepared, 0), runs)
            fields = dict(schema_size=schema_size, max_timestamp_ms=1, append_ms=1, scratch=scratch)
            row["encode again"], _ = _best(lambda: codec.encode_batch(stamped, options=options, **fields), runs)
            row["encode reusing"], _ = _best(
                lambda: reframe.encode_stored(stamped, produced, options=options, compression=kind, **fields), runs)
            out.append(row)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=15, help="timed runs of each step (the best is shown)")
    args = parser.parse_args(argv)
    rows = profile(args.rows, args.runs)
    steps = ["client check", "client to_ipc", "read", "prepare", "stamp", "encode again", "encode reusing"]
    header = ["data", "codec", "MB", "wire MB"] + [f"{s} ms" for s in steps]
    cells = [header] + [[r["data"], r["codec"], f"{r['MB']:.1f}", f"{r['wire MB']:.2f}"]
                        + [f"{r[s]:.1f}" for s in steps] for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    print("\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(c))).rstrip() for c in cells))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
