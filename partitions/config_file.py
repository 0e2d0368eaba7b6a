"""The topic config a partition last applied, kept in its directory: ``topic_config.json``.

``{"version": N, "config": {kafka keys}, "owner": "<partition actor name>"}``, rewritten
atomically (temp file, fsync, rename). The owner (the actor name carries the topic's id)
keeps a file left behind by a deleted topic of the same name from being applied. Ray restarts a partition actor with the arguments it was first created with,
so a config changed since (``Admin.alter_topic_config``) would be lost at the restart;
the actor applies whichever is newer, this file or its arguments (by ``version``, the
topic's ``config_version`` in the coordinator's metadata).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from ..errors import LogWriteError

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
    path = Path(directory) / CONFIG_FILE
    tmp = path.with_suffix(".tmp")
    try:
        with open(tmp, "w") as f:
            json.dump({"version": version, "config": config, "owner": owner}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # a full disk: the old file stays, no temp file is left
        tmp.unlink(missing_ok=True)
        raise LogWriteError.from_os_error(exc, directory, f"writing topic config {path}") from exc
