"""Schema evolution through Admin and the CLI: each schema.compatibility mode allows one change
and refuses another (naming every offending field, storing nothing); the history outlives a
coordinator restart. One cluster for the module; the topics are created once, in the fixture."""

import json
import uuid

import pyarrow as pa
import pytest
import ray
from click.testing import CliRunner

import rayka
from rayka.cli import cli
from rayka.errors import ConfigError, IncompatibleSchemaError
from rayka.partitions.schema_rules import DEFAULT_METADATA_KEY
from rayka.testing import embedded_cluster, wait_for


def field(name, typ, nullable=True, default=...):
    meta = None if default is ... else {DEFAULT_METADATA_KEY: json.dumps(default).encode()}
    return pa.field(name, typ, nullable=nullable, metadata=meta)


BASE = pa.schema([field("id", pa.int32(), nullable=False), field("name", pa.string()),
                  field("score", pa.float32(), nullable=False)])
# Transitive modes: v2 drops a (nullable) field that v3 brings back with another type (Confluent's
# example): compatible with v2, not with v1.
T1 = pa.schema([field("a", pa.int64()), field("b", pa.string())])
T2 = pa.schema([field("b", pa.string())])
T3 = pa.schema([field("a", pa.string(), default="none"), field("b", pa.string())])
T2_PLUS = T2.append(field("c", pa.string()))  # a nullable field more: fine with every version

# mode -> (first versions, a change it allows, a change it refuses, the fields the refusal names)
CASES = {
    "BACKWARD": ([BASE], BASE.append(field("country", pa.string())).set(0, field("id", pa.int64(), nullable=False)),
                 BASE.set(0, field("id", pa.int16(), nullable=False)).append(field("tier", pa.int8(), nullable=False)),
                 ["id", "tier"]),
    "FORWARD": ([BASE], pa.schema([field("id", pa.int16(), nullable=False), field("score", pa.float32(), nullable=False)]),
                pa.schema([field("id", pa.int64(), nullable=False), field("name", pa.string())]), ["id", "score"]),
    "FULL": ([BASE], BASE.append(field("country", pa.string())),
             BASE.set(0, field("id", pa.int64(), nullable=False)).set(2, field("score", pa.float16(), nullable=False)),
             ["id", "score"]),
    "NONE": ([BASE], pa.schema([field("id", pa.string()), field("other", pa.bool_(), nullable=False)]),
             pa.schema([field("offset", pa.int64()), field("d", pa.int8(), default="x")]), ["d", "offset"]),
    "BACKWARD_TRANSITIVE": ([T1, T2], T2_PLUS, T3, ["a"]),
    "FORWARD_TRANSITIVE": ([T1, T2], T2_PLUS, T3, ["a"]),
    "FULL_TRANSITIVE": ([T1, T2], T2_PLUS, T3, ["a"]),
}


def _topic(mode: str) -> str:
    return "m-" + mode.lower().replace("_", "-")


@pytest.fixture(scope="module")
def shared(ray_session, tmp_path_factory):
    with embedded_cluster(tmp_path_factory.mktemp("schema-evolution")) as cluster:
        admin = rayka.Admin(cluster)
        for mode, (first, _, _, _) in CASES.items():
            # The mode in lower case: the config key is case-insensitive, kept upper-case.
            admin.create_topic(_topic(mode), config={"schema.compatibility": mode.lower()}, schema=first[0])
            for later in first[1:]:
                admin.evolve_schema(_topic(mode), later)
        admin.create_topic("history", schema=BASE)
        yield cluster, admin


@pytest.mark.parametrize("mode", sorted(CASES))
def test_each_mode_refuses_its_change_naming_every_field_and_allows_its_other(shared, mode):
    _, admin = shared
    first, allowed, refused, offending = CASES[mode]
    topic = _topic(mode)
    assert admin.describe_topic_config(topic)["schema.compatibility"] == mode
    before = admin.schema_history(topic)
    assert [v.schema for v in before] == first
    with pytest.raises(IncompatibleSchemaError) as info:
        admin.evolve_schema(topic, refused)
    message = str(info.value)
    assert mode in message and f"topic {topic!r}" in message and info.value.mode == mode
    for name in offending:
        assert f"field {name!r}" in message
    assert sorted({i.field for i in info.value.incompatibilities}) == offending
    assert admin.schema_history(topic) == before  # nothing stored
    new = admin.evolve_schema(topic, allowed)
    assert (new.version, new.schema) == (len(first) + 1, allowed)
    assert admin.schema_history(topic) == before + [new]
    desc = admin.describe_topic(topic)
    assert desc.schema_version == new.version and desc.value_schema == allowed


