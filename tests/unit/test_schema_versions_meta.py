"""Value schema versions kept with a typed topic (coordinator/schema_versions.py, through
ClusterMetadata.evolve_schema), and the schema.compatibility topic config."""

import json
import pickle

import pyarrow as pa
import pytest

from rayka.clock import ManualClock
from rayka.config import TopicConfig
from rayka.coordinator.metadata import ClusterMetadata, MetadataStore, encode_schema
from rayka.coordinator.schema_versions import version_infos
from rayka.errors import ConfigError, IncompatibleSchemaError, UnknownSchemaVersionError
from rayka.partitions.schema_rules import DEFAULT_METADATA_KEY

V1 = pa.schema([pa.field("id", pa.int32(), nullable=False), pa.field("name", pa.string())])
V2 = V1.append(pa.field("country", pa.string()))  # an added nullable field: BACKWARD compatible
NOT_NULL = V2.append(pa.field("tier", pa.int8(), nullable=False))  # no default: refused by BACKWARD


@pytest.fixture
def clock():
    return ManualClock(5_000)


def _meta(tmp_path, clock=None):
    return ClusterMetadata(MetadataStore(tmp_path / "meta.json"), clock=clock)


def _typed(tmp_path, clock, config=None):
    meta = _meta(tmp_path, clock)
    meta.create_topic("t", 1, config=config, value_schema=V1)
    return meta


def test_versions_are_numbered_from_one_and_the_latest_is_the_value_schema(tmp_path, clock):
    meta = _typed(tmp_path, clock)
    t = meta.get("t")
    assert (t.schema_version, t.schema_versions, t.schema_registered_ms) == (1, {1: V1}, [5_000])
    clock.advance(250)
    t = meta.evolve_schema("t", V2)
    assert t.schema_version == 2 and t.schema_versions == {1: V1, 2: V2}
    assert t.schema_for(1) == V1 and t.schema_for(2) == V2 and t.value_schema == V2
    assert t.value_schema_b64 == t.schema_versions_b64[-1] == encode_schema(V2)
    assert t.schema_registered_ms == [5_000, 5_250]
    infos = version_infos(t)
    assert [(i.version, i.registered_ms) for i in infos] == [(1, 5_000), (2, 5_250)]
    assert pa.ipc.read_schema(pa.py_buffer(infos[1].schema)) == V2


def test_versions_are_durable_across_a_new_metadata_on_the_same_file(tmp_path, clock):
    meta = _typed(tmp_path, clock)
    clock.advance(10)
    meta.evolve_schema("t", V2)
    again = _meta(tmp_path).get("t")
    assert again.schema_versions == {1: V1, 2: V2} and again.value_schema == V2
    assert again.schema_registered_ms == [5_000, 5_010]


def test_a_typed_topic_from_before_versions_loads_as_version_1(tmp_path):
    path = tmp_path / "meta.json"
    old = {"name": "old", "partitions": 1, "replication_factor": 1, "config": {}, "value_schema_b64": encode_schema(V1),
           "nodes": [None], "topic_id": "x", "created_ms": 1234, "config_version": 0}
    bytes_topic = dict(old, name="raw", value_schema_b64=None)
    path.write_text(json.dumps({"version": 1, "topics": {"old": old, "raw": bytes_topic}}))
    meta = ClusterMetadata(MetadataStore(path))
    t = meta.get("old")
    assert t.schema_version == 1 and t.schema_for(1) == V1 and t.schema_registered_ms == [1234]
    assert t.config["schema.compatibility"] == "BACKWARD"  # the key added since
    assert meta.evolve_schema("old", V2).schema_version == 2
    raw = meta.get("raw")
    assert (raw.schema_version, raw.schema_versions, raw.value_schema) == (None, {}, None)


def test_the_latest_schema_again_registers_nothing(tmp_path, clock):
    meta = _typed(tmp_path, clock)
    meta.evolve_schema("t", V2)
    before = (tmp_path / "meta.json").read_bytes()
    clock.advance(99)
    t = meta.evolve_schema("t", pa.schema(list(V2)))  # an equal schema, another object
    assert t.schema_version == 2 and t.schema_registered_ms == [5_000, 5_000]
    assert (tmp_path / "meta.json").read_bytes() == before
    # Field metadata counts: a default given to a field makes a new version.
    with_default = pa.schema([V2.field("id"), V2.field("name"),
                              V2.field("country").with_metadata({DEFAULT_METADATA_KEY: b'"NL"'})])
    assert meta.evolve_schema("t", with_default).schema_version == 3


def test_an_older_schema_again_is_a_new_version_when_the_mode_allows_it(tmp_path, clock):
    meta = _typed(tmp_path, clock)
    meta.evolve_schema("t", V2)
    t = meta.evolve_schema("t", V1)  # BACKWARD: V1 reads V2's data (country dropped)
    assert t.schema_version == 3 and t.schema_for(3) == V1


