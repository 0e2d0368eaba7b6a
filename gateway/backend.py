"""What the gateway needs from rayka: the :class:`Backend` protocol, and the plain types it answers.

The protocol handlers (pure code in this package) call a Backend; the gateway actor
(``rayka.actors.gateway``) implements it over the client stubs (the coordinator and the
partition actors). Every method is a coroutine: the server is one asyncio loop and a
slow partition must not hold up another connection. Methods raise ``rayka.errors``
exceptions (UnknownTopicError, OffsetOutOfRangeError, NotLeaderError, group errors, ...),
which ``gateway.errors`` maps to Kafka error codes. A test backend in memory implements
the same protocol, so the handlers are tested without Ray.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import pyarrow as pa

from ..messages import AppendResult, FetchResponse, LogBounds, TimeLookup

__all__ = ["Backend", "Broker", "PartitionMeta", "TopicMeta", "GroupJoin", "GroupSync", "GroupMember",
           "GroupDescription"]


@dataclass(frozen=True, slots=True)
class Broker:
    """One gateway, advertised as a Kafka broker: one per Ray node that runs rayka."""

    node_id: int
    host: str
    port: int
    rack: str | None = None


@dataclass(frozen=True, slots=True)
class PartitionMeta:
    """A partition as Metadata tells it: the broker of its leader's node, replicas, ISR."""

    partition: int
    leader: int  # a Broker.node_id; -1 while no leader
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TopicMeta:
    """A topic: its partitions, whether it has a value schema (typed: not served as Kafka bytes),
    and its config (``message.timestamp.type`` and the others, as strings)."""

    name: str
    topic_id: bytes  # 16 bytes (Metadata v10+), zeros when unknown
    partitions: tuple[PartitionMeta, ...]
    typed: bool = False
    config: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GroupJoin:
    """The answer to a client-assigned JoinGroup: ``pending`` until the rebalance completes; then
    the generation, the chosen protocol (assignor) name, the leader, and (for the leader only)
    every member's ``(member_id, instance_id, metadata)``."""

    pending: bool
    member_id: str
    generation: int = -1
    protocol_name: str | None = None
    leader: str | None = None
    members: tuple[tuple[str, str | None, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class GroupSync:
    """The answer to SyncGroup: ``pending`` until the leader sent the assignment, then this
    member's assignment bytes (Kafka's ConsumerProtocolAssignment, as the leader encoded it)."""

    pending: bool
    assignment: bytes = b""
    protocol_name: str | None = None


@dataclass(frozen=True, slots=True)
class GroupMember:
    member_id: str
    instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupDescription:
    group_id: str
    state: str  # Kafka's names: "Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead"
    protocol_type: str
    protocol: str
    members: tuple[GroupMember, ...]


class Backend(Protocol):
    """rayka as the gateway sees it. See the module docs."""

    # -- cluster and topics
    async def brokers(self) -> list[Broker]: ...
    def controller_id(self) -> int: ...
    def cluster_id(self) -> str: ...
    async def list_topics(self) -> list[str]: ...
    async def topic(self, name: str) -> TopicMeta | None: ...
    async def create_topic(self, name: str, partitions: int, replication_factor: int, config: dict) -> None: ...
    async def delete_topic(self, name: str) -> None: ...
    async def create_partitions(self, name: str, total: int) -> None: ...
    async def describe_topic_config(self, name: str) -> dict[str, str]: ...

    # -- records. ``batch`` is rayka's producer layout (``rayka.partitions.records.input_schema()``:
    # timestamp_ms, key, headers, value). ``producer_id`` None: not idempotent.
    async def append(self, topic: str, partition: int, batch: pa.RecordBatch, producer_id: str | None,
                     sequence: int, acks: int, leader_epoch: int = -1) -> AppendResult: ...
    async def fetch(self, topic: str, partition: int, offset: int, max_bytes: int,
                    max_wait_ms: int, leader_epoch: int = -1) -> FetchResponse: ...
    async def offsets(self, topic: str, partition: int) -> LogBounds: ...
    async def offset_for_time(self, topic: str, partition: int, timestamp_ms: int) -> TimeLookup | None: ...
    async def init_producer_id(self) -> tuple[int, int]: ...

    # -- groups (client-assigned: Kafka's JoinGroup/SyncGroup), sharing rayka's group state,
    # generations, sessions and committed offsets
    async def join_group(self, group_id: str, member_id: str | None, instance_id: str | None,
                         protocol_type: str, protocols: list[tuple[str, bytes]], session_timeout_ms: int,
                         rebalance_timeout_ms: int, client_id: str, client_host: str) -> GroupJoin: ...
    # ``assigned``: the leader's ``assignments`` decoded (Kafka's ConsumerProtocolAssignment), member
    # id -> [(topic, partition)], for the members whose bytes decode (a "consumer" protocol group).
    async def sync_group(self, group_id: str, member_id: str, generation: int, instance_id: str | None,
                         assignments: dict[str, bytes],
                         assigned: dict[str, list[tuple[str, int]]] | None = None) -> GroupSync: ...
    async def heartbeat(self, group_id: str, member_id: str, generation: int, instance_id: str | None) -> None: ...
    async def leave_group(self, group_id: str, member_id: str, instance_id: str | None) -> None: ...
    async def commit_offsets(self, group_id: str, member_id: str | None, generation: int,
                             offsets: list[tuple[str, int, int, str | None]],
                             instance_id: str | None = None) -> None: ...
    async def fetch_offsets(self, group_id: str, tps: list[tuple[str, int]] | None
                            ) -> dict[tuple[str, int], tuple[int, str | None]]: ...
    async def list_groups(self) -> list[tuple[str, str, str]]: ...  # (group_id, protocol_type, state)
    async def describe_group(self, group_id: str) -> GroupDescription: ...
