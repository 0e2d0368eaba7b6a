"""The ``.arrows`` file of one segment: its name, the schema message it starts with, its memory map.

A segment file is named by its base offset, 20 digits so that names sort by offset
(``00000000000000001200.arrows``), and is an Arrow IPC stream: this log's schema
message, byte for byte, then record-batch messages (codec.py). Readers see it through
one read-only memory map, remapped when the file has grown past what a read needs and
dropped when the file changes underneath (recovery rewrites or truncates it) or the
segment goes idle. Thread-safe: the map is replaced whole under a lock, and a reader
keeps the buffer it was given.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

__all__ = ["SegmentFile", "SEGMENT_SUFFIX", "segment_name"]

SEGMENT_SUFFIX = ".arrows"


def segment_name(base_offset: int) -> str:
    """The file name of the segment at ``base_offset``, without its suffix."""
    return f"{base_offset:020d}"


class SegmentFile:
    """Where a segment's file is, what it must start with, and its memory map."""

    def __init__(self, directory: Path, base_offset: int, schema_bytes: bytes):
        self.path = Path(directory) / (segment_name(base_offset) + SEGMENT_SUFFIX)
        self.base_offset = base_offset
        self.schema_bytes = schema_bytes
        self.schema_size = len(schema_bytes)
        self.schema = ipc.read_schema(pa.py_buffer(schema_bytes))
        self._map: pa.Buffer | None = None
        self._map_lock = threading.Lock()

    @property
    def mapped(self) -> bool:
        return self._map is not None

    def view(self, limit: int) -> pa.Buffer:
        """The file mapped, at least ``limit`` bytes of it (remapped when it has grown)."""
        with self._map_lock:
            if self._map is None or self._map.size < limit:
                mm = pa.memory_map(str(self.path), "r")
                self._map = mm.read_buffer(mm.size())
                mm.close()
            return self._map

    def drop_map(self) -> None:
        """Forget the map (the next :meth:`view` maps the file again)."""
        with self._map_lock:
            self._map = None
