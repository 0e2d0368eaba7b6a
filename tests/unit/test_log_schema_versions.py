"""A partition log holding several value-schema versions (partitions/schema_versions.py): one
version per segment, reads that never span two, versions kept in schemas.json across reopens,
projection into a reader's version (version_read.py), copies keeping the leader's version."""

import json

import pyarrow as pa
import pyarrow.ipc as ipc
import pytest

from rayka.errors import SchemaMismatchError
from rayka.partitions import codec
from rayka.partitions.log import PartitionLog
from rayka.partitions.replicated_log import ReplicaLog
from rayka.partitions.schema_rules import DEFAULT_METADATA_KEY
from rayka.partitions.schema_versions import SCHEMAS_FILE, VERSION_KEY, SchemaSet, tag, tagged_version
from rayka.partitions.version_read import check_readable, project_batches, project_result

V1 = pa.schema([pa.field("a", pa.int32())])
V2 = pa.schema([pa.field("a", pa.int64()), pa.field("b", pa.string(), metadata={DEFAULT_METADATA_KEY: b'"x"'})])
V3 = V2.append(pa.field("c", pa.float64()))


def rows(version, *ids):
    cols = {"a": pa.array(ids, pa.int32() if version == 1 else pa.int64())}
    if version >= 2:
        cols["b"] = [f"b{i}" for i in ids]
    if version >= 3:
        cols["c"] = [i / 2 for i in ids]
    return pa.table(cols)


def all_reads(log):
    out, offset = [], log.log_start_offset
    while offset < log.log_end_offset:
        r = log.read(offset)
        out.append((r.offset, r.next_offset, r.schema_version))
        offset = r.next_offset
    return out


def file_versions(directory):
    found = []
    for path in sorted(directory.glob("*.arrows")):
        meta = ipc.open_stream(pa.memory_map(str(path))).schema.metadata or {}
        found.append(int(meta.get(VERSION_KEY, b"1")))
    return found


def test_each_version_gets_its_segments_and_no_read_spans_two(tmp_path):
    log = PartitionLog(tmp_path, schema_versions={1: V1, 2: V2, 3: V3})
    log.append(rows(1, 0, 1), schema_version=1)
    log.append(rows(1, 2), schema_version=1)  # same version: same segment
    log.append(rows(2, 3), schema_version=2)
    log.append(rows(3, 4, 5))  # None: the latest
    log.append(rows(1, 6), schema_version=1)  # an older producer: its own segment, version kept
    assert log.segment_count == 4 and file_versions(tmp_path) == [1, 2, 3, 1]
    assert all_reads(log) == [(0, 3, 1), (3, 4, 2), (4, 6, 3), (6, 7, 1)]
    first = log.read(0)
    assert first.schema == log.schemas.schema(1) and first.schema.field("a").type == pa.int32()
    with pytest.raises(SchemaMismatchError, match=r"version 7 is unknown .*\[1, 2, 3\]"):
        log.append(rows(3, 9), schema_version=7)
    with pytest.raises(SchemaMismatchError):
        log.append(rows(3, 9), schema_version=1)  # columns of v3 checked against v1: refused whole
    assert log.log_end_offset == 7
    log.close()


def test_versions_learnt_later_are_kept_in_schemas_json_and_outlive_reopening_with_the_first_only(tmp_path):
    log = PartitionLog(tmp_path, value_schema=V1)
    log.append(rows(1, 0))
    assert not (tmp_path / SCHEMAS_FILE).exists()  # one version: nothing to keep
    assert log.add_schema_versions({2: V2, 3: V3}) == [2, 3] and log.add_schema_versions({2: V2}) == []
    with pytest.raises(ValueError, match="already known"):
        log.add_schema_versions({2: V3})
    log.append(rows(3, 1), schema_version=3)
    log.close()
    kept = json.loads((tmp_path / SCHEMAS_FILE).read_text())["versions"]
    assert sorted(kept) == ["1", "2", "3"]
    again = PartitionLog(tmp_path, value_schema=V1)  # a restarted actor's first arguments
    assert again.schemas.versions == [1, 2, 3] and again.schema == again.schemas.schema(3)
    assert all_reads(again) == [(0, 1, 1), (1, 2, 3)]
    again.close()


