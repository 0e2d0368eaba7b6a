"""MetadataStore: the topic table's file, ``<data_dir>/__cluster_metadata.json``.

One JSON document ``{"version": 1, "topics": {name: TopicMetadata fields}, "settings": {...}}``,
rewritten whole and atomically (temp file, fsync, rename, fsync of the directory) on every
change: a crash leaves the old document or the new one, never a mix. TopicMetadata's
``__post_init__`` fills the fields a file from an older rayka lacks (metadata.py).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from ..errors import LogWriteError
from ..partitions.atomic_file import atomic_write

__all__ = ["METADATA_FILE", "MetadataStore"]

METADATA_FILE = "__cluster_metadata.json"


class MetadataStore:
    """Atomic JSON persistence of the topic table (``None`` path: memory only)."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None

    def load_all(self) -> tuple[dict[str, dict], dict]:
        """(topic name -> its stored fields, cluster settings such as the partition budget);
        ClusterMetadata makes a TopicMetadata of each topic's fields."""
        if self.path is None or not self.path.exists():
            return {}, {}
        data = json.loads(self.path.read_text())
        return dict(data.get("topics", {})), dict(data.get("settings", {}))

    def save(self, topics: dict[str, TopicMetadata], settings: dict | None = None) -> None:
        """Replace the file with ``topics`` (and cluster ``settings``). A write that fails (a full
        disk) raises LogWriteError (DiskFullError) with the old file in place and no temp file
        left behind."""
        if self.path is None:
            return
        document = {"version": 1, "topics": {n: asdict(t) for n, t in topics.items()}}
        if settings:
            document["settings"] = settings
        data = json.dumps(document, indent=1).encode()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, data)
        except OSError as exc:
            raise LogWriteError.from_os_error(exc, self.path.parent,
                                              f"writing topic metadata {self.path}") from exc
