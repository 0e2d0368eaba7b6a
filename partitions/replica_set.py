"""The leader's view of its followers: their log ends, the ISR, the high watermark, acks.

One :class:`ReplicaSet` lives in the leader replica of a partition while it leads
(one leader epoch). It is told of the leader's own appends (``on_append``) and of
each follower fetch (``on_follower_fetch(replica, fetch_offset)``: the follower holds
every record below its fetch offset, so that is its log end offset, LEO). From these:

- **caught up**: a follower is caught up at a fetch whose offset reached the leader's
  LEO at that moment; one whose offset reached the leader's LEO as of its previous
  fetch was caught up at that previous fetch (Kafka's ``lastCaughtUpTimeMs``). A
  follower not caught up for ``lag_time_max_ms`` (``replica.lag.time.max.ms``) is
  out of sync: :meth:`out_of_sync`. So is, at once, one whose fetch offset fell below the
  high watermark: it cut records every ISR member must hold (damaged batches it copies
  again, a tail a crash lost), so it must not stay electable until it holds them again.
- **back in sync**: a follower outside the ISR whose LEO reached the high watermark
  and the start offset of this leader's epoch (so it has truncated by epoch and holds
  this epoch's records): :meth:`caught_up`.
- **ISR changes are proposed, not applied** (KIP-497 AlterPartition). :meth:`next_isr_change`
  returns the request for the coordinator and marks it pending; only
  :meth:`on_isr_committed` (the coordinator's answer, with the new partition epoch)
  makes it the ISR. One change is in flight at a time.
- **high watermark (HW)**: the minimum LEO over the *maximal* ISR, the committed ISR plus
  any replica a pending change adds: a replica being removed still holds the HW back
  until the removal is committed, so a removal the coordinator refuses never leaves
  records below the HW that an ISR member lacks (the rule whose absence lost data in
  Kafka 0.8). A member whose LEO is unknown (no fetch yet in this epoch) holds the HW
  where it is. The HW never moves backwards.
- **acks="all"**: :meth:`check_acks_all` refuses, before the append, a partition whose
  committed ISR is smaller than ``min_insync_replicas`` (NotEnoughReplicasError, nothing
  written); :meth:`acked` says when the append ending at ``last_offset`` is done (HW past
  it). :class:`PendingAcks` holds the waiting appends, bounded.

Follower fetches must be checked first (divergence.diverging_epoch; the fetch's leader
epoch with :func:`check_leader_epoch`): a fetch offset is only a LEO once the follower's
log is known to match. The clock is injected (coordinator.clock). Not thread-safe: the
partition actor serialises calls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..coordinator.clock import SystemClock
from ..coordinator.election import AlterPartitionRequest, PartitionState
from ..errors import FencedLeaderEpochError, NotEnoughReplicasError, NotLeaderError, OffsetOutOfRangeError

__all__ = ["ReplicaSet", "FollowerState", "PendingAcks", "check_leader_epoch", "follower_high_watermark"]

DEFAULT_LAG_TIME_MAX_MS = 30_000


@dataclass(slots=True)
class FollowerState:
    """What the leader knows of one follower; ``leo`` -1: no fetch seen in this epoch."""

    leo: int = -1
    last_caught_up_ms: int | None = None
    last_fetch_ms: int | None = None
    last_fetch_leader_leo: int | None = None


class ReplicaSet:
    """Leader-side replication state of one partition for one leader epoch (see the module docstring).

    Built when replica ``replica_id`` becomes leader of ``state``: ``log_end`` and
    ``high_watermark`` are its own (the HW it learned as a follower), ``epoch_start_offset``
    is its log end when it took over (where it assigned its epoch in its epoch cache).
    ``min_insync_replicas`` and ``lag_time_max_ms`` are the topic's ``min.insync.replicas``
    and ``replica.lag.time.max.ms``; ``clock`` gives milliseconds (coordinator.clock).
    """

    def __init__(self, state: PartitionState, replica_id: int, log_end: int, high_watermark: int,
                 epoch_start_offset: int, *, min_insync_replicas: int = 1,
                 lag_time_max_ms: int = DEFAULT_LAG_TIME_MAX_MS, clock: Callable[[], int] | None = None):
        if state.leader != replica_id:
            raise NotLeaderError(f"replica {replica_id} does not lead at leader epoch {state.leader_epoch} "
                                 f"(replica {state.leader} does)")
        if not 0 <= high_watermark <= log_end or not 0 <= epoch_start_offset <= log_end:
            raise ValueError(f"high watermark {high_watermark} and epoch start {epoch_start_offset} must lie "
                             f"in [0, log end {log_end}]")
        if min_insync_replicas < 1 or lag_time_max_ms < 0:
            raise ValueError("min_insync_replicas must be >= 1 and lag_time_max_ms >= 0")
        self.replica_id = replica_id
        self.replicas = state.replicas
        self.leader_epoch = state.leader_epoch
        self.partition_epoch = state.partition_epoch
        self.min_insync_replicas = min_insync_replicas
        self.lag_time_max_ms = lag_time_max_ms
        self.epoch_start_offset = epoch_start_offset
        self._clock = clock or SystemClock()
        self._isr = state.isr
        self._pending: AlterPartitionRequest | None = None
        self._log_end = log_end
        self._hw = high_watermark
        now = self._clock()
        # ISR members count as caught up now: each has one lag_time_max_ms to fetch (as Kafka).
        self._followers = {r: FollowerState(last_caught_up_ms=now if r in state.isr else None)
                           for r in state.replicas if r != replica_id}

    # -- state -----------------------------------------------------------------------------

    @property
    def isr(self) -> tuple[int, ...]:
        """The committed ISR (what the coordinator persisted)."""
        return self._isr

    @property
    def pending(self) -> AlterPartitionRequest | None:
        """The ISR change sent to the coordinator and not answered yet."""
        return self._pending

    @property
    def maximal_isr(self) -> tuple[int, ...]:
        """The committed ISR plus the replicas a pending change adds: the HW waits for all of them."""
        extra = set(self._pending.isr) if self._pending else set()
        return tuple(r for r in self.replicas if r in self._isr or r in extra)

    @property
    def high_watermark(self) -> int:
        return self._hw

    @property
    def log_end(self) -> int:
        return self._log_end

    def follower(self, replica: int) -> FollowerState:
        """What is known of follower ``replica`` (NotLeaderError if it is none of this partition's)."""
        return self._follower(replica)

    # -- events ----------------------------------------------------------------------------

    def on_append(self, log_end: int) -> bool:
        """The leader's log now ends at ``log_end``; True if the HW moved."""
        if log_end < self._log_end:
            raise ValueError(f"a leader's log never shrinks: log end {log_end} after {self._log_end}")
        self._log_end = log_end
        return self._update_hw()

    def on_follower_fetch(self, replica: int, fetch_offset: int) -> bool:
        """``replica`` fetched from ``fetch_offset`` (its LEO); True if the HW moved."""
        f = self._follower(replica)
        if not 0 <= fetch_offset <= self._log_end:
            raise OffsetOutOfRangeError(
                f"replica {replica} fetched from offset {fetch_offset}, outside the leader's log [0, {self._log_end}]",
                log_end_offset=self._log_end)
        now = self._clock()
        if fetch_offset >= self._log_end:
            f.last_caught_up_ms = _later(f.last_caught_up_ms, now)
        elif f.last_fetch_leader_leo is not None and fetch_offset >= f.last_fetch_leader_leo:
            f.last_caught_up_ms = _later(f.last_caught_up_ms, f.last_fetch_ms)
        f.last_fetch_leader_leo, f.last_fetch_ms, f.leo = self._log_end, now, fetch_offset
        return self._update_hw()

    # -- ISR changes -----------------------------------------------------------------------

    def out_of_sync(self) -> list[int]:
        """Committed ISR members (not the leader) not caught up within ``lag_time_max_ms``, or whose
        log end fell below the high watermark."""
        now = self._clock()
        return [r for r in self._isr if r != self.replica_id and (
            not self._caught_up(f := self._followers[r], now) or 0 <= f.leo < self._hw)]

    def caught_up(self) -> list[int]:
        """Replicas outside the committed ISR whose LEO reached the HW and this epoch's start."""
        return [r for r, f in self._followers.items() if r not in self._isr and f.leo >= 0
                and f.leo >= self._hw and f.leo >= self.epoch_start_offset]

    def next_isr_change(self) -> AlterPartitionRequest | None:
        """The ISR change to propose now (shrinks first), marked pending; None if there is none
        or one is in flight. Send it to the coordinator and report its answer."""
        if self._pending is not None:
            return None
        gone = set(self.out_of_sync())
        if gone:
            isr = tuple(r for r in self._isr if r not in gone)
        else:
            joining = set(self.caught_up())
            if not joining:
                return None
            isr = tuple(r for r in self.replicas if r in self._isr or r in joining)
        self._pending = AlterPartitionRequest(self.replica_id, self.leader_epoch, self.partition_epoch, isr)
        return self._pending

    def on_isr_committed(self, isr: Iterable[int], partition_epoch: int) -> bool:
        """The coordinator persisted ``isr`` at ``partition_epoch``: the answer to the pending
        change, the state read after an InvalidUpdateVersionError, or a change the controller
        made itself. Only a newer partition epoch counts: a state of the epoch the leader has
        answers nothing pending (that change may still be applied) and is ignored, as is an
        older one. True if the HW moved."""
        isr = tuple(r for r in self.replicas if r in set(isr))
        if partition_epoch <= self.partition_epoch:
            return False
        if self.replica_id not in isr:
            raise FencedLeaderEpochError(
                f"the committed ISR {list(isr)} (partition epoch {partition_epoch}) does not hold the leader "
                f"{self.replica_id}: it no longer leads; refresh the partition's state")
        self._isr, self.partition_epoch, self._pending = isr, partition_epoch, None
        now = self._clock()
        for r in isr:
            f = self._followers.get(r)
            if f is not None and f.last_caught_up_ms is None:
                f.last_caught_up_ms = now
        return self._update_hw()

    def adopt(self, state: PartitionState) -> bool:
        """The coordinator's state of the partition, newer than the leader's (a replica replaced
        by self-healing, a change the controller made): the replicas and the ISR are taken
        from it, a new follower starts unknown. Same epoch rules as on_isr_committed; a state
        with another leader or leader epoch raises FencedLeaderEpochError. True if the HW moved."""
        if state.leader != self.replica_id or state.leader_epoch != self.leader_epoch:
            raise FencedLeaderEpochError(
                f"the partition is at leader epoch {state.leader_epoch} with leader {state.leader}; replica "
                f"{self.replica_id} (epoch {self.leader_epoch}) no longer leads it")
        if state.partition_epoch <= self.partition_epoch:
            return False
        self.replicas = state.replicas
        self._followers = {r: self._followers.get(r) or FollowerState() for r in state.replicas if r != self.replica_id}
        return self.on_isr_committed(state.isr, state.partition_epoch)

    def on_isr_rejected(self) -> None:
        """The coordinator answered that the pending change was NOT made and its partition epoch
        is still the leader's (it could not persist it): the committed ISR stays, and the next
        change may be proposed. Never call it when the outcome is unknown (a lost answer, a
        RayActorError): the change may have been made, so re-send :attr:`pending` (the
        coordinator answers a repeat of a change it made with the current state) and keep
        counting the maximal ISR. On InvalidUpdateVersionError, read the coordinator's state
        and adopt it with on_isr_committed; on FencedLeaderEpochError or NotLeaderError the
        replica stops leading."""
        self._pending = None

    # -- acks ------------------------------------------------------------------------------

    def check_acks_all(self) -> None:
        """Refuse an acks="all" append before it is written when the committed ISR is smaller
        than ``min_insync_replicas``."""
        if len(self._isr) < self.min_insync_replicas:
            raise NotEnoughReplicasError(
                f"the partition has {len(self._isr)} in-sync replica(s) (ISR {list(self._isr)}) and "
                f"min.insync.replicas={self.min_insync_replicas}: the batch was not appended, nothing of it "
                "is visible. It is retried until delivery_timeout_ms; lagging replicas rejoin once caught up")

    def acked(self, last_offset: int) -> bool:
        """True once the append ending at ``last_offset`` is below the HW (every maximal ISR member
        has it). Raises NotEnoughReplicasError if the ISR had shrunk below the minimum by then."""
        if self._hw <= last_offset:
            return False
        maximal = self.maximal_isr
        if len(maximal) < self.min_insync_replicas:
            raise NotEnoughReplicasError(
                f"the batch ending at offset {last_offset} was appended and is visible, but only {len(maximal)} "
                f"replica(s) held it when it committed (ISR {list(maximal)}, min.insync.replicas="
                f"{self.min_insync_replicas}); an idempotent producer's retry writes no duplicate")
        return True

    # -- inside ----------------------------------------------------------------------------

    def _follower(self, replica: int) -> FollowerState:
        f = self._followers.get(replica)
        if f is None:
            raise NotLeaderError(f"replica {replica} is not a follower of this partition (replicas "
                                 f"{list(self.replicas)}, leader {self.replica_id})")
        return f

    def _caught_up(self, f: FollowerState, now: int) -> bool:
        if f.leo == self._log_end:
            return True
        return f.last_caught_up_ms is not None and now - f.last_caught_up_ms <= self.lag_time_max_ms

    def _update_hw(self) -> bool:
        new = self._log_end
        for r in self.maximal_isr:
            if r != self.replica_id:
                leo = self._followers[r].leo
                if leo < 0:
                    return False
                new = min(new, leo)
        if new <= self._hw:
            return False
        self._hw = new
        return True


def _later(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


def check_leader_epoch(local_epoch: int, request_epoch: int, serving: bool = True, what: str = "request") -> None:
    """Fence a request (append, fetch) naming ``request_epoch`` at a replica of leader epoch
    ``local_epoch`` that ``serving`` such requests (it leads; or it follows, for a follower
    read). Older -> FencedLeaderEpochError (the sender is stale); newer, or not serving ->
    NotLeaderError (this replica is stale or the wrong one). ``request_epoch`` -1: unchecked."""
    if request_epoch != -1 and request_epoch < local_epoch:
        raise FencedLeaderEpochError(
            f"{what} refused: it names leader epoch {request_epoch}, the partition is at {local_epoch}; "
            "refresh metadata and retry with the current leader")
    if not serving:
        raise NotLeaderError(f"{what} refused: this replica does not lead the partition (leader epoch "
                             f"{local_epoch}); ask the coordinator for the partition's leader")
    if request_epoch > local_epoch:
        raise NotLeaderError(
            f"{what} refused: it names leader epoch {request_epoch} and this replica knows only {local_epoch}, "
            "so another replica leads now; ask the coordinator for the partition's leader")


class PendingAcks:
    """acks="all" appends waiting for the HW to pass them, oldest first, at most ``max_pending``.

    ``token`` is whatever the caller wakes (an asyncio future); :meth:`release` hands back
    the done ones with None or the error to answer with, :meth:`expire` the timed-out ones.
    """

    def __init__(self, max_pending: int = 10_000):
        self.max_pending = max_pending
        self._waiting: deque[tuple[int, int, object]] = deque()  # (last_offset, deadline_ms, token)

    def __len__(self) -> int:
        return len(self._waiting)

    @property
    def full(self) -> bool:
        """No room for another waiting append: check before appending, and refuse the append."""
        return len(self._waiting) >= self.max_pending

    def add(self, last_offset: int, deadline_ms: int, token: object) -> None:
        """Wait for the append ending at ``last_offset`` until ``deadline_ms``."""
        if self.full:
            raise ValueError(f"{self.max_pending} acks=\"all\" appends wait already; check `full` before appending")
        if self._waiting and last_offset < self._waiting[-1][0]:
            raise ValueError("appends are acknowledged in offset order")
        self._waiting.append((last_offset, deadline_ms, token))

    def release(self, replicas: ReplicaSet) -> list[tuple[object, Exception | None]]:
        """The appends now done (call after the HW moved), with None or the error to answer."""
        done = []
        while self._waiting:
            last_offset, _, token = self._waiting[0]
            try:
                if not replicas.acked(last_offset):
                    break
                done.append((token, None))
            except NotEnoughReplicasError as exc:
                done.append((token, exc))
            self._waiting.popleft()
        return done

    def expire(self, now_ms: int) -> list[object]:
        """The appends whose deadline passed (answer them with a timeout), removed."""
        gone = [token for _, deadline, token in self._waiting if deadline <= now_ms]
        if gone:
            self._waiting = deque(e for e in self._waiting if e[1] > now_ms)
        return gone


def follower_high_watermark(leader_high_watermark: int, log_end: int) -> int:
    """The HW a follower serves reads by (KIP-392): the leader's, as far as its own log goes."""
    return min(leader_high_watermark, log_end)
