"""Topic names and where a topic's files live.

Topic names follow Kafka's rule: 1-249 characters of ``[a-zA-Z0-9._-]``, not ``.`` or
``..``. A valid name can never form a path outside the data dir; the partition directory
is still checked to resolve inside it.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import InvalidTopicError

__all__ = ["validate_topic_name", "partition_dir"]

_TOPIC_RE = re.compile(r"^[a-zA-Z0-9._-]{1,249}$")


def validate_topic_name(name: object) -> str:
    """Return ``name`` if it is a legal topic name, else raise InvalidTopicError saying why."""
    if not isinstance(name, str):
        raise InvalidTopicError(f"topic name must be a str, got {type(name).__name__}")
    if name in (".", ".."):
        raise InvalidTopicError(f"topic name {name!r} is not allowed ('.' and '..' are reserved)")
    if not name:
        raise InvalidTopicError("topic name is empty; use 1-249 characters of [a-zA-Z0-9._-]")
    if len(name) > 249:
        raise InvalidTopicError(f"topic name is {len(name)} characters long; the limit is 249")
    if not _TOPIC_RE.match(name):
        bad = sorted({c for c in name if not re.match(r"[a-zA-Z0-9._-]", c)})
        raise InvalidTopicError(
            f"topic name {name!r} contains {''.join(bad)!r}; only [a-zA-Z0-9._-] are allowed"
        )
    return name


def partition_dir(data_dir: str | Path, topic: str, partition: int) -> Path:
    """``<data_dir>/topics/<topic>/<partition>``, checked to lie inside ``data_dir``."""
    root = Path(data_dir).resolve()
    path = (root / "topics" / validate_topic_name(topic) / str(int(partition))).resolve()
    if root not in path.parents:
        raise InvalidTopicError(f"topic {topic!r} would resolve outside the data dir {root}")
    return path