def test_a_new_version_at_an_empty_active_segment_replaces_it_in_place(tmp_path):
    log = PartitionLog(tmp_path, schema_versions={1: V1, 2: V2})
    log.append(rows(1, 0), schema_version=1)
    log.roll()  # the active segment at offset 1 is empty, in version 1
    log.append(rows(2, 1), schema_version=2)
    assert log.segment_count == 2 and file_versions(tmp_path) == [1, 2]
    log.close()
    again = PartitionLog(tmp_path, schema_versions={1: V1, 2: V2})
    assert all_reads(again) == [(0, 1, 1), (1, 2, 2)]
    again.close()


def test_a_damaged_schema_message_is_repaired_with_its_own_version(tmp_path):
    log = PartitionLog(tmp_path, schema_versions={1: V1, 2: V2, 3: V3})
    log.append(rows(2, 0), schema_version=2)
    log.append(rows(3, 1))
    log.close()
    (path, _) = sorted(tmp_path.glob("*.arrows"))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the schema message of the v2 segment
    path.write_bytes(bytes(data))
    (tmp_path / ".clean_shutdown").unlink()
    again = PartitionLog(tmp_path, schema_versions={1: V1, 2: V2, 3: V3})
    assert all_reads(again) == [(0, 1, 2), (1, 2, 3)]
    assert path.read_bytes()[:40] == again.schemas.message(2)[:40]
    again.close()


def test_a_damaged_schema_message_whose_batches_fit_two_versions_is_refused_not_guessed(tmp_path):
    from rayka.errors import LogOpenError

    b = pa.schema([pa.field("a", pa.int32()), pa.field("b", pa.string())])
    c = pa.schema([pa.field("a", pa.int32()), pa.field("c", pa.string())])  # laid out as b is
    log = PartitionLog(tmp_path, schema_versions={1: V1, 2: b, 3: c})
    log.append(pa.table({"a": pa.array([1], pa.int32()), "b": ["one"]}), schema_version=2)
    log.append(pa.table({"a": pa.array([2], pa.int32()), "c": ["two"]}))
    log.close()
    (path, _) = sorted(tmp_path.glob("*.arrows"))
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside the v2 segment's schema message
    path.write_bytes(bytes(data))
    before = path.read_bytes()
    with pytest.raises(LogOpenError, match=r"fit schema versions \[2, 3\] alike"):
        PartitionLog(tmp_path, schema_versions={1: V1, 2: b, 3: c})
    assert path.read_bytes() == before  # nothing rewritten by a guess


def test_reads_are_projected_into_the_readers_version_and_a_narrower_reader_is_refused(tmp_path):
    log = PartitionLog(tmp_path, schema_versions={1: V1, 2: V2, 3: V3})
    log.append(rows(1, 0, 1), schema_version=1)
    log.append(rows(3, 2))
    old = log.read(0)
    (batch,) = project_batches(old, log.schemas, 3)
    assert batch.schema == log.schemas.schema(3)
    assert batch.select(["a", "b", "c"]).to_pylist() == [{"a": 0, "b": "x", "c": None}, {"a": 1, "b": "x", "c": None}]
    shipped = project_result(log.read(1), log.schemas, 3)
    (msg,) = list(codec.iter_messages(shipped))
    assert msg.header.base_offset == 1 and codec.decode(msg, log.schemas.schema(3)).column("a").to_pylist() == [1]
    newer = log.read(2)
    (down,) = project_batches(newer, log.schemas, 2)  # v3 data read in v2: c dropped
    assert down.schema.names[-2:] == ["a", "b"] and down.column("b").to_pylist() == ["b2"]
    with pytest.raises(SchemaMismatchError, match=r"version 3 cannot be read in version 1: 'a'"):
        check_readable(log.schemas, 3, 1)
    log.close()


