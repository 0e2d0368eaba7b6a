"""The members of a Kafka client-assigned group and the checks on what they send (plain logic).

``client_groups.KafkaGroup`` keeps :class:`KafkaMember` values; the functions here check
a join's protocols and timeouts, choose the group's protocol (Kafka's vote) and check a
leader's assignment (no partition given to two members) before anything is stored.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

from ..errors import ConfigError, InconsistentGroupProtocolError, InvalidAssignmentError
from .group_snapshot import KafkaMemberSnapshot

__all__ = ["KafkaMember", "check_join", "check_names", "check_protocols", "check_timeout", "select_protocol", "check_assignment",
           "MAX_PROTOCOLS", "MAX_TIMEOUT_MS"]

log = logging.getLogger(__name__)

MAX_PROTOCOLS = 32  # protocols (assignors) one member may offer
MAX_TIMEOUT_MS = 2**31 - 1  # Kafka's timeouts are int32


@dataclass
class KafkaMember:
    """One member of a Kafka group: what it joined with, its session, and what the leader gave it."""

    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    protocols: tuple[tuple[str, bytes], ...]
    session_timeout_ms: int
    rebalance_timeout_ms: int
    last_heartbeat_ms: int
    assignment: bytes = b""  # the leader's bytes for this member, in the group's generation
    assigned: tuple = ()  # ... decoded: (topic, partition) pairs, sorted

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.protocols)

    def metadata(self, protocol: str | None) -> bytes:
        return next((meta for name, meta in self.protocols if name == protocol), b"")

    @classmethod
    def from_snapshot(cls, snap: KafkaMemberSnapshot, now_ms: int) -> KafkaMember:
        """The member a snapshot kept; its session starts at ``now_ms`` (the restore)."""
        return cls(snap.member_id, snap.instance_id, snap.client_id, snap.client_host, tuple(snap.protocols),
                   snap.session_timeout_ms, snap.rebalance_timeout_ms, now_ms, snap.assignment, tuple(snap.assigned))

    def to_snapshot(self) -> KafkaMemberSnapshot:
        return KafkaMemberSnapshot(self.member_id, self.instance_id, self.client_id, self.client_host,
                                   self.session_timeout_ms, self.rebalance_timeout_ms, self.protocols,
                                   self.assignment, self.assigned)

    def describe(self, protocol: str | None) -> dict:
        """The member as ``describe_group`` shows it (topics: those of its partitions)."""
        return {"member_id": self.member_id, "instance_id": self.instance_id,
                "topics": sorted({t for t, _ in self.assigned}), "assignment": list(self.assigned),
                "client_id": self.client_id, "client_host": self.client_host,
                "metadata": self.metadata(protocol), "assignment_bytes": self.assignment}


def check_protocols(protocols) -> tuple[tuple[str, bytes], ...]:
    """A join's ``[(name, metadata bytes)]``, as a tuple; ConfigError if malformed."""
    try:
        pairs = [(name, meta) for name, meta in protocols]
    except (TypeError, ValueError):
        raise ConfigError(f"protocols must be (name, metadata bytes) pairs, got {protocols!r}") from None
    names = [name for name, _ in pairs]
    if not pairs or len(pairs) > MAX_PROTOCOLS or not all(isinstance(n, str) and n for n in names):
        raise ConfigError(f"protocols must be 1..{MAX_PROTOCOLS} (name, metadata) pairs with non-empty "
                          f"str names, got {names!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"protocols name an assignor twice: {names!r}")
    bad = [n for n, meta in pairs if not isinstance(meta, (bytes, bytearray, memoryview))]
    if bad:
        raise ConfigError(f"the metadata of protocol(s) {bad} must be bytes")
    return tuple((name, bytes(meta)) for name, meta in pairs)


def check_join(instance_id, protocol_type, protocols, session_timeout_ms, rebalance_timeout_ms, client_id,
               client_host) -> tuple[tuple[str, bytes], ...]:
    """A join's arguments checked (ConfigError for a bad one); its protocols as a tuple."""
    checked = check_protocols(protocols)
    check_timeout("session_timeout_ms", session_timeout_ms)
    check_timeout("rebalance_timeout_ms", rebalance_timeout_ms)
    check_names(protocol_type=protocol_type, client_id=client_id, client_host=client_host)
    if instance_id is not None and not (isinstance(instance_id, str) and instance_id):
        raise ConfigError(f"group.instance.id must be None or a non-empty str, got {instance_id!r}")
    return checked


def check_names(**values) -> None:
    """ConfigError unless each value (protocol type, client id, client host) is a str."""
    for name, value in values.items():
        if not isinstance(value, str):
            raise ConfigError(f"{name} must be a str, got {value!r}")


def check_timeout(name: str, value) -> None:
    """ConfigError unless ``value`` is a positive int32 number of milliseconds."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_TIMEOUT_MS:
        raise ConfigError(f"{name} must be an int in 1..{MAX_TIMEOUT_MS} ms, got {value!r}")


def select_protocol(group_id: str, members: dict[str, KafkaMember], leader: str) -> str:
    """Kafka's choice: among the protocols every member supports, the one most members
    prefer (each votes for its first supported one); ties go to the leader's preference."""
    common = set.intersection(*(set(m.names) for m in members.values()))
    if not common:  # joins are refused before this can happen; kept as a clear internal error
        raise InconsistentGroupProtocolError(f"group {group_id}: no protocol every member supports")
    votes = Counter(next(n for n in m.names if n in common) for m in members.values())
    ordered = [n for n in members[leader].names if n in common]
    return max(ordered, key=lambda n: votes[n])  # max keeps the first of equals


def check_assignment(group_id: str, generation: int, member_ids, assignments, assigned) -> dict:
    """``{member_id: (bytes, sorted (topic, partition) pairs)}`` for every member of a leader's
    SyncGroup (b"" and nothing for a member it left out); InvalidAssignmentError if a value is
    of the wrong type or one partition is given to two members."""
    if not isinstance(assignments, dict) or not isinstance(assigned, dict):
        raise InvalidAssignmentError(f"group {group_id}: assignments and assigned must be dicts keyed by member id")
    out, owners = {}, {}
    for mid in member_ids:
        raw = assignments.get(mid, b"")
        if not isinstance(raw, (bytes, bytearray, memoryview)):
            raise InvalidAssignmentError(f"group {group_id}: the assignment of {mid} must be bytes, "
                                         f"got {type(raw).__name__}")
        try:
            tps = sorted({(str(t), int(p)) for t, p in assigned.get(mid, ())})
        except (TypeError, ValueError):
            raise InvalidAssignmentError(f"group {group_id}: the partitions of {mid} must be "
                                         "(topic, partition) pairs") from None
        for tp in tps:
            if tp in owners:
                raise InvalidAssignmentError(
                    f"group {group_id}: the leader gave {tp[0]}-{tp[1]} to both {owners[tp]} and {mid} in "
                    f"generation {generation}; its assignor is broken. Nothing was assigned")
            owners[tp] = mid
        out[mid] = (bytes(raw), tuple(tps))
    ignored = sorted(set(assignments) - set(out))
    if ignored:
        log.info("group %s: the leader's assignment for unknown member(s) %s ignored", group_id, ignored)
    return out
