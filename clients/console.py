"""The loops behind ``rayka produce``, ``consume`` and ``tail``: files in bulk, lines one by one,
records out (rayka.clients.render), progress bars, and a clean stop on Ctrl-C or SIGTERM.

They take a Producer or Consumer (or anything with the same methods) and streams, and import
no Ray, so they are tested in-process with fakes. Conversions live in rayka.clients.formats.
"""

from __future__ import annotations

import contextlib
import csv
import io
import signal
import sys
import threading
import time

from tqdm import tqdm

from rayka.clients import formats, render
from rayka.errors import BufferFullError, InputFormatError, ProducerClosedError, RaykaError

__all__ = ["want_progress", "progress_bar", "produce_file", "produce_stream", "record_writer",
           "consume_loop", "stop_on_signals"]


def want_progress(flag: bool | None, stream=None) -> bool:
    """Progress bars when asked (``--progress``), else only when stderr is a terminal."""
    if flag is not None:
        return flag
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def progress_bar(enabled: bool, **kwargs) -> tqdm:
    """A tqdm bar on stderr, or a disabled one (same calls, no output)."""
    return tqdm(disable=not enabled, file=sys.stderr, dynamic_ncols=True, **{"leave": True, **kwargs})


def produce_file(producer, topic: str, source: formats.FileSource, *, partition: int | None = None,
                 progress: bool = False) -> int:
    """Send a whole file with ``send_table``: read and check all of it first (a bad line or
    column sends nothing), then send its chunks. Returns the number of records acknowledged."""
    tables = []
    with progress_bar(progress, total=source.total, unit=source.unit, unit_scale=True,
                      desc=f"reading {source.path}") as bar:
        for table, done in source:
            if table.num_rows:
                tables.append(table)
            bar.update(done)
    total = sum(t.num_rows for t in tables)
    pending: list = []  # (future, rows), oldest first
    sent = 0
    with progress_bar(progress, total=total, unit="rec", unit_scale=True, desc=f"sending to {topic}") as bar:
        for table in tables:
            pending.append((producer.send_table(topic, table, partition=partition), table.num_rows))
            while pending and pending[0][0].done():
                sent += _settle(pending.pop(0), bar)
        while pending:
            sent += _settle(pending.pop(0), bar)
    return sent


def _settle(item, bar) -> int:
    future, rows = item
    future.result()  # raises the chunk's error
    bar.update(rows)
    return rows


def produce_stream(producer, topic: str, stream, fmt: str, schema, *, key_sep: str | None = None,
                   partition: int | None = None, progress: bool = False, on_error=None) -> int:
    """Send each line (raw or JSON) or CSV row of binary ``stream`` with ``send`` as it comes;
    ``on_error(exc)`` hears each failed record. A bad line raises InputFormatError saying how
    many records before it were sent."""
    count = 0
    with progress_bar(progress, unit="rec", unit_scale=True, desc=f"producing to {topic}") as bar:
        try:
            for where, (key, value, headers, ts) in _rows(stream, fmt, schema, key_sep, topic):
                try:
                    future = producer.send(topic, value=value, key=key, headers=headers, timestamp_ms=ts,
                                           partition=partition)
                except (RaykaError, TypeError, ValueError, ArithmeticError) as exc:
                    if isinstance(exc, (BufferFullError, ProducerClosedError)):
                        raise
                    # send() refused the record (a timestamp out of range, too large, ...): say where.
                    raise InputFormatError(f"{where}: {exc}") from None
                if on_error is not None:
                    future.add_done_callback(lambda f: f.exception() is not None and on_error(f.exception()))
                count += 1
                bar.update(1)
        except InputFormatError as exc:
            raise InputFormatError(f"{exc}; the {count} record(s) before it were sent") from None
    return count


