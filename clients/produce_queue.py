"""The batches of one Producer, shared by the Producer (which fills them) and its Sender
(which ships them): the one piece of state the two have in common.

A batch moves ``open`` (growing, per partition) -> ``inflight`` (its append travels; at most
one per partition) -> ``completing`` (acknowledged or failed, callbacks still running) -> gone.
A send_table() chunk is built whole and waits in ``queued`` instead of ``open``; with acks="all"
and idempotence it is pipelined: once written it moves from ``inflight`` to ``acking`` (waiting
for the in-sync replicas), so the next chunk's write may travel meanwhile (Sender).
"""

from __future__ import annotations

import threading

from rayka.clients.accumulator import ProduceBatch
from rayka.clients.producer_metrics import ProducerMetrics

__all__ = ["ProduceQueue"]

TP = tuple[str, int]


class ProduceQueue:
    """What a Producer and its Sender share; every field is read and written under ``cv``.

    - ``cv``: the lock (and condition: notified when a batch is added, due, or settled).
    - ``open``: the growing batch of each partition (send() adds records to it).
    - ``queued``: send_table() chunks per partition, handed off, not yet sent.
    - ``inflight``: the one batch per partition whose append (its write) is travelling.
    - ``acking``: per partition, pipelined batches written and waiting for acks="all", oldest first.
    - ``stalled``: partitions where a pipelined batch failed: nothing new is written there until
      nothing of it travels, so the retries go again in sequence order.
    - ``completing``: batches out of ``inflight`` whose callbacks have yet to run.
    - ``sequences`` / ``epochs``: the idempotent sequence of each partition, and how often it
      restarted (the Sender numbers batches; see Sender.restart_sequence).
    - ``buffered``: bytes charged against ``buffer_memory`` (freed when a batch settles).
    - ``flushing``: how many callers want everything handed off now (flush, a full buffer).
    - ``closing``: no more sends; the Sender stops once nothing is left.
    - ``metrics``: the producer's counters (ProducerMetrics).
    """

    def __init__(self) -> None:
        self.cv = threading.Condition(threading.Lock())
        self.open: dict[TP, ProduceBatch] = {}
        self.queued: dict[TP, list[ProduceBatch]] = {}
        self.inflight: dict[TP, ProduceBatch] = {}
        self.acking: dict[TP, list[ProduceBatch]] = {}
        self.stalled: set[TP] = set()
        self.completing: set[ProduceBatch] = set()
        self.sequences: dict[TP, int] = {}
        self.epochs: dict[TP, int] = {}  # bumped when a partition's sequence restarts
        self.buffered = 0
        self.flushing = 0
        self.closing = False
        self.metrics = ProducerMetrics()

    def unsent_locked(self) -> list[ProduceBatch]:
        """The batches not yet handed to a partition (caller holds ``cv``)."""
        return list(self.open.values()) + [b for q in self.queued.values() for b in q]

    def pending_locked(self) -> list[ProduceBatch]:
        """Every batch not yet settled with its callbacks run (caller holds ``cv``)."""
        return (self.unsent_locked() + list(self.inflight.values())
                + [b for q in self.acking.values() for b in q] + list(self.completing))
