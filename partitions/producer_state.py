"""Idempotent-producer state of one partition: the last batches each producer wrote.

A producer with ``idempotent=True`` numbers its batches to a partition 0, 1, 2, ...
and re-sends a batch with the same number when it cannot tell whether an append
ran (a Ray actor call runs at most once, and a RayActorError does not say
whether it did). The partition keeps, per producer id, the sequence number and
offsets of its last :data:`KEEP_BATCHES` batches:

- ``seq == last + 1``: a new batch, append it;
- ``seq`` one of the kept ones: a duplicate, answer with the offsets it got then;
- ``seq > last + 1``: a gap, OutOfOrderSequenceError;
- older than every kept batch: DuplicateSequenceError.

The state is rebuilt after a restart from the batch headers in the log (each
header carries ``pid`` and ``seq``) on top of a snapshot written at every
segment roll (``producer_state.json``), so it survives crashes without scanning
the whole log. Producers not seen for ``expiry_ms`` are forgotten.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..errors import DuplicateSequenceError, OutOfOrderSequenceError
from .atomic_file import atomic_write

__all__ = ["ProducerStateTable", "BatchRecord", "KEEP_BATCHES", "PRODUCER_EXPIRY_MS"]

KEEP_BATCHES = 5
#: How long a producer not seen is remembered (Kafka's transactional.id.expiration.ms: 1 day).
PRODUCER_EXPIRY_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """Where an idempotent batch landed."""

    sequence: int
    base_offset: int
    count: int
    append_ms: int


class ProducerStateTable:
    """Per-producer recent batches, for duplicate detection (not thread-safe)."""

    def __init__(self, expiry_ms: int = PRODUCER_EXPIRY_MS):
        self.expiry_ms = expiry_ms
        self._batches: dict[str, deque[BatchRecord]] = {}
        self._last_seen_ms: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._batches)

    def check(self, producer_id: str, sequence: int) -> BatchRecord | None:
        """None if the batch is new; its earlier record if it is a duplicate; else raise."""
        batches = self._batches.get(producer_id)
        if not batches:
            # A producer we hold no state for (new, or expired): accept whatever it starts at.
            return None
        last = batches[-1].sequence
        if sequence == last + 1:
            return None
        for record in batches:
            if record.sequence == sequence:
                return record
        if sequence > last + 1:
            raise OutOfOrderSequenceError(
                f"producer {producer_id} sent batch {sequence} after {last}; batches were lost "
                "in between. Re-create the producer to start a new sequence"
            )
        raise DuplicateSequenceError(
            f"producer {producer_id} re-sent batch {sequence}, older than the last {KEEP_BATCHES} "
            f"kept (last {last})"
        )

    def update(self, producer_id: str, record: BatchRecord) -> None:
        batches = self._batches.setdefault(producer_id, deque(maxlen=KEEP_BATCHES))
        batches.append(record)
        self._last_seen_ms[producer_id] = record.append_ms

    def update_from_header(self, header) -> None:
        if header.producer_id is not None and header.sequence >= 0:
            self.update(
                header.producer_id,
                BatchRecord(header.sequence, header.base_offset, header.count, header.append_ms),
            )

    def expire(self, now_ms: int) -> int:
        """Forget producers idle for expiry_ms; return how many."""
        stale = [pid for pid, seen in self._last_seen_ms.items() if now_ms - seen > self.expiry_ms]
        for pid in stale:
            del self._batches[pid]
            del self._last_seen_ms[pid]
        return len(stale)

    def truncate(self, next_offset: int) -> None:
        """Forget batches at or after ``next_offset`` (their bytes were truncated away)."""
        for pid in list(self._batches):
            kept = deque((r for r in self._batches[pid] if r.base_offset + r.count <= next_offset),
                         maxlen=KEEP_BATCHES)
            if kept:
                self._batches[pid] = kept
            else:
                del self._batches[pid]
                del self._last_seen_ms[pid]

    # -- snapshot ------------------------------------------------------------------------------

    def write_snapshot(self, path: Path, upto_offset: int) -> None:
        """Atomically write the state as of ``upto_offset`` (every batch below it is included): the
        old snapshot stays whole if that fails (atomic_file.py); the OSError propagates."""
        data = {
            "upto_offset": upto_offset,
            "producers": {
                pid: [[r.sequence, r.base_offset, r.count, r.append_ms] for r in batches]
                for pid, batches in self._batches.items()
            },
        }
        atomic_write(path, json.dumps(data).encode())

    @classmethod
    def read_snapshot(cls, path: Path, expiry_ms: int) -> tuple["ProducerStateTable", int]:
        """The table and the offset it is complete up to; (empty, -1) if missing or unreadable."""
        table = cls(expiry_ms)
        try:
            data = json.loads(Path(path).read_text())
            for pid, rows in data["producers"].items():
                for seq, base, count, append_ms in rows:
                    table.update(pid, BatchRecord(seq, base, count, append_ms))
            return table, int(data["upto_offset"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return cls(expiry_ms), -1
