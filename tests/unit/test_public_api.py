"""The public surface is exactly what DESIGN.md names (httpx-style __all__ test)."""

import re

import rayka
from rayka import errors
from rayka.config import TopicConfig
from rayka.errors import ConfigError

import pytest


def test_public_names():
    assert set(rayka.__all__) == {
        "Admin", "Cluster", "Consumer", "ConsumerRebalanceListener", "GroupDescription", "OffsetAndMetadata", "OffsetAndTimestamp", "PartitionDescription", "Producer", "Record",
        "RecordMetadata", "SchemaVersion", "TopicConfig", "TopicDescription", "TopicPartition", "connect", "errors", "export_topic", "read_topic",
        "__version__",
    }
    for name in rayka.__all__:
        assert hasattr(rayka, name)


def test_every_error_is_a_rayka_error_and_listed():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.RaykaWarning if name.endswith("Warning") else errors.RaykaError)
    # Bad arguments stay catchable the way code caught them before they had a rayka error.
    assert issubclass(errors.InvalidRecordError, TypeError) and issubclass(errors.InvalidRecordError, ValueError)
    assert errors.PartitionUnavailableError.retriable and not errors.RecordTooLargeError.retriable
    # ... and each is drawn in the error tree of the module docstring, under its base class.
    drawn = []  # (column of the name, name) for each class line of the tree
    for line in errors.__doc__.splitlines():
        m = re.match(r"^\s*(?:[│ ]*[├└]── )?([A-Z]\w+(?:Error|Warning))\b", line)
        if m:
            drawn.append((m.start(1), m.group(1)))
    names = [n for _, n in drawn]
    for name in errors.__all__:
        assert name in names, f"{name} is missing from the error tree in rayka/errors.py's docstring"
    for i, (column, name) in enumerate(drawn):
        parent = next((n for c, n in reversed(drawn[:i]) if c < column), None)
        if parent is not None:
            assert issubclass(getattr(errors, name), getattr(errors, parent)), f"{name} is drawn under {parent}"


def test_offset_error_pickles_with_its_range():
    import pickle

    e = pickle.loads(pickle.dumps(errors.OffsetOutOfRangeError("x", log_start_offset=3, log_end_offset=9)))
    assert (e.log_start_offset, e.log_end_offset, str(e)) == (3, 9, "x")


def test_topic_config_kafka_names_round_trip_and_validate():
    cfg = TopicConfig.from_dict({"retention.ms": 5000, "segment.bytes": 4096, "flush.policy": "batch"})
    assert cfg.retention_ms == 5000 and cfg.flush_policy == "batch"
    assert TopicConfig.from_dict(cfg.to_dict()) == cfg
    for bad in ({"retention.ms": 0}, {"flush.policy": "sometimes"}, {"segment.bytes": "big"},
                {"no.such.key": 1}, {"message.timestamp.type": "Now"}):
        with pytest.raises(ConfigError):
            TopicConfig.from_dict(bad)


def test_pure_logic_does_not_import_ray():
    """partitions/ and coordinator/ stay Ray-free. Importing them through ``rayka`` would run
    rayka/__init__ (whose clients need Ray), so a child process stubs the parent package."""
    import pathlib
    import subprocess
    import sys

    probe = (
        "import sys, types\n"
        f"pkg = types.ModuleType('rayka'); pkg.__path__ = [{str(pathlib.Path(rayka.__file__).parent)!r}]\n"
        "sys.modules['rayka'] = pkg\n"
        "import rayka.partitions.log, rayka.partitions.segment\n"
        "import rayka.coordinator.group_coordinator, rayka.coordinator.metadata\n"
        "assert 'rayka.partitions.log' in sys.modules\n"
        "print([m for m in sys.modules if m == 'ray' or m.startswith('ray.')])\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]", out


def test_pure_packages_import_without_ray():
    """``import rayka.partitions`` and friends, through the real ``rayka`` package, load no Ray."""
    import subprocess
    import sys

    probe = ("import rayka.partitions, rayka.coordinator, rayka.config, rayka.errors, sys; "
             "assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", probe], check=True)
    # ``import rayka`` alone (the CLI's floor) loads no submodule; the names load when used.
    probe = ("import rayka, sys; assert [m for m in sys.modules if m.startswith('rayka.')] == []; "
             "from rayka import errors, TopicConfig; assert rayka.errors.ConfigError and rayka.TopicConfig()")
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_every_declared_dependency_is_used():
    """Each of pyproject's runtime dependencies is imported by rayka's own code."""
    import pathlib
    import re
    import tomllib

    root = pathlib.Path(__file__).parents[2]
    deps = tomllib.loads((root / "pyproject.toml").read_text())["project"]["dependencies"]
    source = "\n".join(p.read_text() for d in ("rayka", "clients", "partitions", "coordinator", "actors", "gateway")
                       for p in (root / d).rglob("*.py"))
    import_names = {"kafka_python": "kafka"}  # distributions whose import name differs
    for dep in deps:
        name = re.match(r"[A-Za-z0-9_.-]+", dep).group(0).replace("-", "_")
        name = import_names.get(name, name)
        assert re.search(rf"^\s*(import|from) {name}\b", source, re.M), f"{name} is declared but never imported"
