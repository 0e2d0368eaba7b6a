"""Pure parts of the shared local runtime and the CLI: no Ray is started here."""

import json
import os

import pytest

from rayka.cli import human_bytes
from rayka.clients import ray_auth, runtime
from rayka.clients.connection import connect
from rayka.clients.stubs import _dir_locked
from rayka.errors import ConfigError, LogDirLockedError


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("90s", 90), ("2h", 7200), ("500ms", 0.5), ("12", 12),
                                          ("1d", 86400)])
def test_parse_duration(text, seconds):
    assert runtime.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5s", "0", "m"])
def test_parse_duration_refuses_nonsense(text):
    with pytest.raises(ValueError):
        runtime.parse_duration(text)


def test_human_bytes():
    assert [human_bytes(n) for n in (None, 0, 1023, 1536, 5 * 1024 ** 3)] == ["-", "0 B", "1023 B", "1.5 KiB",
                                                                            "5.0 GiB"]


def test_runtime_file_round_trip_and_a_dead_head_is_stale(tmp_path):
    info = runtime.RuntimeInfo(address="127.0.0.1:1", port=1, pid=2 ** 22 + 7, temp_dir="/tmp/rayka-x",
                               owner={"pid": 1}, started_at=0.0, data_dir=str(tmp_path))
    (tmp_path / runtime.RUNTIME_FILE).write_text(info.to_json())
    assert runtime.read(tmp_path) == info
    assert runtime.find(tmp_path) is None  # no such pid: stale
    (tmp_path / runtime.RUNTIME_FILE).write_text("{torn")
    assert runtime.read(tmp_path) is None


def test_two_data_dirs_get_two_short_temp_dirs(tmp_path):
    a, b = runtime.temp_dir_for(tmp_path / "a"), runtime.temp_dir_for(tmp_path / "b")
    assert a != b and len(a) < 30 and runtime.temp_dir_for(tmp_path / "a" / ".." / "a") == a


def test_token_is_generated_private_and_turns_token_mode_on(tmp_path, monkeypatch):
    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not ray_auth.token_available()
    assert ray_auth.prepare_token(create=False) == {}  # an explicit address with no token: leave Ray alone
    assert ray_auth.prepare_token(create=True) == {"RAY_AUTH_MODE": "token"}
    path = tmp_path / ".ray" / "auth_token"
    assert path.read_text().strip() and oct(path.stat().st_mode & 0o777) == "0o600"
    assert ray_auth.prepare_token(create=False) == {"RAY_AUTH_MODE": "token"}
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert ray_auth.prepare_token(create=True) == {"RAY_AUTH_MODE": "disabled"}


def test_loopback_addresses():
    assert runtime.is_loopback("127.0.0.1:6379") and runtime.is_loopback("localhost:1")
    assert not runtime.is_loopback("10.0.0.2:6379")


def test_connect_refuses_unknown_keywords_with_the_rayka_equivalent():
    with pytest.raises(ConfigError, match=r"bootstrap_servers.*connect\(address=\.\.\.\)"):
        connect(bootstrap_servers="localhost:9092")
    with pytest.raises(ConfigError, match="runtime must be one of"):
        connect(runtime="elsewhere")
    with pytest.raises(ConfigError, match="idle_timeout_s"):
        connect(idle_timeout_s=0)


def test_a_locked_partition_directory_becomes_one_line():
    from ray.exceptions import RayActorError

    class Died(RayActorError):
        def __str__(self):
            return ("The actor died because of an error raised in its creation task\n  File \"x\", line 1\n"
                    "rayka.errors.LogDirLockedError: partition directory /d/t/0 is in use by another partition "
                    "log (held by pid 42, this process is 7); Stop the other one\n\nmore traceback")

    err = _dir_locked(Died())
    assert isinstance(err, LogDirLockedError) and not err.retriable
    assert "\n" not in str(err) and "held by pid 42" in str(err) and "rayka runtime stop" in str(err)
    assert _dir_locked(RayActorError()) is None
