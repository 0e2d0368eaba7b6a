"""The CLI's record formats (rayka.clients.formats in, rayka.clients.render out) and loops
(rayka.clients.console), without Ray."""

import base64
import datetime as dt
import io
import json
import signal
import os
import threading

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rayka.clients import console, formats, render
from rayka.clients.types import GroupDescription, GroupPartitionDescription, MemberDescription, PartitionDescription
from rayka.clients.types import Record, TopicDescription, TopicPartition
from rayka.errors import InputFormatError

TYPED = pa.schema([("sym", pa.string()), ("px", pa.float64()), ("at", pa.timestamp("ms")), ("blob", pa.binary())])


# -- JSON lines in -----------------------------------------------------------------------------------


def test_untyped_json_line_fields_become_key_value_headers_and_time():
    row = formats.parse_json_line('{"key": "k", "value": "héllo", "headers": {"a": "b"}, "timestamp_ms": 5}', None)
    assert row == formats.Row(b"k", "héllo".encode(), [("a", b"b")], 5)
    assert formats.parse_json_line('{"value": {"a": [1, 2]}}', None).value == b'{"a":[1,2]}'
    assert formats.parse_json_line('{"value": 3}', None).value == b"3"
    assert formats.parse_json_line('{"value": null}', None).value is None
    assert formats.parse_json_line("   \n", None) is None


def test_base64_fields_are_decoded_and_consume_fields_ignored():
    line = json.dumps({"topic": "x", "partition": 3, "offset": 9, "key": base64.b64encode(b"\x00\xff").decode(),
                       "value": "plain", "headers": {"h": "/w=="}, "base64": ["key", "headers.h"]})
    assert formats.parse_json_line(line, None) == formats.Row(b"\x00\xff", b"plain", [("h", b"\xff")], None)
    with pytest.raises(InputFormatError, match="not base64"):
        formats.parse_json_line('{"value": "***", "base64": ["value"]}', None)


@pytest.mark.parametrize("line, match", [
    ('{"valu": "x"}', r"line 7: unknown fields \['valu'\]"),
    ("[1, 2]", "expected a JSON object, got list"),
    ("{not json", "not valid JSON"),
    ('{"value": "x", "timestamp_ms": "soon"}', "timestamp_ms must be an integer"),
    ('{"value": "x", "headers": ["a"]}', "headers must be an object"),
    ('{"key": 5, "value": "x"}', "'key' must be a string"),
])
def test_bad_untyped_json_lines_are_refused_naming_the_line(line, match):
    with pytest.raises(InputFormatError, match=match):
        formats.parse_json_line(line, None, "line 7")


def test_typed_json_line_takes_columns_by_name_top_level_or_nested_and_casts_strings():
    flat = formats.parse_json_line('{"key": "k", "sym": "X", "px": "1.5", "at": "2024-01-02T03:04:05"}', TYPED)
    assert flat.key == b"k"
    assert flat.value == {"sym": "X", "px": 1.5, "at": dt.datetime(2024, 1, 2, 3, 4, 5)}
    nested = formats.parse_json_line('{"value": {"sym": "Y", "blob": "/w=="}, "base64": ["value.blob"]}', TYPED)
    assert nested.value == {"sym": "Y", "blob": b"\xff"}
    with pytest.raises(InputFormatError, match=r"line 2: fields \['price'\] are not columns of topic 'trades'"):
        formats.parse_json_line('{"sym": "X", "price": 1}', TYPED, "line 2", "trades")
    with pytest.raises(InputFormatError, match="'px' is double; 'cheap' does not fit"):
        formats.parse_json_line('{"px": "cheap"}', TYPED)
    with pytest.raises(InputFormatError, match="'sym'"):
        formats.parse_json_line('{"sym": 12}', TYPED)


def test_csv_rows_cast_to_the_columns_and_empty_cells_are_null():
    row = formats.parse_csv_row({"key": "", "sym": "X", "px": "2", "timestamp_ms": "17"}, TYPED)
    assert row == formats.Row(None, {"sym": "X", "px": 2.0}, None, 17)
    assert formats.parse_csv_row({"key": "k", "value": "v"}, None) == formats.Row(b"k", b"v", None, None)
    with pytest.raises(InputFormatError, match=r"columns \['headers'\]"):
        formats.parse_csv_row({"value": "v", "headers": "x"}, None)


