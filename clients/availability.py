"""Asking many partitions at once, each answer on its own: one dead partition never fails the others.

``resolve_each`` waits for a list of Ray refs (up to a deadline) and returns, per
ref, its value or the rayka exception it raised (Ray's wrappers turned into
PartitionUnavailableError by ``connection.unwrap``; a ref not answered in time
becomes a PartitionUnavailableError saying so). Consumer position look-ups,
``Admin.describe_topic`` and ``Admin.list_offsets`` use it; no Ray exception type
reaches the user.
"""

from __future__ import annotations

import ray
from ray.exceptions import RayError

from rayka.clients.connection import unwrap, wait as ray_wait
from rayka.errors import PartitionUnavailableError

__all__ = ["resolve_each", "unavailable_error"]


def resolve_each(refs: list, what: str = "partition", timeout_s: float | None = None) -> list:
    """Per ref, its value or the exception it raised (a rayka error), in order.

    With ``timeout_s``, refs not answered by then give a PartitionUnavailableError
    (retriable: the actor may be restarting) instead of a value.
    """
    if not refs:
        return []
    ready, _ = ray_wait(list(refs), num_returns=len(refs), timeout=timeout_s)
    ready = set(ready)
    out = []
    for ref in refs:
        if ref not in ready:
            out.append(PartitionUnavailableError(
                f"the {what} actor did not answer within {timeout_s:g} s (it may be restarting, or "
                "its node may be overloaded); try again later"))
            continue
        try:
            out.append(ray.get(ref))
        except Exception as exc:  # noqa: BLE001 - every failure is reported per ref
            err = unwrap(exc, what)
            if isinstance(err, RayError):  # never a Ray type to the user
                err = PartitionUnavailableError(f"the {what} actor could not answer: {type(err).__name__}: {err}")
            out.append(err)
    return out


def unavailable_error(failed: dict, what: str) -> PartitionUnavailableError:
    """One error naming every partition (``{TopicPartition: reason}``) that could not answer."""
    names = ", ".join(f"{tp.topic}-{tp.partition} ({reason})" for tp, reason in sorted(failed.items()))
    err = PartitionUnavailableError(
        f"{what}: {len(failed)} partition(s) could not be reached: {names}. The others were served; "
        "try these again later (a partition whose node is gone stays unavailable until it returns)")
    err.retriable = all(getattr(r, "retriable", True) for r in failed.values())
    err.partitions = set(failed)
    return err