def test_a_refused_change_stores_nothing_and_names_every_offending_field(tmp_path, clock):
    meta = _typed(tmp_path, clock)
    before = (tmp_path / "meta.json").read_bytes()
    narrowed = pa.schema([pa.field("id", pa.int16(), nullable=False), pa.field("name", pa.string()),
                          pa.field("tier", pa.int8(), nullable=False)])
    with pytest.raises(IncompatibleSchemaError) as info:
        meta.evolve_schema("t", narrowed)
    message = str(info.value)
    assert "topic 't'" in message and "BACKWARD" in message and "version 2" in message
    assert "field 'id'" in message and "field 'tier'" in message and info.value.mode == "BACKWARD"
    with pytest.raises(IncompatibleSchemaError, match="field 'offset'.*reserved"):
        meta.evolve_schema("t", V2.append(pa.field("offset", pa.int64())))
    t = meta.get("t")
    assert t.schema_versions == {1: V1} and t.schema_registered_ms == [5_000]
    assert (tmp_path / "meta.json").read_bytes() == before
    assert _meta(tmp_path).get("t").schema_versions == {1: V1}


def test_a_failed_save_undoes_the_new_version(tmp_path, clock, monkeypatch):
    meta = _typed(tmp_path, clock)

    def disk_full(*args):
        raise OSError("disk full")

    monkeypatch.setattr(meta._store, "save", disk_full)
    with pytest.raises(OSError):
        meta.evolve_schema("t", V2)
    t = meta.get("t")
    assert t.schema_versions == {1: V1} and t.value_schema == V1 and t.schema_registered_ms == [5_000]


def test_an_untyped_topic_or_a_non_schema_is_refused(tmp_path, clock):
    meta = _meta(tmp_path, clock)
    meta.create_topic("raw", 1)
    with pytest.raises(ConfigError, match="untyped.*create a typed topic"):
        meta.evolve_schema("raw", V1)
    assert meta.get("raw").schema_versions_b64 == [] and meta.get("raw").value_schema is None
    meta.create_topic("t", 1, value_schema=V1)
    with pytest.raises(ConfigError, match="needs a pyarrow.Schema, got dict"):
        meta.evolve_schema("t", {"id": "int32"})


@pytest.mark.parametrize("version", [0, 3, -1, True, "1", None])
def test_an_unknown_version_names_the_versions_there_are(tmp_path, clock, version):
    meta = _typed(tmp_path, clock)
    t = meta.evolve_schema("t", V2)
    with pytest.raises(UnknownSchemaVersionError, match=r"versions 1\.\.2; there is no version") as info:
        t.schema_for(version)
    assert info.value.versions == (1, 2) and isinstance(info.value, ConfigError)
    back = pickle.loads(pickle.dumps(info.value))
    assert (back.version, back.versions, str(back)) == (version, (1, 2), str(info.value))
    meta.create_topic("raw", 1)
    with pytest.raises(UnknownSchemaVersionError, match="untyped"):
        meta.get("raw").schema_for(1)


def test_schema_compatibility_config_is_validated_case_insensitively_and_canonical():
    assert TopicConfig().schema_compatibility == "BACKWARD"
    assert TopicConfig().to_dict()["schema.compatibility"] == "BACKWARD"
    assert TopicConfig.from_dict({"schema.compatibility": "full_Transitive"}).schema_compatibility == "FULL_TRANSITIVE"
    assert TopicConfig.from_dict({"schema_compatibility": "none"}).to_dict()["schema.compatibility"] == "NONE"
    for bad in ("sideways", "", 1, None):
        with pytest.raises(ConfigError, match="BACKWARD, BACKWARD_TRANSITIVE, FORWARD.*NONE"):
            TopicConfig.from_dict({"schema.compatibility": bad})


def test_schema_compatibility_is_altered_like_other_keys_and_rules_the_next_change(tmp_path, clock):
    meta = _typed(tmp_path, clock, config={"schema.compatibility": "forward"})
    assert meta.get("t").config["schema.compatibility"] == "FORWARD"
    with pytest.raises(IncompatibleSchemaError, match="FORWARD"):  # old readers need id
        meta.evolve_schema("t", pa.schema([V1.field("name")]))
    with pytest.raises(ConfigError, match="is not a compatibility mode"):
        meta.alter_config("t", {"schema.compatibility": "LOOSE"})
    assert meta.get("t").config["schema.compatibility"] == "FORWARD" and meta.get("t").config_version == 0
    assert meta.alter_config("t", {"schema_compatibility": "none"}).config["schema.compatibility"] == "NONE"
    assert meta.evolve_schema("t", NOT_NULL.remove(0)).schema_version == 2
    assert meta.alter_config("t", {"schema.compatibility": None}).config["schema.compatibility"] == "BACKWARD"
    assert _meta(tmp_path).get("t").config["schema.compatibility"] == "BACKWARD"