def test_rows_to_table_keeps_only_the_columns_that_are_set():
    t = formats.rows_to_table([formats.Row(None, b"a", None, None), formats.Row(b"k", b"b", None, None)], None)
    assert t.column_names == ["key", "value"] and t.column("key").to_pylist() == [None, b"k"]
    typed = formats.rows_to_table([formats.Row(None, {"sym": "X"}, [("h", b"v")], 3)], TYPED)
    assert typed.column_names == ["sym", "px", "at", "blob", "headers", "timestamp_ms"]
    assert typed.column("px").to_pylist() == [None] and typed.column("headers").to_pylist() == [[("h", b"v")]]


# -- files in ----------------------------------------------------------------------------------------


def test_format_of_a_file_comes_from_its_suffix():
    assert [formats.format_of(p) for p in ("a.jsonl", "b.JSON", "c.csv", "d.parquet")] == ["json", "json", "csv", "parquet"]
    with pytest.raises(InputFormatError, match="--format"):
        formats.format_of("data.txt")


def test_files_of_each_format_give_the_same_table_in_bounded_chunks(tmp_path):
    schema = pa.schema([("sym", pa.string()), ("qty", pa.int64())])
    rows = [{"sym": f"S{i}", "qty": i} for i in range(25)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "a.csv").write_text("qty,sym\n" + "".join(f"{r['qty']},{r['sym']}\n" for r in rows))
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "a.parquet")
    for name in ("a.jsonl", "a.csv", "a.parquet"):
        source = formats.FileSource(str(tmp_path / name), schema, chunk_rows=10)
        chunks = list(source)
        table = pa.concat_tables([t.select(["sym", "qty"]) for t, _ in chunks])
        assert table.to_pylist() == rows, name
        assert sum(done for _, done in chunks) == source.total and source.rows == 25
        if name != "a.csv":  # pyarrow's CSV reader reads in blocks of bytes, not rows
            assert max(t.num_rows for t, _ in chunks) == 10


def test_a_bad_file_is_refused_naming_the_file_and_line(tmp_path):
    schema = pa.schema([pa.field("sym", pa.string(), nullable=False), ("qty", pa.int64())])
    (tmp_path / "bad.jsonl").write_text('{"sym": "A"}\n{"sym": "B", "qty": "many"}\n')
    with pytest.raises(InputFormatError, match="bad.jsonl line 2: column 'qty'"):
        list(formats.FileSource(str(tmp_path / "bad.jsonl"), schema))
    (tmp_path / "nulls.csv").write_text("qty\n1\n")
    with pytest.raises(InputFormatError, match="nulls.csv: .*non-nullable value column 'sym'"):
        list(formats.FileSource(str(tmp_path / "nulls.csv"), schema))
    (tmp_path / "typo.csv").write_text("sym,qtty\nA,1\n")
    with pytest.raises(InputFormatError, match=r"columns \['qtty'\]"):
        list(formats.FileSource(str(tmp_path / "typo.csv"), schema))
    (tmp_path / "big.jsonl").write_text(json.dumps({"value": "x" * 100}) + "\n")
    with pytest.raises(InputFormatError, match="max.message.bytes"):
        list(formats.FileSource(str(tmp_path / "big.jsonl"), None, max_message_bytes=50))


def test_untyped_parquet_string_columns_become_bytes(tmp_path):
    pq.write_table(pa.table({"key": ["a"], "value": ["x"], "timestamp_ms": [7]}), tmp_path / "u.parquet")
    (table, _), = formats.FileSource(str(tmp_path / "u.parquet"), None)
    assert table.column("key").type == pa.binary() and table.column("value").to_pylist() == [b"x"]


# -- records out -------------------------------------------------------------------------------------


def _rec(value, key=b"k", headers=None, offset=0):
    return Record("t", 1, offset, 1_700_000_000_123, key, value, headers)


def test_record_json_prints_bytes_as_text_or_base64_and_names_the_base64_fields():
    line = json.loads(render.record_json(_rec(b"\xff\x00", key=b"user", headers={"h": b"ok"})))
    assert line == {"topic": "t", "partition": 1, "offset": 0, "timestamp_ms": 1_700_000_000_123, "key": "user",
                    "headers": {"h": "ok"}, "value": base64.b64encode(b"\xff\x00").decode(), "base64": ["value"]}
    typed = json.loads(render.record_json(_rec({"sym": "X", "at": dt.datetime(2024, 1, 1), "px": float("nan"),
                                                 "blob": b"\xfe"}, key=None)))
    assert typed["value"] == {"sym": "X", "at": "2024-01-01T00:00:00", "px": None, "blob": "/g=="}
    assert typed["base64"] == ["value.blob"] and typed["key"] is None and "base64" not in json.loads(
        render.record_json(_rec(b"text")))


