"""The producer's counters, as ``Producer.metrics()`` returns them.

Counted when a batch completes (written or failed for good) and at each retry;
updated under the producer's lock, so a snapshot is consistent. Bytes are the
bytes the producer charges against ``buffer_memory``: keys, values and headers
plus 16 per record for ``send()``, the Arrow size of the chunk for ``send_table()``.
"""

from __future__ import annotations

__all__ = ["ProducerMetrics"]


def _zero() -> dict:
    return {"records_sent": 0, "bytes_sent": 0, "batches_sent": 0, "retries": 0, "errors": 0}


class ProducerMetrics:
    """Totals and per-topic counters of one producer. Not thread-safe: the caller holds its lock."""

    def __init__(self) -> None:
        self._total = _zero()
        self._topics: dict[str, dict] = {}

    def _add(self, topic: str, **counts: int) -> None:
        per = self._topics.get(topic)
        if per is None:
            per = self._topics[topic] = _zero()
        for name, n in counts.items():
            self._total[name] += n
            per[name] += n

    def sent(self, topic: str, records: int, nbytes: int) -> None:
        self._add(topic, records_sent=records, bytes_sent=nbytes, batches_sent=1)

    def failed(self, topic: str, records: int) -> None:
        """A batch failed for good: each of its records counts as one error."""
        self._add(topic, errors=records)

    def retried(self, topic: str) -> None:
        self._add(topic, retries=1)

    def snapshot(self, **gauges: int) -> dict:
        """``{records_sent, bytes_sent, batches_sent, retries, errors, <gauges>, topics: {name: {...}}}``."""
        out = dict(self._total)
        out.update(gauges)
        out["topics"] = {name: dict(per) for name, per in self._topics.items()}
        return out
