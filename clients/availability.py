"""Reporting partitions that could not answer, all in one error.

Many partitions are asked at once with :func:`rayka.clients.stubs.gather`, each
answer on its own (one dead partition never fails the others); the calls that
must answer for every partition they were given (``Consumer.position``,
``end_offsets``, ...) then raise one PartitionUnavailableError naming those that
could not, never a Ray error.
"""

from __future__ import annotations

from rayka.errors import PartitionUnavailableError

__all__ = ["unavailable_error"]


def unavailable_error(failed: dict, what: str) -> PartitionUnavailableError:
    """One error naming every partition (``{TopicPartition: reason}``) that could not answer."""
    names = ", ".join(f"{tp.topic}-{tp.partition} ({reason})" for tp, reason in sorted(failed.items()))
    err = PartitionUnavailableError(
        f"{what}: {len(failed)} partition(s) could not be reached: {names}. The others were served; "
        "try these again later (a partition whose node is gone stays unavailable until it returns)")
    err.retriable = all(getattr(r, "retriable", True) for r in failed.values())
    err.partitions = set(failed)
    return err