def test_history_outlives_a_coordinator_restart_and_an_equal_schema_registers_nothing(shared):
    cluster, admin = shared
    v2 = admin.evolve_schema("history", BASE.append(field("country", pa.string(), default="NL")))
    v3 = admin.evolve_schema("history", v2.schema.append(field("note", pa.large_string())))
    history = admin.schema_history("history")
    assert [v.version for v in history] == [1, 2, 3] and history[1:] == [v2, v3]
    assert history[0].registered_ms <= v2.registered_ms <= v3.registered_ms
    assert history[1].schema.field("country").metadata == {DEFAULT_METADATA_KEY: b'"NL"'}

    before = cluster.coordinator.instance_id()
    ray.kill(cluster.coordinator.handle, no_restart=False)  # Ray restarts it on the same data dir
    wait_for(lambda: cluster.coordinator.instance_id() != before, 60, what="the coordinator to restart")
    assert admin.schema_history("history") == history
    assert admin.evolve_schema("history", pa.schema(list(v3.schema))) == v3  # the latest again: no version 4
    assert admin.describe_topic("history").schema_version == 3


def test_an_untyped_topic_has_no_history_and_cannot_evolve(shared):
    _, admin = shared
    admin.create_topic("raw")
    assert admin.schema_history("raw") == [] and admin.describe_topic("raw").schema_version is None
    with pytest.raises(ConfigError, match="untyped"):
        admin.evolve_schema("raw", BASE)


def test_cli_schema_history_and_evolve(shared):
    cluster, admin = shared
    runner = CliRunner()
    base = ["--cluster", cluster.cluster_name]
    topic = f"cli-{uuid.uuid4().hex[:6]}"

    def run(*args):
        return runner.invoke(cli, base + ["topics", *args])

    out = run("create", topic, "--schema", "sym:string,qty:int32")
    assert out.exit_code == 0, out.output
    out = run("evolve", topic, "--schema", "sym:string,qty:int64,venue:string")  # widened, one nullable more
    assert out.exit_code == 0, out.output
    assert out.output.strip() == f"topic {topic}: registered value schema version 2"
    out = run("evolve", topic, "--schema", "sym:string,qty:int64,venue:string")
    assert out.exit_code == 0 and "nothing registered" in out.output
    out = run("evolve", topic, "--schema", "sym:string,qty:int8")  # narrowed: BACKWARD refuses it
    assert out.exit_code == 1 and isinstance(out.exception, IncompatibleSchemaError)
    assert "field 'qty'" in str(out.exception) and "BACKWARD" in str(out.exception)
    assert len(admin.schema_history(topic)) == 2

    admin.evolve_schema(topic, admin.schema_history(topic)[-1].schema.append(field("region", pa.string(), default="EU")))

    out = run("schema", topic)
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith(f"topic {topic}  value schema version 3 of 3  registered 20")
    assert [line.split() for line in lines[1:]] == [["field", "type", "nullable", "default"],
                                                    ["sym", "string", "yes", "-"], ["qty", "int64", "yes", "-"],
                                                    ["venue", "string", "yes", "-"], ["region", "string", "yes", '"EU"']]
    out = run("schema", topic, "--history", "--json")
    assert out.exit_code == 0, out.output
    history = json.loads(out.output)
    assert [v["version"] for v in history] == [1, 2, 3]
    assert history[0]["fields"] == [{"name": "sym", "type": "string", "nullable": True, "default": None},
                                    {"name": "qty", "type": "int32", "nullable": True, "default": None}]
    assert history[2]["fields"][-1]["default"] == '"EU"'
    assert history[1]["registered_ms"] == admin.schema_history(topic)[1].registered_ms
    out = run("schema", topic, "--history")
    assert out.exit_code == 0, out.output
    assert [line.split("  ")[1] for line in out.output.splitlines() if line.startswith("topic ")] == [
        "value schema version 1 of 3", "value schema version 2 of 3", "value schema version 3 of 3"]
    out = run("schema", topic, "--json")
    assert out.exit_code == 0 and json.loads(out.output)["version"] == 3
    out = run("describe", topic)
    assert out.exit_code == 0 and f"value schema: version 3 (4 fields; rayka topics schema {topic})" in out.output