def _rows(stream, fmt: str, schema, key_sep: str | None, topic: str):
    """(where, Row) for each record of ``stream``; ``where`` names its line."""
    if fmt == "raw":
        sep = key_sep.encode() if key_sep is not None else None
        for lineno, line in enumerate(stream, 1):
            line = line.rstrip(b"\r\n")
            key = None
            if sep is not None:
                if sep not in line:
                    raise InputFormatError(f"line {lineno} has no key separator {key_sep!r}")
                key, line = line.split(sep, 1)
            if schema is not None:
                raise InputFormatError(f"topic {topic!r} is typed (columns {schema.names}): raw lines cannot "
                                       "fill its columns; use --format json or csv")
            yield f"line {lineno}", formats.Row(key, line, None, None)
    elif fmt == "json":
        for lineno, line in enumerate(stream, 1):
            row = formats.parse_json_line(line, schema, f"line {lineno}", topic)
            if row is not None:
                yield f"line {lineno}", row
    elif fmt == "csv":
        # utf-8-sig: a byte order mark (Excel writes one) is not part of the first column's name.
        reader = csv.DictReader(io.TextIOWrapper(stream, encoding="utf-8-sig", newline=""))
        for row in reader:
            yield f"line {reader.line_num}", formats.parse_csv_row(row, schema, f"line {reader.line_num}", topic)
    else:
        raise InputFormatError(f"standard input can be raw, json or csv, not {fmt!r} (parquet needs --file)")


def record_writer(fmt: str, schema, out, *, print_key: bool = False, print_offset: bool = False,
                  key_sep: str = "\t"):
    """A function that writes a list of Records to binary ``out`` as ``raw``, ``json`` or ``table``."""
    if fmt == "json":
        return lambda records: out.write(b"".join(render.record_json(r).encode() + b"\n" for r in records))
    if fmt == "table":
        table = render.TableWriter(schema)
        return lambda records: out.write(table.lines(records).encode())
    sep = key_sep.encode()
    return lambda records: out.write(b"".join(
        render.raw_line(r, print_key=print_key, print_offset=print_offset, sep=sep) for r in records))


def consume_loop(consumer, write, *, out=None, max_records: int | None = None, timeout_ms: float | None = None,
                 stop: threading.Event | None = None, progress: bool = False, on_ready=None,
                 poll_ms: float = 500) -> int:
    """Poll and write until ``max_records``, ``timeout_ms`` without a record, ``stop`` is set or
    the reader of ``out`` goes away. Every record polled is written before the next poll (so what
    auto-commit commits was printed). ``on_ready()`` runs once the consumer has partitions and
    positions. Returns the number of records written."""
    stop = stop or threading.Event()
    seen = 0
    if max_records is not None and max_records <= 0:
        return 0  # --max 0 prints nothing (0 is not "no limit")
    ready = on_ready is None
    idle_since = time.monotonic()
    with progress_bar(progress, total=max_records, unit="rec", unit_scale=True, desc="consuming") as bar:
        while not stop.is_set():
            wait = poll_ms
            if timeout_ms is not None:
                wait = max(0.0, min(poll_ms, timeout_ms - (time.monotonic() - idle_since) * 1000))
            limit = None if max_records is None else max_records - seen
            records = consumer.poll(timeout_ms=wait, max_records=min(limit or 500, 500))
            if not ready and consumer.assignment():
                ready = True
                on_ready()
            if records:
                try:
                    write(records)
                    if out is not None:
                        out.flush()
                except BrokenPipeError:
                    break  # e.g. `rayka consume ... | head`: the reader has all it wanted
                seen += len(records)
                bar.update(len(records))
                idle_since = time.monotonic()
                if max_records is not None and seen >= max_records:
                    break
            elif timeout_ms is not None and (time.monotonic() - idle_since) * 1000 >= timeout_ms:
                break
    return seen


@contextlib.contextmanager
def stop_on_signals(signals=(signal.SIGINT, signal.SIGTERM)):
    """An Event set by the first Ctrl-C or SIGTERM, so a loop can end cleanly (close, commit);
    a second signal raises KeyboardInterrupt. Handlers are restored on exit."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
