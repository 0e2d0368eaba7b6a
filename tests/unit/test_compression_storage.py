"""Arrow IPC buffer compression of stored batches (topic config compression.type), without Ray."""

import json

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from rayka.config import TopicConfig
from rayka.errors import ConfigError
from rayka.partitions import codec, pushdown
from rayka.partitions.log import PartitionLog

from storage_helpers import batch, read_all


def _events(n, start=0):
    return [json.dumps({"user_id": 1000 + i % 37, "url": f"https://shop.example.com/item/{i % 91}",
                        "agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/121.0", "ts": 1732480000000 + i}).encode()
            for i in range(start, start + n)]


def _segment_sizes(path):
    return sum(p.stat().st_size for p in path.glob("*.arrows"))


def _plain_pyarrow(path):
    """Every batch of every segment file, read by pyarrow alone."""
    out = []
    for seg in sorted(path.glob("*.arrows")):
        out += ipc.open_stream(pa.memory_map(str(seg))).read_all().column("value").to_pylist()
    return out


@pytest.mark.parametrize("kind", ["lz4", "zstd"])
def test_compressed_segments_are_smaller_and_read_by_plain_pyarrow(tmp_path, clock, kind):
    values = _events(2000)
    plain = PartitionLog(tmp_path / "none", clock=clock)
    packed = PartitionLog(tmp_path / kind, config=TopicConfig(compression_type=kind), clock=clock)
    for log in (plain, packed):
        for i in range(0, 2000, 500):
            log.append(batch(values[i:i + 500]))
    assert _plain_pyarrow(tmp_path / kind) == values
    assert read_all(packed) == (list(range(2000)), values)
    assert _segment_sizes(tmp_path / kind) < 0.6 * _segment_sizes(tmp_path / "none")


def test_a_segment_mixing_codecs_after_a_config_change_reads_back(tmp_path, clock):
    log = PartitionLog(tmp_path, clock=clock)
    values = _events(900)
    sizes = []
    for i, (kind, level) in enumerate([("none", None), ("lz4", None), ("zstd", 9)]):
        log.config = log.config.replace(compression_type=kind, compression_level=level)  # as alter_topic_config
        before = _segment_sizes(tmp_path)
        log.append(batch(values[i * 300:(i + 1) * 300]))
        sizes.append(_segment_sizes(tmp_path) - before)
    assert len(list(tmp_path.glob("*.arrows"))) == 1
    assert sizes[1] < sizes[0] and sizes[2] < sizes[1]
    assert _plain_pyarrow(tmp_path) == values
    assert read_all(log) == (list(range(900)), values)
    # Each stored message still passes its CRC (the body it covers is the compressed one).
    seg = next(tmp_path.glob("*.arrows"))
    data = pa.py_buffer(seg.read_bytes())
    messages = list(codec.iter_messages(data, len(codec.schema_message(log.schema))))
    assert [m.header.base_offset for m in messages] == [0, 300, 600]
    for m in messages:
        m.verify()


def test_a_damaged_compressed_body_fails_its_checksum(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), clock=clock)
    log.append(batch(_events(200)))
    seg = next(tmp_path.glob("*.arrows"))
    raw = bytearray(seg.read_bytes())
    raw[-20] ^= 0xFF
    msg = codec.read_message_at(pa.py_buffer(bytes(raw)), len(codec.schema_message(log.schema)))
    with pytest.raises(Exception, match="checksum"):
        msg.verify()


def test_a_reopened_compressed_log_recovers_and_reads(tmp_path, clock):
    config = TopicConfig(compression_type="lz4")
    log = PartitionLog(tmp_path, config=config, clock=clock)
    log.append(batch(_events(300)))
    log.close()
    again = PartitionLog(tmp_path, config=config, clock=clock)
    assert again.log_end_offset == 300
    assert read_all(again)[1] == _events(300)


def test_a_pushed_down_read_of_a_compressed_log(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), clock=clock)
    values = _events(1000)
    log.append(batch(values[:500], keys=[b"k%d" % (i % 3) for i in range(500)]))
    log.append(batch(values[500:], keys=[b"k%d" % (i % 3) for i in range(500, 1000)]))
    import pyarrow.compute as pc

    got = pushdown.read_log(log, 0, 10_000, 1 << 30, columns=["offset", "value"], filter=pc.field("key") == b"k1")
    offsets = [i for i in range(1000) if i % 3 == 1]
    schema = pa.schema([log.schema.field("offset"), log.schema.field("value")])
    batches = [codec.decode(m, schema) for m in codec.iter_messages(got.message)]
    assert got.rows == len(offsets)
    assert sum((b.column("offset").to_pylist() for b in batches), []) == offsets
    assert sum((b.column("value").to_pylist() for b in batches), []) == [values[i] for i in offsets]


@pytest.mark.parametrize("config, match", [
    ({"compression.type": "gzip"}, "lz4 and zstd"),
    ({"compression.type": "snappy"}, "lz4 and zstd"),
    ({"compression.type": "brotli"}, "one of"),
    ({"compression.type": "zstd", "compression.level": 99}, "not valid for zstd"),
    ({"compression.type": "lz4", "compression.level": 13}, "not valid for lz4"),
    ({"compression.type": "zstd", "compression.level": "3"}, "integer"),
    ({"compression.level": 3}, "needs a compression.type"),
])
def test_bad_compression_config_is_refused(config, match):
    with pytest.raises(ConfigError, match=match):
        TopicConfig.from_dict(config)


def test_good_compression_config_round_trips():
    config = TopicConfig.from_dict({"compression.type": "zstd", "compression.level": 3})
    assert config.to_dict()["compression.type"] == "zstd"
    assert TopicConfig.from_dict(config.to_dict()) == config
    assert TopicConfig().compression_type == "none" and TopicConfig().compression_level is None


def test_a_pushed_down_read_of_a_compressed_log_decodes_only_the_columns_it_needs(tmp_path, clock):
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), clock=clock)
    log.append(batch(_events(1000), keys=[b"k%d" % (i % 3) for i in range(1000)]))
    seg = next(tmp_path.glob("*.arrows"))
    msg = next(codec.iter_messages(pa.py_buffer(seg.read_bytes()), len(codec.schema_message(log.schema))))
    assert codec.is_compressed(msg)
    only = codec.decode_fields(msg, log.schema, codec.schema_message(log.schema), [log.schema.get_field_index("key")])
    assert only.schema.names == ["key"] and only.num_rows == 1000
    narrow = pushdown.read_log(log, 0, 10_000, 1 << 30, columns=["offset"])
    wide = pushdown.read_log(log, 0, 10_000, 1 << 30, columns=["offset", "value"])
    assert narrow.rows == wide.rows == 1000
    assert 5 * narrow.bytes_read < wide.bytes_read and 5 * narrow.bytes_shipped < wide.bytes_shipped
