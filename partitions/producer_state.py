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

Kafka producers (through the gateway) follow Kafka's rule instead. Their id is
``kafka:<pid>:<epoch>`` (:func:`kafka_producer_id`, :func:`parse_kafka_producer_id`),
their ``sequence`` is the batch's base sequence, and the sequence counts *records*:

- the next batch must start at ``base + count`` of the last one, modulo 2**31 (Kafka's
  int32 sequence wraps to 0 after 2**31 - 1);
- a base sequence (and count) equal to one of the last :data:`KEEP_BATCHES` batches' is a
  duplicate, answered with its original offsets; one older than all of them,
  DuplicateSequenceError (Kafka's DUPLICATE_SEQUENCE_NUMBER); any other, a gap,
  OutOfOrderSequenceError;
- the state is keyed by ``pid`` and remembers the epoch it was written at: a batch of a newer
  epoch starts over (it must start at sequence 0) and fences the older epoch, whose batches get
  InvalidProducerEpochError from then on.

A Kafka producer the partition holds no state for (new, or forgotten after expiry or a
truncation) may start at any sequence, as rayka's own may: accepting it is the safe choice
(Kafka answers UNKNOWN_PRODUCER_ID there and the client resets its sequence; here the batch
is written once and the rule applies from it on). The batch headers carry the whole
``kafka:<pid>:<epoch>`` id, the base sequence and the row count, which is all the rule needs,
so the rebuild after a restart and the snapshot work the same for both kinds.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from ..errors import DuplicateSequenceError, InvalidProducerEpochError, InvalidRecordError, OutOfOrderSequenceError
from .atomic_file import atomic_write

__all__ = ["ProducerStateTable", "BatchRecord", "KEEP_BATCHES", "PRODUCER_EXPIRY_MS", "kafka_producer_id",
           "parse_kafka_producer_id", "KAFKA_SEQUENCE_MODULUS", "KAFKA_ID_PREFIX"]

KEEP_BATCHES = 5
#: How long a producer not seen is remembered (Kafka's transactional.id.expiration.ms: 1 day).
PRODUCER_EXPIRY_MS = 24 * 3600 * 1000
#: Kafka's sequence numbers are int32 and wrap from 2**31 - 1 to 0.
KAFKA_SEQUENCE_MODULUS = 2**31
_MAX_KAFKA_PID = 2**63 - 1
_MAX_KAFKA_EPOCH = 2**15 - 1  # an int16
#: What every Kafka producer's id starts with (rayka.Producer refuses ids starting so).
KAFKA_ID_PREFIX = "kafka:"
_KAFKA_ID = re.compile(r"kafka:(0|[1-9][0-9]{0,18}):(0|[1-9][0-9]{0,4})")


def kafka_producer_id(pid: int, epoch: int) -> str:
    """The producer id the gateway appends a Kafka producer's batches with: ``kafka:<pid>:<epoch>``.

    ``pid`` is the id InitProducerId gave (a non-negative int64), ``epoch`` its epoch (0..32767);
    anything else is an InvalidRecordError."""
    for name, value, top in (("producer id", pid, _MAX_KAFKA_PID), ("producer epoch", epoch, _MAX_KAFKA_EPOCH)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= top:
            raise InvalidRecordError(f"a Kafka {name} must be an integer in 0..{top}, got {value!r}")
    return f"{KAFKA_ID_PREFIX}{pid}:{epoch}"


def parse_kafka_producer_id(producer_id: str | None) -> tuple[int, int] | None:
    """``(pid, epoch)`` of an id built by :func:`kafka_producer_id`; None for any other id. rayka's
    own producers use uuid hex ids, never of this shape; a ``Producer(producer_id=...)`` chosen
    by hand in this exact shape would be taken for a Kafka producer."""
    if producer_id is None or not producer_id.startswith(KAFKA_ID_PREFIX):  # rayka's own: no regex per append
        return None
    m = _KAFKA_ID.fullmatch(producer_id)
    if m is None:
        return None
    pid, epoch = int(m[1]), int(m[2])
    if pid > _MAX_KAFKA_PID or epoch > _MAX_KAFKA_EPOCH:
        return None
    return pid, epoch


@dataclass(frozen=True, slots=True)
class BatchRecord:
    """Where an idempotent batch landed."""

    sequence: int
    base_offset: int
    count: int
    append_ms: int


class ProducerStateTable:
    """Per-producer recent batches, for duplicate detection (not thread-safe).

    Entries are keyed by the producer id for rayka's producers and by the int ``pid`` for Kafka
    producers (so a rayka id can never collide with one), whose current epoch is kept beside."""

    def __init__(self, expiry_ms: int = PRODUCER_EXPIRY_MS):
        self.expiry_ms = expiry_ms
        self._batches: dict[str | int, deque[BatchRecord]] = {}
        self._last_seen_ms: dict[str | int, int] = {}
        self._kafka_epochs: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._batches)

    def check(self, producer_id: str, sequence: int, count: int = 0) -> BatchRecord | None:
        """None if the batch is new; its earlier record if it is a duplicate; else raise.

        ``count`` (the batch's rows) is needed for Kafka producers only: their sequence numbers
        count records, and a duplicate must match the earlier batch's count too."""
        kafka = parse_kafka_producer_id(producer_id)
        if kafka is not None:
            return self._check_kafka(*kafka, sequence, count)
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

    def _check_kafka(self, pid: int, epoch: int, sequence: int, count: int) -> BatchRecord | None:
        """Kafka's rule (module docs): record sequence numbers, epoch fencing."""
        if not 0 <= sequence < KAFKA_SEQUENCE_MODULUS:
            raise InvalidRecordError(f"Kafka producer {pid}: base sequence {sequence} is not in 0..2**31-1")
        batches = self._batches.get(pid)
        if not batches:
            return None  # no state: any first sequence (module docs)
        current = self._kafka_epochs[pid]
        if epoch < current:
            raise InvalidProducerEpochError(
                f"Kafka producer {pid} sent a batch at epoch {epoch}, but epoch {current} has fenced it: "
                "a newer instance of this producer took over; close this one")
        if epoch > current:
            if sequence != 0:
                raise OutOfOrderSequenceError(
                    f"Kafka producer {pid}: the first batch of its new epoch {epoch} starts at sequence "
                    f"{sequence}, not 0")
            return None
        for record in batches:
            if record.sequence == sequence:
                if record.count != count:
                    raise OutOfOrderSequenceError(
                        f"Kafka producer {pid} re-sent base sequence {sequence} with {count} records; the batch "
                        f"written at that sequence (offset {record.base_offset}) had {record.count}")
                return record
        last = batches[-1]
        expected = (last.sequence + last.count) % KAFKA_SEQUENCE_MODULUS
        if sequence == expected:
            return None
        # Distances back from the expected sequence, modulo the wrap: further back than the oldest
        # kept batch is an old duplicate; anything else (ahead, or inside the kept range but not at
        # a batch start) means records were lost or misnumbered.
        behind = (expected - sequence) % KAFKA_SEQUENCE_MODULUS
        oldest = (expected - batches[0].sequence) % KAFKA_SEQUENCE_MODULUS
        if oldest < behind <= KAFKA_SEQUENCE_MODULUS // 2:
            raise DuplicateSequenceError(
                f"Kafka producer {pid} re-sent base sequence {sequence}, older than the last {KEEP_BATCHES} "
                f"batches kept (the next expected is {expected})")
        raise OutOfOrderSequenceError(
            f"Kafka producer {pid} (epoch {epoch}) sent base sequence {sequence}, but {expected} was "
            "expected: records were lost in between")

    def update(self, producer_id: str, record: BatchRecord) -> None:
        """Record a batch written (or read back from the log) for ``producer_id``."""
        kafka = parse_kafka_producer_id(producer_id)
        if kafka is None:
            key: str | int = producer_id
        else:
            key, epoch = kafka
            current = self._kafka_epochs.get(key)
            if current is not None and epoch < current:
                return  # a fenced epoch's batch (check refuses them): nothing to remember
            if current is None or epoch > current:
                # A new epoch starts over: its sequence numbers restart at 0.
                self._batches.pop(key, None)
                self._kafka_epochs[key] = epoch
        batches = self._batches.setdefault(key, deque(maxlen=KEEP_BATCHES))
        batches.append(record)
        self._last_seen_ms[key] = record.append_ms

    def update_from_header(self, header) -> None:
        """Record the batch a log header describes, if an idempotent producer wrote it."""
        if header.producer_id is not None and header.sequence >= 0:
            self.update(
                header.producer_id,
                BatchRecord(header.sequence, header.base_offset, header.count, header.append_ms),
            )

    def _forget(self, key: str | int) -> None:
        del self._batches[key]
        del self._last_seen_ms[key]
        if isinstance(key, int):
            del self._kafka_epochs[key]

    def expire(self, now_ms: int) -> int:
        """Forget producers idle for expiry_ms; return how many."""
        stale = [key for key, seen in self._last_seen_ms.items() if now_ms - seen > self.expiry_ms]
        for key in stale:
            self._forget(key)
        return len(stale)

    def truncate(self, next_offset: int) -> None:
        """Forget batches at or after ``next_offset`` (their bytes were truncated away)."""
        for key in list(self._batches):
            kept = deque((r for r in self._batches[key] if r.base_offset + r.count <= next_offset),
                         maxlen=KEEP_BATCHES)
            if kept:
                self._batches[key] = kept
            else:
                self._forget(key)

    def _producer_id(self, key: str | int) -> str:
        return key if isinstance(key, str) else kafka_producer_id(key, self._kafka_epochs[key])

    # -- snapshot ------------------------------------------------------------------------------

    def write_snapshot(self, path: Path, upto_offset: int) -> None:
        """Atomically write the state as of ``upto_offset`` (every batch below it is included): the
        old snapshot stays whole if that fails (atomic_file.py); the OSError propagates. A Kafka
        producer is written under its id at its current epoch, so reading it back restores that."""
        data = {
            "upto_offset": upto_offset,
            "producers": {
                self._producer_id(key): [[r.sequence, r.base_offset, r.count, r.append_ms] for r in batches]
                for key, batches in self._batches.items()
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
