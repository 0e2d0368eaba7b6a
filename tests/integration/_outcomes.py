"""Sorting sends' outcomes for the Jepsen-style disk tests (test_disk_full_tmpfs.py,
test_replication_disk.py): which values were acknowledged, at which offset, and which failed."""


def sort_outcomes(futures, acked: dict, failed: set) -> list:
    """Wait for every (value, future) of ``futures`` (already flushed): each acknowledged value
    goes into ``acked`` at its offset, each failed one into ``failed``; the errors, in order."""
    errors = []
    for value, future in futures:
        error = future.exception()
        if error is None:
            acked[future.result().offset] = value
        else:
            errors.append(error)
            failed.add(value)
    return errors