def test_what_record_json_prints_parses_back_to_the_same_record():
    for rec, schema in ((_rec(b"\x80bin", key=b"\x01", headers={"h": b"\xff"}), None),
                        (_rec({"sym": "X", "px": 1.5, "at": dt.datetime(2024, 5, 6, 7, 8, 9), "blob": b"\x00\xff"}),
                         TYPED)):
        row = formats.parse_json_line(render.record_json(rec), schema)
        assert (row.key, row.value, dict(row.headers or {}) or None, row.timestamp_ms) == (
            rec.key, rec.value, rec.headers, rec.timestamp_ms)


def test_raw_line_is_todays_line_mode_with_typed_values_as_json():
    assert render.raw_line(_rec(b"v", offset=4), print_key=True, print_offset=True, sep=b":") == b"1:4:k:v\n"
    assert render.raw_line(_rec(None)) == b"\n"
    assert json.loads(render.raw_line(_rec({"sym": "X", "px": 2.0}))) == {"sym": "X", "px": 2.0}


def test_table_writer_streams_with_the_widths_of_its_first_rows():
    writer = render.TableWriter(pa.schema([("sym", pa.string()), ("px", pa.float64())]), max_width=8)
    first = writer.lines([_rec({"sym": "ABC", "px": 1.5})]).splitlines()
    assert first[0].split() == ["partition", "offset", "timestamp", "key", "sym", "px"]
    assert first[1].split() == ["1", "0", "2023-11-14", "22:13:20.123", "k", "ABC", "1.5"]
    later = writer.lines([_rec({"sym": "A-VERY-LONG-SYMBOL", "px": None}, offset=1)]).splitlines()
    assert len(later) == 1 and later[0].split()[-2:] == ["A-VERY-…", "-"]  # cut at max_width
    wide = render.TableWriter(None, max_width=40)
    wide.lines([_rec(b"ab")])
    assert wide.lines([_rec(b"abcdefghijkl")]).split()[-1] == "abcdefghijkl"  # 12 wide, though the first was 2
    assert wide.lines([_rec(b"abcdefghijklm")]).split()[-1] == "abcdefghijk…"


def test_descriptions_as_json_carry_every_field():
    topic = TopicDescription("t", [PartitionDescription(0, "node", ("node",), 2, 9, 100, 1, ((3, 4),))], 1,
                             {"retention.ms": 5}, pa.schema([("sym", pa.string())]))
    data = json.loads(json.dumps(render.topic_description_json(topic)))
    assert data["messages"] == 7 and data["partitions"][0]["damaged_offsets"] == [[3, 4]]
    assert data["value_schema"] == [{"name": "sym", "type": "string", "nullable": True}]
    group = GroupDescription("g", "Stable", "range", 3, [MemberDescription("m1", None, ["t"], [TopicPartition("t", 0)])],
                             [GroupPartitionDescription("t", 0, 5, 9, "m1", 0)])
    data = json.loads(json.dumps(render.group_description_json(group)))
    assert data["members"][0]["assignment"] == [["t", 0]] and data["partitions"][0]["lag"] == 4
    assert data["total_lag"] == 4


# -- the console loops, with fakes --------------------------------------------------------------------


class _Future:
    def __init__(self, error=None):
        self.error = error

    def done(self):
        return True

    def result(self):
        if self.error:
            raise self.error

    def exception(self):
        return self.error

    def add_done_callback(self, fn):
        fn(self)


class FakeProducer:
    def __init__(self):
        self.sent, self.tables = [], []

    def send(self, topic, **kw):
        self.sent.append(kw)
        return _Future()

    def send_table(self, topic, table, partition=None):
        self.tables.append(table)
        return _Future()