@pytest.mark.parametrize("mode", ["BACKWARD", "FULL_TRANSITIVE", "FORWARD", "NONE"])
def test_an_older_batch_the_latest_cannot_read_is_refused_where_consumers_read_the_latest(tmp_path, mode):
    from rayka.config import TopicConfig

    wide, narrow = pa.schema([pa.field("a", pa.int64())]), pa.schema([pa.field("a", pa.int32())])
    log = PartitionLog(tmp_path, config=TopicConfig(schema_compatibility=mode), schema_versions={1: wide, 2: narrow})
    old = pa.table({"a": pa.array([1 << 40], pa.int64())})
    if mode in ("FORWARD", "NONE"):  # consumers stay on older versions there: it is theirs to read
        assert log.append(old, schema_version=1).count == 1
    else:
        with pytest.raises(SchemaMismatchError, match=r"version 1 cannot be read in the topic's latest version 2 \('a'"):
            log.append(old, schema_version=1)
        assert log.log_end_offset == 0
    log.close()


def test_a_copy_keeps_the_leaders_version(tmp_path):
    leader = ReplicaLog(tmp_path / "leader", schema_versions={1: V1, 2: V2})
    leader.append(rows(1, 0), schema_version=1)
    leader.append(rows(2, 1))
    follower = ReplicaLog(tmp_path / "follower", value_schema=V1)
    offset = 0
    while offset < leader.log_end_offset:
        r = leader.read(offset, whole_batches=True)
        if r.schema_version not in follower.schemas:
            follower.add_schema_versions({r.schema_version: leader.schemas.value_schema(r.schema_version)})
        follower.append_replicated(list(r.buffers), r.schema_version)
        offset = r.next_offset
    assert file_versions(tmp_path / "follower") == [1, 2]
    for a, b in zip(sorted((tmp_path / "leader").glob("*.arrows")), sorted((tmp_path / "follower").glob("*.arrows"))):
        assert a.read_bytes() == b.read_bytes()
    leader.close()
    follower.close()


def test_tags_and_schema_sets():
    t = tag(rows(2, 1), 2)
    assert tagged_version(t.schema) == 2 and tagged_version(rows(2, 1).schema) is None
    assert tag(rows(1, 1), None).schema.metadata is None
    with pytest.raises(SchemaMismatchError, match="not a version number"):
        tagged_version(pa.schema([], metadata={VERSION_KEY: b"x"}))
    s = SchemaSet({0: None})  # an untyped log
    assert s.versions == [0] and s.check(None) == 0 and s.schema(0).field("value").type == pa.binary()
    s = SchemaSet({1: V1, 2: V2})
    assert s.schema(1).metadata is None and s.schema(2).metadata == {VERSION_KEY: b"2"}
    assert s.version_of(s.message(2)) == 2


def test_a_pushed_down_read_of_an_older_version_decodes_only_the_columns_it_needs(tmp_path):
    import pyarrow.compute as pc

    from rayka.config import TopicConfig
    from rayka.partitions import pushdown

    old = pa.schema([pa.field("n", pa.int32()), pa.field("text", pa.string())])
    new = pa.schema([pa.field("n", pa.int64()), pa.field("text", pa.string()), pa.field("extra", pa.string())])
    log = PartitionLog(tmp_path, config=TopicConfig(compression_type="zstd"), schema_versions={1: old, 2: new})
    n = 20_000
    log.append(pa.table({"n": pa.array(range(n), pa.int32()), "text": [f"row {i} " * 20 for i in range(n)]}),
               schema_version=1)

    def pushed(columns, flt=None):
        spec = pushdown.cached(log.schemas.schema(2), columns, flt)
        return pushdown.pushed_read(lambda o, r, b: log.read(o, max_records=r, max_bytes=b), 0, n, 64 << 20, spec,
                                    log.schemas.schema(2), schemas=log.schemas, reader_version=2)

    narrow, wide = pushed(["n", "extra"], pc.field("n") >= 19_998), pushed(["n", "text", "extra"])
    assert narrow.rows == 2 and wide.rows == n
    assert narrow.bytes_read * 5 < wide.bytes_read, (narrow.bytes_read, wide.bytes_read)  # text never decoded
    (msg,) = list(codec.iter_messages(narrow.message))
    got = codec.decode(msg, pushdown.cached(log.schemas.schema(2), ["n", "extra"], None).schema)
    assert got.to_pylist() == [{"offset": 19_998, "n": 19_998, "extra": None}, {"offset": 19_999, "n": 19_999, "extra": None}]
    assert got.schema.field("n").type == pa.int64()
    log.close()
