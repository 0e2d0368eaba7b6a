"""A Jepsen-style checker for produce histories: what the producer was told, against what the
log holds when it is read back.

    from rayka.checker import History, check, keyed_values, read_back

    history = History()
    for key, value in keyed_values(2_000, keys=8):
        history.send(producer, "t", value, key)     # invoke, then ok/fail/info from the future
    producer.flush()
    result = check(history, read_back("t"), failover_s=1.7)
    print(result.table())
    assert result.ok, result.table()

A producer loop records four kinds of event, as Jepsen's histories do:

- ``invoke(value, key)`` before the send;
- ``ok(value, partition, offset)`` when it was acknowledged;
- ``fail(value, error)`` when it failed with a *definite* error: nothing was written (a
  record refused by the client's own checks before anything was sent);
- ``info(value, error)`` when the outcome is unknown: a ``RayActorError`` or a timeout does
  not prove the call did not run. Such a value is *indeterminate*: present or absent, both
  are fine, and it is never counted as lost.

``error(value, exc)`` picks ``fail`` or ``info`` by :func:`is_definite`; ``track`` wires a
producer future's callbacks to ``ok``/``error``. :func:`check` then compares the history
with ``read_back`` (per partition, the ``(offset, key, value)`` of every record read from
the log) and returns a frozen :class:`CheckResult`. The invariants, each a count that must
be 0 for ``ok``:

- *lost*: acknowledged, but absent, or present at another partition/offset than the one
  acknowledged (an acknowledgement with offset -1, as ``acks=0`` gives, only asks presence
  in its partition);
- *duplicated*: a value present more than once;
- *reordered*: within a partition, for each key, the acknowledged values must appear in the
  order they were sent (``invoke`` order per key, which is the ``seq`` of
  :func:`make_value`); one key written by one producer, as Kafka's ordering promise is per
  producer and partition;
- *wrong*: a value present that was never sent, or present with another key than it was
  sent with.

Values must be unique (bytes or str): :func:`make_value` / :func:`keyed_values` make them
(``b"k3:000017"``, padded to a size if asked) and :func:`parse_value` reads them back.
The module imports no Ray (:func:`read_back` loads the client when called).
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Mapping

from rayka import errors

__all__ = ["History", "Op", "CheckResult", "check", "is_definite", "make_value", "parse_value",
           "keyed_values", "read_back"]

#: Errors that prove nothing was written: raised by the client's own checks before a send
#: leaves the process. Everything else (actor death, timeouts, NotEnoughReplicasError after
#: a retry that may have been written...) is indeterminate.
DEFINITE_ERRORS: tuple[type[BaseException], ...] = (
    errors.RecordTooLargeError, errors.InvalidRecordError, errors.SchemaMismatchError,
    errors.UnknownTopicError, errors.UnknownPartitionError, errors.InvalidTopicError,
    errors.ConfigError, errors.BufferFullError,
)

#: Examples kept per anomaly in a CheckResult (the counts are exact; the examples bounded).
EXAMPLES_MAX = 10


def is_definite(exc: BaseException) -> bool:
    """True when ``exc`` proves the record was not written (see DEFINITE_ERRORS)."""
    return isinstance(exc, DEFINITE_ERRORS)


# -- values -------------------------------------------------------------------------------------

def make_value(key: int | str, seq: int, size: int = 0) -> bytes:
    """The unique value number ``seq`` of ``key``: ``b"k3:000017"`` (key 3 or "k3"), padded
    with ``|...`` up to ``size`` bytes when ``size`` is larger."""
    name = f"k{key}" if isinstance(key, int) else key
    if ":" in name or "|" in name:
        raise ValueError(f"a key name for make_value cannot hold ':' or '|': {name!r}")
    raw = f"{name}:{seq:06d}".encode()
    if size > len(raw):
        raw += b"|" + b"." * (size - len(raw) - 1)
    return raw


def parse_value(value: bytes | str) -> tuple[str, int]:
    """``(key name, seq)`` of a value made by :func:`make_value`; ValueError for another."""
    text = value.decode() if isinstance(value, (bytes, bytearray, memoryview)) else value
    head = text.split("|", 1)[0]
    name, sep, seq = head.partition(":")
    if not sep or not name or not seq.isdigit():
        raise ValueError(f"not a value made by make_value: {text[:40]!r}")
    return name, int(seq)


def keyed_values(n: int, keys: int = 4, size: int = 0, seed: int = 0) -> Iterator[tuple[bytes, bytes]]:
    """``n`` (key, value) pairs over ``keys`` keys in a seeded random order, each key's
    values numbered 0, 1, 2, ... in the order yielded (``b"k1"``, ``b"k1:000000"``)."""
    if n < 0 or keys < 1:
        raise ValueError(f"keyed_values needs n >= 0 and keys >= 1, got n={n}, keys={keys}")
    rng = random.Random(seed)
    next_seq = [0] * keys
    for _ in range(n):
        k = rng.randrange(keys)
        yield f"k{k}".encode(), make_value(k, next_seq[k], size)
        next_seq[k] += 1


# -- the history --------------------------------------------------------------------------------

@dataclass
class Op:
    """One sent value in a History (``History.ops()`` gives copies)."""

    key: object
    seq: int  # position among the values invoked with the same key
    state: str = "invoked"  # invoked -> ok | fail | info
    partition: int | None = None
    offset: int | None = None
    error: str | None = None
    invoked_s: float = 0.0
    done_s: float | None = None


class History:
    """What a producer loop was told about each value (thread-safe: acknowledgements arrive
    on the producer's callback thread). A value's first outcome stands; a later one for the
    same value is ignored (an ack after a timeout already recorded ``info`` upgrades it to
    ``ok``, since the acknowledgement is the stronger evidence)."""

    def __init__(self, clock=time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._ops: dict[object, Op] = {}
        self._per_key: dict[object, int] = {}
        self._marks: list[tuple[str, float]] = []

    def invoke(self, value, key=None) -> None:
        """Record that ``value`` (unique) is about to be sent with ``key``."""
        with self._lock:
            if value in self._ops:
                raise ValueError(f"value {value!r:.40} was invoked twice: each sent value must be unique")
            seq = self._per_key.get(key, 0)
            self._per_key[key] = seq + 1
            self._ops[value] = Op(key, seq, invoked_s=self._clock())

    def ok(self, value, partition: int, offset: int | None) -> None:
        """``value`` was acknowledged at ``partition``/``offset`` (offset None or -1: unknown)."""
        with self._lock:
            op = self._op(value)
            if op.state in ("invoked", "info"):
                op.state, op.partition, op.done_s = "ok", partition, self._clock()
                op.offset = None if offset is None or offset < 0 else offset

    def fail(self, value, error=None) -> None:
        """``value`` failed with a definite error: it was not written."""
        self._finish(value, "fail", error)

    def info(self, value, error=None) -> None:
        """``value``'s outcome is unknown (indeterminate: may or may not be in the log)."""
        self._finish(value, "info", error)

    def error(self, value, exc: BaseException) -> None:
        """``fail`` or ``info`` for ``exc``, by :func:`is_definite`."""
        (self.fail if is_definite(exc) else self.info)(value, exc)

    def track(self, value, key, future):
        """``invoke`` now, then ``ok``/``error`` from the callbacks of ``future`` (a
        ``producer.send(...)``'s, passed right away: the callbacks attach after the invoke, so
        even a send acknowledged at once is recorded in order). :meth:`send` also records a
        send that raises before it returns a future."""
        self.invoke(value, key)
        future.add_callback(lambda md: self.ok(value, md.partition, md.offset))
        future.add_errback(lambda exc: self.error(value, exc))
        return future

    def send(self, producer, topic: str, value, key=None, **kwargs):
        """``producer.send(topic, value=value, key=key, **kwargs)``, recorded: invoke first; an
        exception from the call itself goes to :meth:`error` and is returned, not raised (the
        loop goes on); otherwise the future is tracked and returned."""
        self.invoke(value, key)
        try:
            future = producer.send(topic, value=value, key=key, **kwargs)
        except Exception as exc:  # noqa: BLE001 - recorded, and the caller sees it returned
            self.error(value, exc)
            return exc
        future.add_callback(lambda md: self.ok(value, md.partition, md.offset))
        future.add_errback(lambda exc: self.error(value, exc))
        return future

    def mark(self, name: str) -> float:
        """Note an event (``"node removed"``) at the history's clock; returns its time."""
        now = self._clock()
        with self._lock:
            self._marks.append((name, now))
        return now

    def first_ok_after(self, t: float, partition: int | None = None) -> float | None:
        """Seconds from ``t`` to the first acknowledgement of a value invoked after ``t`` (of
        ``partition``, if given): the failover time, when ``t`` is when the leader went."""
        with self._lock:
            done = [op.done_s for op in self._ops.values()
                    if op.state == "ok" and op.invoked_s >= t and (partition is None or op.partition == partition)]
        return min(done) - t if done else None

    def unavailable_s(self, t: float, partition: int | None = None) -> float | None:
        """The longest time without an acknowledgement (of ``partition``, if given) since ``t``:
        from ``t`` to the first acknowledgement after it, or between two consecutive ones;
        None when nothing was acknowledged since ``t``. Unlike :meth:`first_ok_after`, an old
        leader still answering for a moment after its node was told to go does not hide the
        gap that follows."""
        times = self._ok_times(partition)
        after = [d for d in times if d >= t]
        if not after:
            return None
        return max(b - a for a, b in zip([t] + after, after))

    def last_ok_s(self, partition: int | None = None) -> float | None:
        """When the latest acknowledgement (of ``partition``, if given) arrived."""
        times = self._ok_times(partition)
        return times[-1] if times else None

    def _ok_times(self, partition) -> list[float]:
        with self._lock:
            return sorted(op.done_s for op in self._ops.values()
                          if op.state == "ok" and (partition is None or op.partition == partition))

    def marks(self) -> list[tuple[str, float]]:
        with self._lock:
            return list(self._marks)

    def ops(self) -> dict:
        """value -> a copy of its record (key, seq, state, partition, offset, error)."""
        with self._lock:
            return {v: Op(**vars(op)) for v, op in self._ops.items()}

    def _op(self, value) -> Op:
        op = self._ops.get(value)
        if op is None:
            raise ValueError(f"value {value!r:.40} has an outcome but was never invoked: call invoke() before sending")
        return op

    def _finish(self, value, state: str, error) -> None:
        with self._lock:
            op = self._op(value)
            if op.state == "invoked":
                op.state, op.done_s = state, self._clock()
                op.error = None if error is None else f"{type(error).__name__}: {error}"[:200]


# -- the check ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class CheckResult:
    """The verdict of :func:`check`: counts, and up to EXAMPLES_MAX examples of each anomaly
    in ``examples`` (kind -> tuple). ``ok`` when nothing was lost, duplicated, reordered or wrong."""

    sent: int
    acknowledged: int
    failed: int
    indeterminate: int  # info, and invoked values with no outcome at all
    read: int
    lost: int
    duplicated: int
    reordered: int
    wrong: int
    unacknowledged_present: int  # failed, indeterminate or never answered, yet in the log: allowed
    failed_present: int = 0  # of those, values that failed "definitely": a misclassified error
    failover_s: float | None = None
    examples: Mapping[str, tuple] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.lost == self.duplicated == self.reordered == self.wrong == 0

    def table(self) -> str:
        """The verdict as aligned lines, one per count (``must be 0`` on the invariants)."""
        rows = [("sent", self.sent, ""), ("acknowledged", self.acknowledged, ""),
                ("failed (definite)", self.failed, ""), ("indeterminate", self.indeterminate, "allowed"),
                ("read back", self.read, ""),
                ("lost", self.lost, "must be 0"), ("duplicated", self.duplicated, "must be 0"),
                ("reordered per key", self.reordered, "must be 0"), ("wrong", self.wrong, "must be 0"),
                ("unacknowledged present", self.unacknowledged_present, "allowed")]
        if self.failed_present:
            rows.append(("  of which failed definitely", self.failed_present, "the error did not prove it"))
        lines = [f"{name:<28}{count:>10,}  {note}".rstrip() for name, count, note in rows]
        if self.failover_s is not None:
            lines.append(f"{'failover time':<28}{self.failover_s:>9.2f}s")
        for kind, items in self.examples.items():
            if items:
                lines.append(f"{kind} e.g.: " + ", ".join(repr(i)[:60] for i in items))
        lines.append("OK" if self.ok else "FAILED")
        return "\n".join(lines)


def _positions(read_back: Mapping[int, Iterable]) -> tuple[dict, dict, int]:
    """value -> [(partition, offset, key)], partition -> records in offset order, count."""
    where: dict = {}
    ordered: dict = {}
    read = 0
    for partition, records in read_back.items():
        recs = sorted(((int(o), k, v) for o, k, v in records), key=lambda r: r[0])
        for a, b in zip(recs, recs[1:]):
            if a[0] == b[0]:
                raise ValueError(f"read_back holds offset {a[0]} of partition {partition} twice: read each record once")
        ordered[partition] = recs
        read += len(recs)
        for offset, key, value in recs:
            where.setdefault(value, []).append((partition, offset, key))
    return where, ordered, read


def check(history: History, read_back: Mapping[int, Iterable], failover_s: float | None = None) -> CheckResult:
    """Compare ``history`` with ``read_back`` (partition -> iterable of ``(offset, key, value)``,
    the whole log of every partition written to). See the module docstring for the rules."""
    ops = history.ops()
    where, ordered, read = _positions(read_back)
    ex: dict[str, list] = {k: [] for k in ("lost", "duplicated", "reordered", "wrong")}

    def note(kind, item):
        if len(ex[kind]) < EXAMPLES_MAX:
            ex[kind].append(item)

    lost = duplicated = wrong = unacked_present = failed_present = 0
    for value, op in ops.items():
        if op.state != "ok":
            continue
        at = where.get(value, [])
        if op.offset is None:
            found = any(p == op.partition for p, _, _ in at)
        else:
            found = any((p, o) == (op.partition, op.offset) for p, o, _ in at)
        if not found:
            lost += 1
            note("lost", value)
    for value, at in where.items():
        op = ops.get(value)
        if len(at) > 1:
            duplicated += 1
            note("duplicated", value)
        if op is None or any(k != op.key for _, _, k in at):
            wrong += 1
            note("wrong", value)
        elif op.state != "ok":
            unacked_present += 1
            failed_present += op.state == "fail"
    reordered = 0
    for partition, recs in ordered.items():
        last_seq: dict = {}
        seen: set = set()
        for _, _, value in recs:
            op = ops.get(value)
            if op is None or op.state != "ok" or value in seen:
                continue  # order is promised for acknowledged values; a duplicate is counted above
            seen.add(value)
            before = last_seq.get(op.key)
            if before is not None and op.seq < before:
                reordered += 1
                note("reordered", (op.key, before, op.seq))
            last_seq[op.key] = op.seq if before is None else max(before, op.seq)
    states = [op.state for op in ops.values()]
    return CheckResult(
        sent=len(ops), acknowledged=states.count("ok"), failed=states.count("fail"),
        indeterminate=states.count("info") + states.count("invoked"), read=read, lost=lost,
        duplicated=duplicated, reordered=reordered, wrong=wrong, unacknowledged_present=unacked_present,
        failed_present=failed_present, failover_s=failover_s, examples={k: tuple(v) for k, v in ex.items()})


def read_back(topic: str, cluster=None, timeout_s: float = 60.0, max_records: int = 10_000_000) -> dict[int, list]:
    """Every record of every partition of ``topic``, from its log start to the end offsets seen
    when called: partition -> [(offset, key, value)]. Bounded by ``timeout_s`` (AssertionError
    naming the partitions short of their end) and ``max_records``. Needs a running cluster."""
    from rayka.clients.consumer import Consumer
    from rayka.clients.types import TopicPartition

    consumer = Consumer(cluster=cluster, auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: dict[int, list] = {tp.partition: [] for tp in parts}
        deadline = time.monotonic() + timeout_s
        total = 0

        def short():
            return [tp for tp in parts if consumer.position(tp) < ends[tp]]

        while short() and time.monotonic() < deadline and total < max_records:
            for r in consumer.poll(timeout_ms=500, max_records=100_000):
                if r.offset < ends[TopicPartition(r.topic, r.partition)]:
                    out[r.partition].append((r.offset, r.key, r.value))
                    total += 1
        missing = short()
        if missing and total < max_records:
            raise AssertionError(f"read_back of {topic!r} timed out after {timeout_s}s short of the end of "
                                 f"partitions {[tp.partition for tp in missing]}")
        return out
    finally:
        consumer.close(autocommit=False)