def test_produce_file_reads_everything_before_sending_in_bulk(tmp_path):
    (tmp_path / "v.jsonl").write_text("".join(json.dumps({"value": f"v{i}"}) + "\n" for i in range(25)) + "{oops\n")
    producer = FakeProducer()
    with pytest.raises(InputFormatError, match="line 26"):
        console.produce_file(producer, "t", formats.FileSource(str(tmp_path / "v.jsonl"), None, chunk_rows=10))
    assert producer.tables == [] and producer.sent == []  # nothing sent of a bad file
    (tmp_path / "v.jsonl").write_text("".join(json.dumps({"value": f"v{i}"}) + "\n" for i in range(25)))
    assert console.produce_file(producer, "t", formats.FileSource(str(tmp_path / "v.jsonl"), None, chunk_rows=10)) == 25
    assert [t.num_rows for t in producer.tables] == [10, 10, 5] and producer.sent == []


def test_produce_stream_sends_each_line_and_says_how_many_went_before_a_bad_one():
    producer = FakeProducer()
    n = console.produce_stream(producer, "t", io.BytesIO(b"a:1\nb:2\n"), "raw", None, key_sep=":")
    assert n == 2 and [(s["key"], s["value"]) for s in producer.sent] == [(b"a", b"1"), (b"b", b"2")]
    with pytest.raises(InputFormatError, match="line 3: .* the 1 record"):
        console.produce_stream(FakeProducer(), "t", io.BytesIO(b'{"value": "x"}\n\n{"bad": 1}\n'), "json", None)
    sent = FakeProducer()
    console.produce_stream(sent, "t", io.BytesIO(b"key,value\nk,v\n"), "csv", None)
    assert sent.sent[0]["key"] == b"k" and sent.sent[0]["value"] == b"v"
    with pytest.raises(InputFormatError, match="is typed"):
        console.produce_stream(FakeProducer(), "t", io.BytesIO(b"x\n"), "raw", TYPED)


class FakeConsumer:
    def __init__(self, batches):
        self.batches = list(batches)
        self.polls = []

    def poll(self, timeout_ms, max_records):
        self.polls.append(max_records)
        return self.batches.pop(0)[:max_records] if self.batches else []

    def assignment(self):
        return {TopicPartition("t", 0)}


def test_consume_loop_stops_at_max_without_polling_more_than_it_prints():
    out = io.BytesIO()
    consumer = FakeConsumer([[_rec(b"a"), _rec(b"b")], [_rec(b"c"), _rec(b"d")]])
    ready = []
    n = console.consume_loop(consumer, console.record_writer("raw", None, out), out=out, max_records=3,
                             on_ready=lambda: ready.append(1))
    assert n == 3 and out.getvalue() == b"a\nb\nc\n" and consumer.polls == [3, 1] and ready == [1]


def test_consume_loop_ends_on_idle_timeout_and_on_stop():
    assert console.consume_loop(FakeConsumer([]), lambda r: None, timeout_ms=30, poll_ms=5) == 0
    stop = threading.Event()
    stop.set()
    assert console.consume_loop(FakeConsumer([[_rec(b"a")]]), lambda r: None, stop=stop) == 0


def test_stop_on_signals_turns_sigterm_into_an_event_and_restores_the_handler():
    before = signal.getsignal(signal.SIGTERM)
    with console.stop_on_signals() as stop:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(5)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)  # a second signal: stop now
            threading.Event().wait(5)  # the handler runs in this thread while it waits
    assert signal.getsignal(signal.SIGTERM) == before


def test_progress_only_when_asked_or_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    assert console.want_progress(None, Tty()) and not console.want_progress(None, io.StringIO())
    assert console.want_progress(True, io.StringIO()) and not console.want_progress(False, Tty())


def test_parse_schema_takes_pyarrow_type_names():
    assert formats.parse_schema("sym:string, px:double,at:timestamp[ms]") == pa.schema(
        [("sym", pa.string()), ("px", pa.float64()), ("at", pa.timestamp("ms"))])
    for bad, match in (("sym", "NAME:TYPE"), ("x:money", "unknown type 'money'"), ("", "no fields")):
        with pytest.raises(InputFormatError, match=match):
            formats.parse_schema(bad)


# -- audit: bad input in files and streams ------------------------------------------------------------


