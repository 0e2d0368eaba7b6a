"""The topic config a partition last applied, kept in its directory: ``topic_config.json``.

``{"version": N, "config": {kafka keys}, "owner": "<partition actor name>"}``, rewritten
atomically (temp file, fsync, rename, fsync of the directory: atomic_file.py). The owner
(the actor name carries the topic's id) keeps a file left behind by a deleted topic of the
same name from being applied. Ray restarts a partition actor with the arguments it was
first created with, so a config changed since (``Admin.alter_topic_config``) would be lost at the restart;
the actor applies whichever is newer, this file or its arguments (by ``version``, the
topic's ``config_version`` in the coordinator's metadata).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import LogWriteError
from .atomic_file import atomic_write

__all__ = ["CONFIG_FILE", "read_config", "write_config"]

CONFIG_FILE = "topic_config.json"


def read_config(directory: str | Path, owner: str | None) -> tuple[int, dict] | None:
    """(version, config) written by ``owner``, or None if there is none (or it is unreadable,
    or another owner's)."""
    try:
        data = json.loads((Path(directory) / CONFIG_FILE).read_text())
        if data.get("owner") != owner:
            return None
        return int(data["version"]), dict(data["config"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # a damaged file loses only a config change; the coordinator re-sends it


def write_config(directory: str | Path, version: int, config: dict, owner: str | None) -> None:
    """Replace the file with ``config`` at ``version`` (atomic_file.py). A write that fails (a full
    disk) raises LogWriteError (DiskFullError) with the old file in place and no temp file left."""
    path = Path(directory) / CONFIG_FILE
    data = json.dumps({"version": version, "config": config, "owner": owner}).encode()
    try:
        atomic_write(path, data)
    except OSError as exc:
        raise LogWriteError.from_os_error(exc, directory, f"writing topic config {path}") from exc
