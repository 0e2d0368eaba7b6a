"""A Jepsen-style checker for what a producer was told against what a log holds.

A test (or a user's own fault drill) records every send in a :class:`History`: the
value is invoked, then acknowledged at an offset (``ok``), failed for sure with nothing
written (``fail``), or left with an unknown outcome (``info``: a RayActorError, a
timeout: the call may have run). :func:`check` reads what the partitions hold back and
counts:

- **lost**: acknowledged, but absent, or at another partition/offset than acknowledged;
- **duplicated**: a value present more than once;
- **reordered**: per key, values (``key:sequence``) present out of sequence order;
- **wrong**: present but never sent;
- **unacknowledged present**: failed or indeterminate, yet written (allowed, counted);
- **indeterminate**: outcomes never known (never counted as lost).

Values are unique byte strings made by :func:`make_value` (``b"<key>:<seq>"``).
Pure: no Ray, no rayka calls.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

__all__ = ["History", "CheckResult", "check", "make_value", "parse_value"]


def make_value(key: bytes, seq: int) -> bytes:
    """A unique value carrying its key and its place in the key's sequence."""
    return b"%s:%08d" % (key, seq)


def parse_value(value: bytes) -> tuple[bytes, int]:
    key, _, seq = value.rpartition(b":")
    return key, int(seq)


class History:
    """What a producer was told, per value (thread-safe)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._invoked: dict[bytes, bytes | None] = {}
        self._outcomes: dict[bytes, tuple] = {}
        self._ack_times: list[tuple[float, int]] = []

    def invoke(self, value: bytes, key: bytes | None = None) -> None:
        with self._lock:
            if value in self._invoked:
                raise ValueError(f"value {value!r} was sent before: values must be unique")
            self._invoked[value] = key

    def ok(self, value: bytes, partition: int, offset: int) -> None:
        with self._lock:
            self._outcomes[value] = ("ok", partition, offset)
            self._ack_times.append((time.monotonic(), partition))

    def fail(self, value: bytes, error: BaseException | str) -> None:
        with self._lock:
            self._outcomes[value] = ("fail", str(error))

    def info(self, value: bytes, error: BaseException | str) -> None:
        with self._lock:
            self._outcomes[value] = ("info", str(error))

    def outcomes(self) -> dict[bytes, tuple]:
        """Value -> ("ok", partition, offset) | ("fail", why) | ("info", why); never-settled ones absent."""
        with self._lock:
            return dict(self._outcomes)

    def invoked(self) -> dict[bytes, bytes | None]:
        with self._lock:
            return dict(self._invoked)

    def first_ack_after(self, t: float, partition: int | None = None) -> float | None:
        """Seconds from monotonic time ``t`` to the first acknowledgement after it (of ``partition``)."""
        with self._lock:
            times = [at for at, p in self._ack_times if at > t and (partition is None or p == partition)]
        return round(min(times) - t, 3) if times else None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The counts of :func:`check` (see the module docstring)."""

    sent: int
    acknowledged: int
    lost: int
    duplicated: int
    reordered: int
    wrong: int
    unacknowledged_present: int
    indeterminate: int
    examples: tuple = ()

    @property
    def ok(self) -> bool:
        return self.lost == self.duplicated == self.reordered == self.wrong == 0

    def as_dict(self) -> dict:
        d = asdict(self)
        d["examples"] = [str(e) for e in self.examples]
        return d

    def table(self, failover_s: float | None = None) -> str:
        rows = [("sent", self.sent), ("acknowledged", self.acknowledged), ("lost (must be 0)", self.lost),
                ("duplicated (must be 0)", self.duplicated), ("reordered per key (must be 0)", self.reordered),
                ("wrong (must be 0)", self.wrong), ("unacknowledged but present", self.unacknowledged_present),
                ("indeterminate", self.indeterminate)]
        if failover_s is not None:
            rows.append(("failover time (s)", failover_s))
        return "\n".join(f"  {name:<32}{value:>10}" for name, value in rows)


def check(history: History, read_back: dict[int, list[tuple[int, bytes | None, bytes]]]) -> CheckResult:
    """Check ``read_back`` (partition -> [(offset, key, value)] in log order) against ``history``."""
    invoked, outcomes = history.invoked(), history.outcomes()
    where: dict[bytes, list[tuple[int, int]]] = {}
    wrong = []
    for partition, rows in read_back.items():
        for offset, _key, value in rows:
            if value not in invoked:
                wrong.append((partition, offset, value))
                continue
            where.setdefault(value, []).append((partition, offset))
    acked = {v: o for v, o in outcomes.items() if o[0] == "ok"}
    lost = [v for v, (_, p, off) in acked.items() if where.get(v) != [(p, off)] and (p, off) not in where.get(v, [])]
    duplicated = [v for v, places in where.items() if len(places) > 1]
    reordered = 0
    for partition, rows in read_back.items():
        last: dict[bytes, int] = {}
        for _offset, _key, value in rows:
            if value not in invoked:
                continue
            key, seq = parse_value(value)
            if key in last and seq < last[key]:
                reordered += 1
            last[key] = max(seq, last.get(key, seq))
    unacked_present = sum(1 for v in where if v not in acked)
    indeterminate = sum(1 for v in invoked if v not in outcomes or outcomes[v][0] == "info")
    examples = tuple(lost[:3]) + tuple(duplicated[:3]) + tuple(w[2] for w in wrong[:3])
    return CheckResult(len(invoked), len(acked), len(lost), len(duplicated), reordered, len(wrong),
                       unacked_present, indeterminate, examples)