def test_every_chunk_of_a_file_is_checked_before_the_first_is_sent(tmp_path):
    # The bad line is in the last chunk, past many good ones: send_table's checks (the timestamp
    # range) run on every chunk while the file is read, before produce_file sends anything.
    path = tmp_path / "late.parquet"
    pq.write_table(pa.table({"value": [b"v"] * 30, "timestamp_ms": [5] * 29 + [-1]}), path)
    producer = FakeProducer()
    with pytest.raises(InputFormatError, match="late.parquet: column 'timestamp_ms' .* -1"):
        console.produce_file(producer, "t", formats.FileSource(str(path), None, chunk_rows=10))
    assert producer.tables == []
    (tmp_path / "late.csv").write_text("value,timestamp_ms\n" + "v,5\n" * 29 + "v,-1\n")
    with pytest.raises(InputFormatError, match="late.csv: column 'timestamp_ms'"):
        console.produce_file(producer, "t", formats.FileSource(str(tmp_path / "late.csv"), None))
    assert producer.tables == []


@pytest.mark.parametrize("line,match", [
    ('{"value": "a", "timestamp_ms": 99999999999999999999999}', "line 1: timestamp_ms must be between"),
    ('{"value": "a", "timestamp_ms": -1}', "line 1: timestamp_ms must be between"),
    ('{"value": "\\udc80"}', "line 1: 'value' is not valid text"),
    ('{"key": "\\udc80", "value": "a"}', "line 1: 'key' is not valid text"),
    ('{"value": "a", "headers": {"\\udc80": "x"}}', "line 1: 'headers' is not valid text"),
    ('{"value": "a", "headers": {"h": "\\ud800"}}', "line 1: 'headers.h' is not valid text"),
])
def test_a_json_file_line_that_cannot_be_sent_is_named(tmp_path, line, match):
    (tmp_path / "f.jsonl").write_text('{"value": "ok"}\n' + line + "\n")
    with pytest.raises(InputFormatError, match=match.replace("line 1", "f.jsonl line 2")):
        list(formats.FileSource(str(tmp_path / "f.jsonl"), None))


def test_a_typed_json_file_with_an_int_past_int64_is_named(tmp_path):
    (tmp_path / "f.jsonl").write_text('{"qty": 1}\n{"qty": 100000000000000000000000}\n')
    with pytest.raises(InputFormatError, match="f.jsonl line 2: column 'qty'"):
        list(formats.FileSource(str(tmp_path / "f.jsonl"), pa.schema([("qty", pa.int64())])))


def test_a_file_that_is_not_parquet_is_named(tmp_path):
    (tmp_path / "x.parquet").write_text("hello")
    with pytest.raises(InputFormatError, match="x.parquet: not a Parquet file"):
        formats.FileSource(str(tmp_path / "x.parquet"), None)


def test_a_csv_byte_order_mark_is_not_part_of_the_first_column(tmp_path):
    (tmp_path / "bom.csv").write_bytes("\ufeffvalue,key\na,k\n".encode())
    (table, _), = formats.FileSource(str(tmp_path / "bom.csv"), None)
    assert table.column_names == ["value", "key"] and table.column("value").to_pylist() == [b"a"]
    producer = FakeProducer()
    console.produce_stream(producer, "t", io.BytesIO("\ufeffvalue,key\na,k\n".encode()), "csv", None)
    assert producer.sent[0]["value"] == b"a" and producer.sent[0]["key"] == b"k"


class RefusingProducer(FakeProducer):
    def send(self, topic, **kwargs):
        if kwargs["value"] == b"huge":
            from rayka.errors import RecordTooLargeError
            raise RecordTooLargeError("record of 9 bytes is over topic 't''s max.message.bytes (4)")
        return super().send(topic, **kwargs)


def test_a_stdin_record_that_send_refuses_is_named_with_the_count_before_it():
    lines = b'{"value": "a"}\n{"value": "b"}\n\n{"value": "huge"}\n{"value": "c"}\n'
    producer = RefusingProducer()
    with pytest.raises(InputFormatError, match=r"^line 4: record of 9 bytes .*; the 2 record\(s\) before it were sent"):
        console.produce_stream(producer, "t", io.BytesIO(lines), "json", None)
    assert [s["value"] for s in producer.sent] == [b"a", b"b"]


def test_consume_max_zero_prints_nothing():
    consumer = FakeConsumer([[_rec(b"a")]])
    out = io.BytesIO()
    assert console.consume_loop(consumer, console.record_writer("raw", None, out), out=out, max_records=0) == 0
    assert out.getvalue() == b"" and consumer.polls == []
